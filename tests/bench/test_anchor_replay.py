"""The anchor-check replay: a recorded refusal flips only when the anchor check was its only failure and the
paired test puts the anchors lost down to chance."""

from __future__ import annotations

import copy
import json

import numpy as np
import torch

from driftwise.bench.anchor_replay import replay_run
from driftwise.drift.adapter import predict_proba
from driftwise.drift.guardrails import GuardrailConfig
from driftwise.models.registry import Registry
from driftwise.models.train import recalibrate_batchnorm
from tests.service.conftest import SHAPE, tiny_classifier


def _anchor_predictions(model, x: np.ndarray) -> np.ndarray:
    """As the anchor check predicts: BatchNorm re-estimated on the anchors."""
    probe = copy.deepcopy(model)
    recalibrate_batchnorm(probe, torch.as_tensor(x))
    return predict_proba(probe.eval(), x).argmax(1)


def test_a_refusal_over_one_anchor_lost_net_flips_and_a_second_failure_keeps_it(tmp_path) -> None:
    current, candidate = tiny_classifier(0), tiny_classifier(1)
    x = np.random.default_rng(0).uniform(0, 16, size=(40, *SHAPE)).astype(np.float32)
    a, b = _anchor_predictions(current, x), _anchor_predictions(candidate, x)
    differ = np.flatnonzero(a != b)
    assert len(differ) >= 3, "the two random models disagree somewhere"
    y = a.copy()  # the current model is right wherever both agree, and on two anchors they dispute
    y[differ[2]] = b[differ[2]]  # the candidate is right on one it disputes
    for i in differ[3:]:  # and both are wrong on the rest
        y[i] = next(c for c in range(10) if c not in (a[i], b[i]))
    run = tmp_path / "runs" / "stream-x"
    registry = Registry(run / "registry-adaptive")
    registry.publish("digits", current, reason="pretrain", anchors=(x, y))
    for _ in range(2):
        registry.publish("digits", candidate, reason="adapt", parent=1, activate=False, status="rejected")
    np.savez(run / "stream.npz", X=x, y=y)
    results = {"phases_run": ["clean", "noise"], "config": {"phase_events": 20}, "base_version": 1,
               "correct": {"adaptive": [True] * 40, "no_adapt": [True] * 40}, "swaps": {"adaptive": []},
               "versions": [{"version": 2, "kind": "adapt", "status": "rejected", "at_event": 25,
                             "failed": ["anchor_accuracy"]},
                            {"version": 3, "kind": "refine", "status": "rejected", "at_event": 30,
                             "failed": ["anchor_accuracy", "agreement"]}]}
    (tmp_path / "stream-x.json").write_text(json.dumps(results))

    only_anchors, also_agreement = replay_run(tmp_path / "stream-x.json", run, GuardrailConfig())
    assert (only_anchors["current"], only_anchors["lost"], only_anchors["gained"]) == ("1", 2, 1)
    assert not only_anchors["margin_rule"] and only_anchors["paired_rule"]  # 1 of 40 down: 2.5 points
    assert only_anchors["flips"] and not also_agreement["flips"]
    assert also_agreement["other_failures"] == ["agreement"]
