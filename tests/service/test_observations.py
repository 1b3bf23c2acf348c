"""Observations on the wire: what a replica sends the adapter, and what the adapter refuses to read."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import save

from driftwise.service.observations import decode_observation, encode_observation
from driftwise.service.runtime import BatchPrediction


def batch(n: int = 3, k: int = 4, e: int = 5) -> BatchPrediction:
    p = np.random.default_rng(0).dirichlet(np.ones(k), size=n).astype(np.float32)
    return BatchPrediction(p.argmax(1), p, p.max(1), np.ones((n, e), np.float32), "7")


def test_a_batch_arrives_as_it_was_served() -> None:
    X = np.arange(3 * 8, dtype=np.float32).reshape(3, 1, 2, 4)
    sent = batch()
    value, headers = encode_observation(X, sent, member="host-1", group="g", ids=["a", "b", "c"])
    x, got, sender, ids = decode_observation(value, headers)
    assert ids == ["a", "b", "c"]
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(got.probabilities, sent.probabilities)
    np.testing.assert_array_equal(got.labels, sent.labels)
    np.testing.assert_array_equal(got.embeddings, sent.embeddings)
    assert (got.model_version, sender.member, sender.group) == ("7", "host-1", "g")


@pytest.mark.parametrize("value, headers", [
    (b"not safetensors", [("member", b"a"), ("group", b"g"), ("model_version", b"1")]),
    (save({"x": np.zeros((2, 3), np.float32)}), [("member", b"a"), ("group", b"g"), ("model_version", b"1")]),
    (encode_observation(np.zeros((3, 2), np.float32), batch(), member="a", group="g")[0], [("member", b"a")]),
    (save({"x": np.zeros((2, 3), np.float32), "probabilities": np.zeros((3, 4), np.float32),
           "embeddings": np.zeros((2, 5), np.float32)}), [("member", b"a"), ("group", b"g"), ("model_version", b"1")]),
    (encode_observation(np.zeros((3, 2), np.float32), batch(), member="a", group="g")[0],
     [("member", b"a"), ("group", b"g"), ("model_version", b"1"), ("ids", b'["only one"]')]),
], ids=["garbage", "missing tensors", "missing headers", "rows disagree", "ids disagree"])
def test_a_record_that_is_not_an_observation_is_refused_by_name(value: bytes, headers: list) -> None:
    with pytest.raises(ValueError, match="not an observation"):
        decode_observation(value, headers)
