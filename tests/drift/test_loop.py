"""DriftLoop: what the closed loop decides, on a tiny real model, its real monitor and real detectors."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from driftwise.drift.adapter import embed
from driftwise.drift.embedding_drift import mmd_permutation_test
from driftwise.drift.label_shift import LabelShift
from driftwise.drift.normalize import back_to_source
from driftwise.drift.loop import (ALARM_SECOND_LOOK, LABEL_SHIFT_SOURCE_CHECK, MIN_ORDER_EVENTS, MIN_REFERENCE_EVENTS, MIN_WINDOW, Action,
                                  DriftLoop, LoopConfig, model_reference)
from driftwise.models.classifier import Classifier
from driftwise.models.config import ModelConfig

K, D, BATCH = 3, 8, 20
CENTERS = np.eye(K, D, dtype=np.float32) * 4.0


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread() -> Iterator[None]:
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _blobs(n: int, seed: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian classes in 8-d; ``shift`` moves every input (a covariate drift)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    x = CENTERS[y] + rng.normal(0.0, 1.0, (n, D)).astype(np.float32) + np.float32(shift)
    return x.astype(np.float32), y


@pytest.fixture(scope="module")
def model() -> Classifier:
    """A small MLP fitted on the clean blobs (a second or two)."""
    torch.manual_seed(0)
    x, y = _blobs(600, seed=0)
    model = Classifier(ModelConfig(encoder="mlp", input_shape=(D,), num_classes=K, hidden=32, embed_dim=16))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    X, Y = torch.as_tensor(x), torch.as_tensor(y)
    model.train()
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(model.raw_logits(X), Y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def reference(model: Classifier) -> dict[str, np.ndarray]:
    return model_reference(model, _blobs(600, seed=1)[0], false_alarm_rate=1e-4)


@torch.inference_mode()
def _predict(model: Classifier, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits, z = model.forward_with_embedding(torch.as_tensor(x))
    return torch.softmax(logits, dim=1).numpy(), z.numpy()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _loop(reference: dict[str, np.ndarray], clock: Clock | None = None, **config: float) -> DriftLoop:
    settings = {"cooldown_seconds": 0.0, "max_wait_seconds": 0.0, **config}
    return DriftLoop(reference, K, LoopConfig(**settings), clock=clock or Clock())  # type: ignore[arg-type]


def _feed(loop: DriftLoop, model: Classifier, x: np.ndarray, until: Action | None = None,
          interims: bool = False) -> list[tuple[int, Action]]:
    """Serve ``x`` batch by batch through the loop; the (event, action) pairs that were not NONE.

    An interim (`Action.NORMALIZE`) is served at once, and listed only with ``interims``; a source check
    (`Action.CHECK_SOURCE`) is answered by `back_to_source`, a domain check (`Action.CHECK_DOMAIN`) by "not
    moved" and an alarm check (`Action.CHECK_ALARM`) by "moved", unless it is ``until``: then it is left to the
    caller.
    While an adapted model serves, the monitor's reference is its own, not the source's: the answer is "not
    back" (the tests of the source's return then answer themselves).
    """
    acted = []
    for start in range(0, len(x), BATCH):
        batch = x[start:start + BATCH]
        loop.update(batch, *_predict(model, batch))
        action = loop.decide()
        if action is Action.NORMALIZE:
            loop.serve_interim()
            if not interims:
                continue
        if action is Action.CHECK_DOMAIN and until is not Action.CHECK_DOMAIN:  # the interim's domain stays
            loop.record_domain_check()
            continue
        if action is Action.CHECK_ALARM and until is not Action.CHECK_ALARM:  # "moved": the fallback follows
            loop.record_alarm_check(True)
            continue
        if action is Action.CHECK_SOURCE and until is not Action.CHECK_SOURCE:  # answered as the service does
            loop.record_source_check(loop.serving_base and back_to_source(
                embed(model, loop.normalize_inputs()), loop.monitor.reference).passed)
            continue
        if action is not Action.NONE:
            acted.append((loop.events, action))
            if action is until:
                break
    return acted


def _until_adapt(loop: DriftLoop, model: Classifier, seed: int = 2) -> None:
    _feed(loop, model, _blobs(400, seed)[0])
    acted = _feed(loop, model, _blobs(2000, seed + 1, shift=2.5)[0], until=Action.ADAPT)
    assert acted and acted[-1][1] is Action.ADAPT, acted


# -- the decisions ----------------------------------------------------------------------------------------------
def test_a_covariate_drift_is_confirmed_and_adapted_on_once_enough_fresh_inputs_arrived(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    assert _feed(loop, model, _blobs(600, seed=2)[0]) == []
    acted = _feed(loop, model, _blobs(1000, seed=3, shift=2.5)[0])
    assert [a for _, a in acted] == [Action.ADAPT]  # once: the adaptation is in flight until record_result
    assert loop.monitor.confirmations == 1
    assert loop.policy.fresh_events >= 200 and loop.policy.in_flight


def test_a_confirmed_drift_asks_for_an_interim_normalised_model_once_before_the_candidate(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    _feed(loop, model, _blobs(600, seed=2)[0])
    drifted = _blobs(1000, seed=3, shift=2.5)[0]
    acted, confirmed_at = [], None
    for start in range(0, len(drifted), BATCH):
        batch = drifted[start:start + BATCH]
        loop.update(batch, *_predict(model, batch))
        action = loop.decide()
        if loop.monitor.newly_confirmed:
            confirmed_at = loop.events
        if action is Action.NORMALIZE:
            assert loop.normalize_inputs().shape == (loop.config.normalize_window, D)
            loop.serve_interim()
        if action is Action.CHECK_SOURCE:  # still drifted: the answer is no
            assert not back_to_source(embed(model, loop.normalize_inputs()), reference).passed
            loop.record_source_check(False)
            continue
        if action is Action.CHECK_DOMAIN:  # the interim's domain stays
            loop.record_domain_check()
            continue
        if action is not Action.NONE:
            acted.append((loop.events, action))
    assert [a for _, a in acted] == [Action.NORMALIZE, Action.ADAPT]
    assert confirmed_at is not None
    assert loop.config.normalize_after <= acted[0][0] - confirmed_at <= loop.config.normalize_after + BATCH
    assert loop.monitor.drift_confirmed  # serving the interim did not reset the drift it was made for


def test_serving_the_interim_keeps_the_drift_and_its_pseudo_labels(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    _feed(loop, model, _blobs(600, seed=2)[0])
    _feed(loop, model, _blobs(1000, seed=3, shift=2.5)[0], until=Action.NORMALIZE, interims=True)
    held = len(loop.buffer)
    loop.serve_interim()
    assert len(loop.buffer) == held and loop.monitor.drift_confirmed and loop.serving_base


def test_a_new_drift_while_an_interim_serves_asks_for_a_new_interim_not_a_fallback(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    _feed(loop, model, _blobs(600, seed=2)[0])
    _feed(loop, model, _blobs(1000, seed=3, shift=2.5)[0], until=Action.NORMALIZE, interims=True)
    loop.serve_interim()
    loop.monitor.reset()  # as a rejected candidate does: the drift must be confirmed afresh
    acted = _feed(loop, model, _blobs(1500, seed=4, shift=-2.5)[0], interims=True, until=Action.NORMALIZE)
    assert [a for _, a in acted] == [Action.NORMALIZE]


def test_while_a_drift_stays_on_the_base_weights_the_loop_asks_every_window_whether_the_source_is_back(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200, cooldown_seconds=1e9)  # no candidate: the interim keeps serving
    _feed(loop, model, _blobs(600, seed=2)[0])
    _feed(loop, model, _blobs(1000, seed=3, shift=2.5)[0], until=Action.NORMALIZE, interims=True)
    checks = []
    drifted = _blobs(1000, seed=4, shift=2.5)[0]
    for start in range(0, len(drifted), BATCH):
        loop.update(drifted[start:start + BATCH], *_predict(model, drifted[start:start + BATCH]))
        if loop.decide() is Action.CHECK_SOURCE:
            checks.append(loop.events)
            assert back_to_source(embed(model, loop.normalize_inputs()), reference).passed is False
            loop.record_source_check(False)
    assert len(checks) >= 6 and (np.diff(checks) <= loop.config.normalize_window + BATCH).all()
    assert loop.monitor.drift_confirmed  # still drifted: nothing changed


def test_when_the_source_returns_while_an_interim_serves_the_drift_is_over(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200, cooldown_seconds=1e9)
    _feed(loop, model, _blobs(600, seed=2)[0])
    _feed(loop, model, _blobs(1000, seed=3, shift=2.5)[0], until=Action.NORMALIZE, interims=True)
    acted = _feed(loop, model, _blobs(1000, seed=5)[0], until=Action.CHECK_SOURCE)
    assert acted and acted[-1][1] is Action.CHECK_SOURCE and loop.source_check_pending
    assert back_to_source(embed(model, loop.normalize_inputs()), reference).passed
    loop.record_source_check(True)
    assert not loop.monitor.drift_confirmed and loop.serving_base and len(loop.buffer) == 0
    assert _feed(loop, model, _blobs(1000, seed=6)[0], interims=True) == []  # clean: nothing more to do


def test_while_a_label_shift_correction_serves_nothing_is_retrained_and_the_prior_is_re_estimated(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    _feed(loop, model, _blobs(600, seed=2)[0])
    _feed(loop, model, _blobs(1000, seed=3, shift=2.5)[0], until=Action.NORMALIZE, interims=True)
    loop.serve_interim()
    loop.note_label_shift(True)
    acted = _feed(loop, model, _blobs(1000, seed=4, shift=2.5)[0], interims=True)
    assert acted and {a for _, a in acted} == {Action.NORMALIZE}, acted  # never ADAPT
    gaps = np.diff([at for at, _ in acted])  # a source check due at the same time (every 32 now) goes first
    assert (gaps >= loop.config.normalize_window).all()
    assert (gaps <= loop.config.normalize_window + LABEL_SHIFT_SOURCE_CHECK + BATCH).all(), gaps
    loop.note_label_shift(False)  # the re-estimate found no label shift: the usual path again
    acted = _feed(loop, model, _blobs(1000, seed=5, shift=2.5)[0], until=Action.ADAPT)
    assert acted[-1][1] is Action.ADAPT


def _prior_only_drift(loop: DriftLoop, model: Classifier, n: int = 3000) -> list[tuple[int, Action]]:
    """Feed a stream 90% of class 0 whose embeddings are the source's (a weak model meeting a new prior, as the prior
    test meets it on Agrawal); a refused interim is answered as the service answers it. The actions asked for."""
    x, y = _blobs(4 * n, seed=2)
    skewed = np.r_[np.flatnonzero(y == 0)[:n * 9 // 10], np.flatnonzero(y != 0)[:n // 10]]
    np.random.default_rng(0).shuffle(skewed)
    _, z_clean = _predict(model, _blobs(len(skewed), seed=3)[0])
    acted = []
    for start in range(0, len(skewed), BATCH):
        part = skewed[start:start + BATCH]
        loop.update(x[part], _predict(model, x[part])[0], z_clean[start:start + BATCH])
        action = loop.decide()
        if action is Action.NORMALIZE:
            loop.interim_refused()  # not called a label shift: nothing serves
        elif action is Action.CHECK_SOURCE:
            loop.record_source_check(False)
            continue
        if action is not Action.NONE:
            acted.append((loop.events, action))
    return acted


def test_a_drift_seen_in_the_class_prior_alone_is_answered_by_a_correction_or_nothing_never_self_training(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference)
    acted = _prior_only_drift(loop, model)
    assert loop.monitor.confirmed_by == "prior" and loop.drift_prior is not None and loop.drift_prior[0] > 0.6
    assert acted and {a for _, a in acted} == {Action.NORMALIZE}, acted  # asked again and again, never ADAPT
    gaps = np.diff([e for e, _ in acted])
    assert len(acted) >= 10 and gaps.min() >= BATCH and gaps[1:].max() <= loop.config.normalize_window + BATCH, gaps


def test_a_drift_confirmed_on_the_class_prior_keeps_its_prior_until_it_ends_though_the_monitor_restarts(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference)
    _prior_only_drift(loop, model, n=1000)
    assert loop.monitor.confirmed_by == "prior" and loop.drift_prior is not None
    loop.monitor.reset()  # as a refused candidate restarts it
    assert loop.monitor.confirmed_by is None and loop.drift_prior is not None
    loop.source_returned()
    assert loop.drift_prior is None


def test_the_prior_a_drift_moved_to_is_its_furthest_correction_not_the_latest_one(
        reference: dict[str, np.ndarray]) -> None:
    # Re-estimated as the prior goes back, corrections follow it part way: the return is judged from the furthest.
    loop = _loop(reference)
    def corrected(*prior: float) -> LabelShift:  # a correction to ``prior``, as `detect_label_shift` finds it
        moved = 0.5 * float(np.abs(np.array(prior) - 1 / 3).sum())  # total variation from the source's
        return LabelShift(np.array(prior), np.full(3, 1 / 3), 0.0, 0.0, moved, True)

    loop.note_label_shift(True, corrected(0.8, 0.1, 0.1))
    loop.note_label_shift(True, corrected(0.5, 0.25, 0.25))  # a window half back at the source
    np.testing.assert_allclose(loop.shifted_prior, [0.8, 0.1, 0.1])
    loop.note_label_shift(True, corrected(0.9, 0.05, 0.05))
    np.testing.assert_allclose(loop.shifted_prior, [0.9, 0.05, 0.05])
    loop.serve(reference, base=True)  # the drift is over: the next one starts from nothing
    assert loop.shifted_prior is None and loop.label_shift_since is None


def test_no_interim_when_normalize_after_is_zero_or_adapting_is_off(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    for loop in (_loop(reference, window=200, normalize_after=0),
                 DriftLoop(reference, K, LoopConfig(cooldown_seconds=0.0, max_wait_seconds=0.0), adapt=False)):
        _feed(loop, model, _blobs(600, seed=2)[0])
        acted = _feed(loop, model, _blobs(1000, seed=3, shift=2.5)[0], interims=True)
        assert Action.NORMALIZE not in [a for _, a in acted]


def test_new_confirmed_drift_clears_the_buffer(model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference)
    _feed(loop, model, _blobs(400, seed=2)[0])
    assert len(loop.buffer) > 100  # confident clean pseudo-labels
    drifted = _blobs(2000, seed=3, shift=2.5)[0]
    for start in range(0, len(drifted), BATCH):
        batch = drifted[start:start + BATCH]
        loop.update(batch, *_predict(model, batch))
        loop.decide()
        if loop.monitor.newly_confirmed:
            break
    assert loop.monitor.newly_confirmed
    assert len(loop.buffer) == 0  # what it held predates the drift


def test_pseudo_labels_are_held_out_for_the_agreement_check(model: Classifier,
                                                            reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    _until_adapt(loop, model)
    held = len(loop.buffer)
    assert held > 0
    inputs = loop.adaptation_inputs()
    assert len(inputs.train_y) == 0 and len(inputs.holdout_y) == held  # the default: none trained on
    assert inputs.window_x.shape == (loop.policy.fresh_events, D)  # only inputs seen since confirmation
    np.testing.assert_array_equal(inputs.window_x, loop.window.array()[-loop.policy.fresh_events:])

    split = _loop(reference, window=200, holdout_fraction=0.25)
    _until_adapt(split, model)
    inputs = split.adaptation_inputs()
    px, _ = split.buffer.samples()
    assert len(inputs.holdout_y) == round(0.25 * len(px)) and len(inputs.train_y) == len(px) - len(inputs.holdout_y)
    train, hold = {r.tobytes() for r in inputs.train_x}, {r.tobytes() for r in inputs.holdout_x}
    assert not train & hold and train | hold == {r.tobytes() for r in px}


def test_a_candidate_held_back_by_the_cooldown_adapts_on_the_latest_window_not_on_everything_since(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    clock = Clock()
    loop = _loop(reference, clock, window=200, cooldown_seconds=60.0)
    loop.policy.adaptation_started()
    loop.record_result("failed")  # an adaptation just ended: the cooldown runs
    _feed(loop, model, _blobs(400, seed=2)[0])
    acted = _feed(loop, model, _blobs(800, seed=3, shift=2.5)[0], until=Action.ADAPT)
    assert Action.ADAPT not in [a for _, a in acted] and loop.policy.fresh_events > 400  # held back all along
    clock.now = 61.0
    acted = _feed(loop, model, _blobs(40, seed=4, shift=2.5)[0], until=Action.ADAPT)
    assert acted[-1][1] is Action.ADAPT
    inputs = loop.adaptation_inputs()
    assert inputs.window_x.shape == (200, D)
    np.testing.assert_array_equal(inputs.window_x, loop.window.array()[-200:])


def test_when_the_drift_moves_on_to_another_domain_the_candidate_waits_for_a_window_of_the_new_one(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    clock = Clock()
    loop = _loop(reference, clock, window=200, cooldown_seconds=60.0)
    loop.policy.adaptation_started()
    loop.record_result("failed")  # the cooldown holds the candidate back while the drift goes on
    _feed(loop, model, _blobs(400, seed=2)[0])
    _feed(loop, model, _blobs(600, seed=3, shift=2.5)[0], until=Action.ADAPT)
    assert loop.monitor.drift_confirmed and loop.policy.fresh_events > 200 and len(loop.buffer) > 0

    loop.domain_moved()  # the controller saw the latest inputs differ from the serving interim's
    assert loop.policy.fresh_events == 0 and len(loop.buffer) == 0 and loop.monitor.drift_confirmed
    clock.now = 61.0
    third = _blobs(400, seed=4, shift=-2.5)[0]
    acted = _feed(loop, model, third[:100], until=Action.ADAPT)
    assert Action.ADAPT not in [a for _, a in acted]  # cooldown over, but only 100 inputs of the new domain
    acted = _feed(loop, model, third[100:], until=Action.ADAPT)
    assert acted and acted[-1][1] is Action.ADAPT
    window = loop.adaptation_inputs().window_x
    assert window.shape == (200, D)
    np.testing.assert_array_equal(window, third[acted[-1][0] - 1000 - 200:acted[-1][0] - 1000])  # all of it new


def test_rejected_candidate_requires_drift_to_be_confirmed_again(model: Classifier,
                                                                 reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    _until_adapt(loop, model)
    loop.record_result("rejected", expected_confidence=0.9)
    assert not loop.monitor.drift_confirmed and not loop.policy.in_flight
    assert _feed(loop, model, _blobs(40, seed=9, shift=2.5)[0]) == []  # still drifted, but not confirmed afresh
    acted = _feed(loop, model, _blobs(2000, seed=10, shift=2.5)[0], until=Action.ADAPT)
    assert acted[-1][1] is Action.ADAPT and loop.monitor.confirmations == 2


def test_a_failed_adaptation_keeps_the_drift_confirmed(model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    _until_adapt(loop, model)
    loop.record_result("failed")
    assert loop.monitor.drift_confirmed and loop.policy.counts["failed"] == 1


def test_reference_comes_from_events_not_trained_on(model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    _until_adapt(loop, model)
    inputs = loop.adaptation_inputs()
    later = _blobs(300, seed=20, shift=2.5)[0]
    _feed(loop, model, later)  # arrived while the candidate was being made
    np.testing.assert_array_equal(loop.reference_inputs(inputs.taken_at), later)

    ref = loop.candidate_reference(model, inputs.taken_at)
    _, z = _predict(model, later)
    np.testing.assert_allclose(ref["embedding_mean"], z.mean(0), rtol=1e-5, atol=1e-6)
    assert float(ref["mmd_false_alarm_rate"][0]) == pytest.approx(loop.config.reference_false_alarm_rate)


def test_too_few_new_events_make_the_reference_from_the_whole_recent_window_without_repeats(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    _until_adapt(loop, model)
    taken_at = loop.adaptation_inputs().taken_at
    few = _blobs(MIN_REFERENCE_EVENTS - 56, seed=21, shift=2.5)[0]
    _feed(loop, model, np.concatenate([few, few]))  # a replayed stream: 400 events, 200 distinct
    recent = loop.window.array()
    got = loop.reference_inputs(taken_at)
    assert len(got) == len(recent) - len(few)
    np.testing.assert_array_equal(got[-len(few):], few)


def test_serving_a_new_model_watches_it_afresh_and_keeps_the_window(model: Classifier,
                                                                      reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    _until_adapt(loop, model)
    loop.record_result("promoted", expected_confidence=0.5)
    window = loop.window.array()
    new_reference = model_reference(model, _blobs(400, seed=30, shift=2.5)[0], false_alarm_rate=1e-4)
    loop.serve(new_reference, base=False)
    assert not loop.monitor.drift_confirmed and len(loop.buffer) == 0 and not loop.serving_base
    np.testing.assert_array_equal(loop.window.array(), window)
    np.testing.assert_array_equal(loop.monitor.reference["embedding_sample"], new_reference["embedding_sample"])


def test_a_new_drift_while_an_adapted_model_serves_falls_back_to_the_base(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference)
    loop.serve(reference, base=False)  # as if an adapted model served, watched against the clean domain
    _feed(loop, model, _blobs(400, seed=2)[0])
    acted = _feed(loop, model, _blobs(2000, seed=3, shift=2.5)[0], until=Action.FALL_BACK)
    assert acted == [(acted[0][0], Action.FALL_BACK)] and loop.policy.counts["fallbacks"] == 1
    loop.serve(reference, base=True)
    assert _feed(loop, model, _blobs(40, seed=4, shift=2.5)[0]) == []  # re-confirmed against the base first


def test_a_drift_confirmed_against_an_adapted_model_is_checked_before_the_base_serves_again(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference)
    loop.serve(reference, base=False)  # an adapted model serves, watched against the clean domain
    _feed(loop, model, _blobs(400, seed=2)[0])
    drifted = _blobs(2000, seed=3, shift=2.5)[0]
    acted = _feed(loop, model, drifted, until=Action.CHECK_ALARM)
    assert acted == [(acted[0][0], Action.CHECK_ALARM)] and loop.alarm_check_pending
    more = drifted[:4 * BATCH]
    assert _feed(loop, model, more, until=Action.CHECK_ALARM) == []  # nothing else until it is answered

    loop.record_alarm_check(True)  # the stream left its domain: the base serves again, as without the check
    assert loop.decide() is Action.FALL_BACK and loop.policy.counts["fallbacks"] == 1 and loop.normalize_pending


def test_a_drift_confirmed_against_a_candidate_before_its_promotion_is_recorded_is_checked_as_an_alarm_after(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference)
    _until_adapt(loop, model)
    loop.serve(reference, base=False)  # the candidate is swapped in; its adaptation is still finishing
    drifted = _blobs(2000, seed=5, shift=-2.5)[0]  # and the stream moves on at once
    acted = _feed(loop, model, drifted[:800], interims=True)
    assert acted == [] and not loop.serving_base, acted  # no interim, no adaptation of the candidate itself
    loop.record_result("promoted")
    acted = _feed(loop, model, drifted[800:], until=Action.CHECK_ALARM)
    assert acted and acted[-1][1] is Action.CHECK_ALARM, acted


def test_a_false_alarm_against_an_adapted_model_leaves_it_serving_watched_afresh(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference)
    loop.serve(reference, base=False)
    _feed(loop, model, _blobs(400, seed=2)[0])
    drifted = _blobs(2000, seed=3, shift=2.5)[0]
    _feed(loop, model, drifted, until=Action.CHECK_ALARM)
    own = model_reference(model, _blobs(400, seed=31, shift=2.5)[0], false_alarm_rate=1e-4)  # on its own domain
    loop.record_alarm_check(False)  # the first look: its domain still; asked again once more inputs have come
    assert loop.alarm_check_pending and loop.false_alarms == 0 and loop.decide() is Action.NONE
    acted = _feed(loop, model, drifted[-ALARM_SECOND_LOOK:], until=Action.CHECK_ALARM)
    assert [a for _, a in acted] == [Action.CHECK_ALARM] and loop.alarm_final_look, acted
    loop.record_alarm_check(False, own)  # the second: the alarm was false
    assert not loop.alarm_check_pending and loop.false_alarms == 1 and loop.policy.counts["fallbacks"] == 0
    assert not loop.monitor.drift_confirmed and not loop.serving_base
    np.testing.assert_array_equal(loop.monitor.reference["embedding_sample"], own["embedding_sample"])
    acted = _feed(loop, model, drifted[:800])  # the same domain goes on: no alarm on the fresh reference
    assert not {a for _, a in acted} & {Action.CHECK_ALARM, Action.FALL_BACK}, acted


def test_an_adapted_models_domain_seen_gone_outside_its_monitor_is_answered_as_an_alarm_that_said_moved(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference)
    loop.serve(reference, base=False)  # a candidate serves; its refinement finds the stream has left its domain
    loop.adapted_domain_gone()
    assert loop.decide() is Action.FALL_BACK and loop.policy.counts["fallbacks"] == 1
    loop.serve(reference, base=True)  # the base serves again, its monitor started afresh
    acted = _feed(loop, model, _blobs(200, seed=3, shift=2.5)[0], until=Action.CHECK_SOURCE)
    assert acted and acted[-1][1] is Action.CHECK_SOURCE, acted  # no drift confirmed against the base first
    loop.record_source_check(False)  # not the source: another domain, whose interim comes next
    assert loop.monitor.drift_confirmed
    acted = _feed(loop, model, _blobs(64, seed=4, shift=2.5)[0], interims=True)
    assert [a for _, a in acted][:1] == [Action.NORMALIZE], acted


def test_an_alarm_check_answered_after_another_model_was_served_is_moot(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference)
    loop.serve(reference, base=False)
    _feed(loop, model, _blobs(400, seed=2)[0])
    _feed(loop, model, _blobs(2000, seed=3, shift=2.5)[0], until=Action.CHECK_ALARM)
    loop.serve(reference, base=True)  # a rollback came first
    loop.record_alarm_check(True)
    assert loop.decide() is not Action.FALL_BACK and loop.policy.counts["fallbacks"] == 0


def test_after_a_fallback_to_a_domain_other_than_the_source_a_candidate_follows_its_interim(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    """The fallback's interim serves before the base could confirm the new drift again, and its outputs look
    like the source's to the base's monitor, which then never confirms it (on the held-out stream bench, shear
    and stripes were served by interims for whole phases, 1,400-1,550 events, with no candidate made). The
    source check's "not back" is the confirmation: the stream left the adapted domain for another one."""
    loop = _loop(reference, window=200, normalize_window=128)
    loop.serve(reference, base=False)  # an adapted model serves, watched against the clean domain
    _feed(loop, model, _blobs(400, seed=2)[0])
    _feed(loop, model, _blobs(2000, seed=3, shift=2.5)[0], until=Action.FALL_BACK)
    loop.serve(reference, base=True)  # the service put the base back
    shifted, clean = _blobs(3000, seed=5, shift=2.5)[0], _blobs(3000, seed=5)[0]  # the same draws, moved
    interim_serves, acted = False, []
    for start in range(0, len(shifted), BATCH):
        batch = slice(start, start + BATCH)
        loop.update(shifted[batch], *_predict(model, (clean if interim_serves else shifted)[batch]))
        action = loop.decide()
        if action is Action.NORMALIZE:
            loop.serve_interim()
            interim_serves = True  # its outputs: the shift undone
        elif action is Action.CHECK_SOURCE:
            loop.record_source_check(back_to_source(embed(model, loop.normalize_inputs()), reference).passed)
        elif action is Action.CHECK_DOMAIN:
            loop.record_domain_check()
            continue
        if action is not Action.NONE:
            acted.append(action)
        if action is Action.ADAPT:
            break
    assert acted[:2] == [Action.CHECK_SOURCE, Action.NORMALIZE], acted
    assert acted[-1] is Action.ADAPT, acted
    assert loop.monitor.drift_confirmed and loop.monitor.confirmations == 1, "held, not a detector's new vote"


def test_while_an_adapted_model_serves_the_source_is_asked_for_and_only_answers_in_a_row_bring_the_base_back(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    loop.serve(reference, base=False)  # a promoted candidate serves

    def asked() -> bool:
        return _feed(loop, model, _blobs(loop.config.normalize_window, seed=loop.events)[0],
                     until=Action.CHECK_SOURCE)[-1:] == [(loop.events, Action.CHECK_SOURCE)]

    assert asked()  # once a window of its own inputs has come
    assert loop.record_source_check(True) is False and not loop.serving_base  # one window that looks like the source
    assert asked() and loop.record_source_check(False) is False  # then one that does not: the count starts again
    assert asked() and loop.record_source_check(True) is False
    assert asked() and loop.record_source_check(True) is True  # twice in a row: the caller serves the base
    assert loop.serving_base and loop.policy.counts["fallbacks"] == 1


def test_a_promotion_that_falls_short_of_its_confidence_is_rolled_back(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    clock = Clock()
    loop = _loop(reference, clock, window=200, rollback_window=100, cooldown_seconds=30.0)
    _until_adapt(loop, model)
    loop.record_result("promoted", expected_confidence=1.0)  # promised more than the drifted stream gives
    loop.serve(reference, base=False)
    acted = _feed(loop, model, _blobs(200, seed=40, shift=2.5)[0], until=Action.ROLLBACK)
    assert acted[-1][1] is Action.ROLLBACK and loop.policy.counts["rolled_back"] == 1
    loop.serve(reference, base=True)
    assert _feed(loop, model, _blobs(2000, seed=41, shift=2.5)[0]) == []  # the cooldown restarted at the rollback
    clock.now = 31.0
    assert _feed(loop, model, _blobs(2000, seed=42, shift=2.5)[0], until=Action.ADAPT)[-1][1] is Action.ADAPT


def test_a_promoted_candidate_is_refined_once_on_all_the_inputs_of_its_domain(model: Classifier,
                                                                      reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200, refine_after=600, rollback_window=100, cooldown_seconds=60.0)
    _until_adapt(loop, model)
    made_from = loop.policy.domain_events  # the first window
    loop.record_result("promoted", expected_confidence=0.5)
    served = _blobs(2000, seed=50, shift=2.5)[0]
    loop.serve(model_reference(model, served[:400], false_alarm_rate=1e-4), base=False)
    promoted_at = loop.events
    acted = _feed(loop, model, served[400:], until=Action.REFINE)
    assert acted == [(promoted_at + 600 - made_from, Action.REFINE)]  # cooling down and watched, all the same
    window = loop.adaptation_inputs().window_x  # every input of the domain: the first window and all since
    assert len(window) == loop.policy.domain_events == 600
    np.testing.assert_array_equal(window[-(600 - made_from):], served[400:1000 - made_from])
    assert window.mean(axis=1).min() > 1.75  # drifted inputs only (clean rows average 0.5, drifted 3.0)
    loop.record_result("promoted", expected_confidence=0.5)
    loop.serve(None, base=False)
    assert _feed(loop, model, served[1000 - made_from:]) == []  # a refinement is never refined


def test_refinement_is_off_at_zero_and_a_new_drift_falls_back_instead(model: Classifier,
                                                                      reference: dict[str, np.ndarray]) -> None:
    for refine_after, shift, expected in ((0, 2.5, []), (1000, 6.0, [Action.FALL_BACK])):
        loop = _loop(reference, window=200, refine_after=refine_after, rollback_window=100)
        _until_adapt(loop, model)
        loop.record_result("promoted", expected_confidence=0.5)
        loop.serve(model_reference(model, _blobs(400, seed=51, shift=2.5)[0], false_alarm_rate=1e-4), base=False)
        acted = _feed(loop, model, _blobs(2000, seed=52, shift=shift)[0], until=Action.FALL_BACK)
        assert [a for _, a in acted] == expected


def test_a_new_drift_during_a_refinement_falls_back_and_the_refined_candidate_is_not_wanted(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200, refine_after=300, rollback_window=100)
    _until_adapt(loop, model)
    loop.record_result("promoted", expected_confidence=0.5)
    loop.serve(model_reference(model, _blobs(400, seed=53, shift=2.5)[0], false_alarm_rate=1e-4), base=False)
    assert _feed(loop, model, _blobs(600, seed=54, shift=2.5)[0], until=Action.REFINE)[-1][1] is Action.REFINE
    assert loop.candidate_wanted()
    acted = _feed(loop, model, _blobs(2000, seed=55, shift=6.0)[0], until=Action.FALL_BACK)
    assert acted[-1][1] is Action.FALL_BACK and loop.policy.in_flight  # at once, not after the refinement
    assert not loop.candidate_wanted()


def test_a_promotion_that_fails_its_watch_during_its_refinement_is_rolled_back_at_once(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200, refine_after=200, rollback_window=100, rollback_tolerance=0.02)
    _until_adapt(loop, model)
    loop.record_result("promoted", expected_confidence=1.0)  # promised more than the drifted stream gives
    loop.serve(model_reference(model, _blobs(400, seed=56, shift=2.5)[0], false_alarm_rate=1e-4), base=False)
    drifted = _blobs(400, seed=57, shift=2.5)[0]
    assert _feed(loop, model, drifted[:20]) == [(loop.events, Action.REFINE)]  # enough of the domain already
    acted = _feed(loop, model, drifted[20:], until=Action.ROLLBACK)
    assert acted[-1][1] is Action.ROLLBACK and loop.policy.in_flight  # at once, not after the refinement
    assert not loop.candidate_wanted()


def test_labels_needed_after_rejections_holds_while_the_drift_goes_on_and_clears_when_it_ends(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    for attempt in range(3):
        acted = _feed(loop, model, _blobs(2000, seed=60 + attempt, shift=2.5)[0], until=Action.ADAPT)
        assert acted[-1][1] is Action.ADAPT
        loop.record_result("rejected")
    assert loop.policy.labels_needed
    assert _feed(loop, model, _blobs(1500, seed=70, shift=2.5)[0]) == []
    assert loop.policy.labels_needed  # re-confirmed again and again: the drift goes on
    _feed(loop, model, _blobs(1500, seed=71)[0])
    assert not loop.policy.labels_needed  # no drift for 1000 predictions: that drift needs no labels any more


def _between_classes(n: int, seed: int) -> np.ndarray:
    """Inputs the model cannot tell apart: its confidence collapses."""
    rng = np.random.default_rng(seed)
    return (CENTERS.mean(axis=0) + rng.normal(0.0, 0.1, (n, D))).astype(np.float32)


def test_labels_are_asked_for_as_soon_as_self_training_starts_on_a_collapsed_confidence(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    acted = _feed(loop, model, _between_classes(2000, seed=80), until=Action.ADAPT)
    assert acted[-1][1] is Action.ADAPT and loop.policy.in_flight  # the candidate is still made
    assert loop.policy.labels_needed and "confidence collapsed" in loop.policy.labels_needed_reason
    loop.record_result("rejected")
    assert loop.policy.labels_needed


def test_a_promotion_withdraws_the_labels_asked_for_as_it_started(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    _feed(loop, model, _between_classes(2000, seed=82), until=Action.ADAPT)
    assert loop.policy.labels_needed
    loop.record_result("promoted", expected_confidence=0.0)
    assert not loop.policy.labels_needed


def test_a_candidate_started_before_the_labels_came_is_refused_without_asking_again(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    _feed(loop, model, _between_classes(2000, seed=83), until=Action.ADAPT)
    loop.policy.resolve_labels_needed()  # the labels arrived while it trained
    loop.record_result("rejected")
    assert not loop.policy.labels_needed  # the next candidate learns from them
    acted = _feed(loop, model, _between_classes(2000, seed=84), until=Action.ADAPT)
    assert acted[-1][1] is Action.ADAPT and not loop.policy.labels_needed
    loop.record_result("rejected")  # it had the labels and was refused all the same: ask again
    assert loop.policy.labels_needed


def test_an_interim_refused_on_a_window_from_before_the_drift_is_asked_for_once_more_on_a_pure_one(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200, normalize_after=32, normalize_window=128)
    _feed(loop, model, _blobs(600, seed=2)[0])
    drifted = _blobs(1000, seed=3, shift=2.5)[0]
    asked = []  # _since_confirmation at each NORMALIZE; every interim refused by its checks
    for start in range(0, len(drifted), BATCH):
        batch = drifted[start:start + BATCH]
        loop.update(batch, *_predict(model, batch))
        action = loop.decide()
        if action is Action.NORMALIZE:
            asked.append(loop._since_confirmation)
            loop.interim_refused()
        elif action is Action.CHECK_SOURCE:
            loop.record_source_check(False)
        elif action is Action.ADAPT:
            break
    assert len(asked) == 2, asked  # once more, not again and again: a burst is refused on its pure window too
    assert 32 <= asked[0] < 128 <= asked[1] < 128 + BATCH


def test_a_replacement_interim_refused_after_the_drift_moved_is_asked_for_once_more_on_the_new_domain_alone(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=1024, normalize_after=32, normalize_window=128)  # no candidate meanwhile
    _feed(loop, model, _blobs(400, seed=2)[0])
    _feed(loop, model, _blobs(400, seed=3, shift=2.5)[0])
    assert loop.interim_serving
    # The controller saw the stream leave the interim's domain, and the new domain's interim was refused.
    loop.domain_moved()
    moved_at = loop._since_confirmation
    loop.interim_refused()
    loop.interim_withdrawn()
    assert loop.serving_base and not loop.interim_serving and loop.monitor.drift_confirmed
    third = _blobs(1200, seed=4, shift=-2.5)[0]
    asked = []
    for start in range(0, len(third), BATCH):
        batch = third[start:start + BATCH]
        loop.update(batch, *_predict(model, batch))
        action = loop.decide()
        assert action is not Action.CHECK_DOMAIN  # no interim serves, so no interim's domain can go
        if action is Action.NORMALIZE:
            asked.append(loop._since_confirmation - moved_at)
            loop.interim_refused()  # refused again: a burst would be
        elif action is Action.CHECK_SOURCE:
            loop.record_source_check(False)
    assert len(asked) == 1 and 128 <= asked[0] < 128 + BATCH, asked  # once, on 128 inputs of the new domain


def test_while_labels_are_needed_the_source_is_still_checked_for_as_the_stream_moves_on(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200, normalize_window=128)
    _feed(loop, model, _between_classes(2000, seed=85), until=Action.ADAPT)
    loop.record_result("rejected")
    assert loop.policy.labels_needed
    # Another drift, confirmed afresh every few dozen events while the alarm holds: the checks that notice the
    # interim's domain has gone (or the source is back) still come every `normalize_window` inputs.
    confirmed, checks, x = loop.monitor.confirmations, 0, _blobs(1280, seed=86, shift=-2.5)[0]
    for start in range(0, len(x), BATCH):
        loop.update(x[start:start + BATCH], *_predict(model, x[start:start + BATCH]))
        if loop.decide() is Action.CHECK_SOURCE:
            checks += 1
            loop.record_source_check(False)  # not the source: the drift goes on
    assert loop.monitor.confirmations - confirmed >= 4, "re-confirmed again and again"
    assert checks >= 8  # one per 128 inputs, give or take the first
    assert loop.policy.labels_needed


def _in_runs(x: np.ndarray, y: np.ndarray, run: int = 50) -> np.ndarray:
    """``x`` with its classes arriving in runs of about ``run`` (each block of ``K * run`` sorted by class)."""
    blocks = np.array_split(np.arange(len(y)), max(1, len(y) // (K * run)))
    return x[np.concatenate([b[np.argsort(y[b], kind="stable")] for b in blocks])]


def test_while_classes_arrive_in_runs_no_interim_or_candidate_is_asked_for_however_long_the_drift(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    bursty, shuffled = _loop(reference, window=200), _loop(reference, window=200)
    clean, drifted = _blobs(600, seed=90), _blobs(3000, seed=91, shift=2.5)
    _feed(bursty, model, _in_runs(*clean))
    acted = _feed(bursty, model, _in_runs(*drifted), interims=True)
    assert bursty.monitor.confirmations >= 1 and bursty.classes_in_runs()
    assert not {a for _, a in acted} & {Action.NORMALIZE, Action.ADAPT, Action.REFINE}, acted

    _feed(shuffled, model, clean[0])  # the same inputs in random order: the interim, then the candidate
    acted = _feed(shuffled, model, drifted[0], interims=True)
    assert [a for _, a in acted][:2] == [Action.NORMALIZE, Action.ADAPT] and not shuffled.classes_in_runs(), acted


def test_a_drift_confirmed_before_its_order_can_be_judged_waits_for_enough_of_it(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    # A service started on a stream whose classes come in runs: the drift is confirmed within its first few
    # dozen events, too few to judge their order by. Nothing is asked for on them (on the held-out stream bench in
    # class runs of 50, seed 0, an interim made 122 events in served a burst, the first clean phase 3.8 points
    # under frozen); once enough has come since the confirmation, that is judged.
    drifted = _blobs(3000, seed=91, shift=3.5)
    bursty, shuffled = _loop(reference, window=200), _loop(reference, window=200)
    acted = _feed(bursty, model, _in_runs(*drifted), interims=True)
    assert bursty.monitor.last_confirmation_index < MIN_ORDER_EVENTS
    assert not {a for _, a in acted} & {Action.NORMALIZE, Action.ADAPT, Action.REFINE}, acted

    # The same inputs in random order: confirmed as soon, the interim once its order can be judged, then the candidate.
    first = _feed(shuffled, model, drifted[0][:MIN_ORDER_EVENTS], interims=True)
    assert shuffled.monitor.drift_confirmed and first == []
    acted = _feed(shuffled, model, drifted[0][MIN_ORDER_EVENTS:], interims=True)
    assert [a for _, a in acted][:2] == [Action.NORMALIZE, Action.ADAPT], acted


def _answer_checks_as_the_service_does(loop: DriftLoop, model: Classifier, x: np.ndarray) -> list[Action]:
    """Feed ``x``; each source check compares the latest inputs with the drift that asked for labels
    (`AdaptationController._check_source`); the other actions, in order."""
    acted = []
    for start in range(0, len(x), BATCH):
        loop.update(x[start:start + BATCH], *_predict(model, x[start:start + BATCH]))
        action = loop.decide()
        if action is Action.CHECK_SOURCE:
            if loop.alarm_inputs is not None:
                p = mmd_permutation_test(embed(model, loop.alarm_inputs), embed(model, loop.normalize_inputs()))
                if p < 0.01:
                    loop.drift_left()
            loop.record_source_check(False)
        elif action is Action.NORMALIZE:
            loop.serve_interim()
            acted.append(action)
        elif action is Action.CHECK_DOMAIN:  # the interim's domain stays
            loop.record_domain_check()
        elif action is not Action.NONE:
            acted.append(action)
    return acted


def test_labels_asked_for_on_one_drift_do_not_hold_back_the_next_one_the_stream_moves_to(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200, normalize_window=128)
    _feed(loop, model, _between_classes(2000, seed=85), until=Action.ADAPT)
    loop.record_result("rejected")
    assert loop.policy.labels_needed and loop.alarm_inputs is not None and len(loop.alarm_inputs) == 128

    assert _answer_checks_as_the_service_does(loop, model, _between_classes(1000, seed=87)) == []
    assert loop.policy.labels_needed, "the same drift goes on: still no self-training"

    acted = _answer_checks_as_the_service_does(loop, model, _blobs(1500, seed=86, shift=-2.5)[0])
    assert not loop.policy.labels_needed and loop.alarm_inputs is None
    assert acted[0] is Action.NORMALIZE and Action.ADAPT in acted, acted  # its interim, then its candidate


def test_labels_asked_for_by_feedback_wait_for_labels_whatever_drift_comes_next() -> None:
    loop = DriftLoop(None, K, LoopConfig(min_feedback=10, feedback_window=20))
    loop.record_feedback([0] * 20, [1] * 20)
    assert loop.policy.labels_needed and loop.alarm_inputs is None
    loop.drift_left()
    assert loop.policy.labels_needed


def _fallen_back(loop: DriftLoop, model: Classifier, reference: dict[str, np.ndarray],
                 stale_candidate: bool = False) -> None:
    loop.serve(reference, base=False)  # as if an adapted model served, watched against the clean domain
    _feed(loop, model, _blobs(400, seed=2)[0])
    _feed(loop, model, _blobs(2000, seed=3, shift=2.5)[0], until=Action.FALL_BACK)
    if stale_candidate:  # a refinement that passed just before the fallback was decided, served just after
        loop.serve(reference, base=False)
    loop.serve(reference, base=True)  # the drift that made the fallback is to be confirmed against the base


def test_after_a_fallback_the_source_is_asked_for_before_an_interim_is_made(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference)
    _fallen_back(loop, model, reference)
    acted = _feed(loop, model, _blobs(1000, seed=5)[0], interims=True, until=Action.CHECK_SOURCE)
    assert [a for _, a in acted] == [Action.CHECK_SOURCE]  # no interim before the answer
    assert _feed(loop, model, _blobs(64, seed=6)[0], interims=True) == []  # nor while it is awaited
    loop.record_source_check(True)  # the source came back: the base, and nothing more to do
    assert _feed(loop, model, _blobs(1000, seed=7)[0], interims=True) == []


@pytest.mark.parametrize("stale_candidate", [False, True], ids=["fallback", "candidate-served-before-the-fallback"])
def test_after_a_fallback_to_another_domain_its_interim_follows_the_source_check(
        model: Classifier, reference: dict[str, np.ndarray], stale_candidate: bool) -> None:
    loop = _loop(reference)
    _fallen_back(loop, model, reference, stale_candidate)
    acted = _feed(loop, model, _blobs(1000, seed=8, shift=2.5)[0], interims=True, until=Action.CHECK_SOURCE)
    assert [a for _, a in acted] == [Action.CHECK_SOURCE]
    loop.record_source_check(False)
    acted = _feed(loop, model, _blobs(1000, seed=9, shift=2.5)[0], interims=True, until=Action.NORMALIZE)
    assert [a for _, a in acted] == [Action.NORMALIZE]  # served at once, the source check its confirmation:
    assert loop.monitor.drift_confirmed and not loop.monitor.newly_confirmed  # a candidate is to follow


def test_an_interim_made_after_a_fallback_is_checked_for_the_source_before_any_drift_is_confirmed_again(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference)
    _fallen_back(loop, model, reference)
    _feed(loop, model, _blobs(64, seed=5, shift=2.5)[0], until=Action.CHECK_SOURCE)
    loop.record_source_check(False)  # not the source yet: the interim
    acted = _feed(loop, model, _blobs(1000, seed=5)[0], interims=True, until=Action.CHECK_SOURCE)
    assert [a for _, a in acted] == [Action.NORMALIZE, Action.CHECK_SOURCE]  # the interim at once, then the check
    loop.record_source_check(True)  # the source came back: the base, and nothing more to do
    assert not loop.monitor.drift_confirmed
    assert _feed(loop, model, _blobs(1000, seed=6)[0], interims=True) == []


def test_a_confident_drift_needs_repeated_rejections_before_labels_are_needed(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    _feed(loop, model, _blobs(2000, seed=81, shift=2.5)[0], until=Action.ADAPT)
    loop.record_result("rejected")
    assert loop.confidence_collapse() is None and not loop.policy.labels_needed


def test_monitor_only_never_acts_but_still_clears_the_buffer(model: Classifier,
                                                              reference: dict[str, np.ndarray]) -> None:
    loop = DriftLoop(reference, K, LoopConfig(cooldown_seconds=0.0, max_wait_seconds=0.0), adapt=False)
    _feed(loop, model, _blobs(400, seed=2)[0])
    assert _feed(loop, model, _blobs(2000, seed=3, shift=2.5)[0]) == []
    assert loop.monitor.confirmations == 1 and not loop.policy.in_flight


def test_wrong_feedback_labels_stop_adaptation_until_labels_arrive(model: Classifier,
                                                                    reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=200)
    loop.record_feedback(np.zeros(60, int), np.ones(60, int), np.full(60, 0.99))
    assert loop.policy.labels_needed
    _feed(loop, model, _blobs(400, seed=2)[0])
    assert _feed(loop, model, _blobs(2000, seed=3, shift=2.5)[0]) == []


def test_an_operator_can_force_an_adaptation_on_enough_recent_traffic(model: Classifier,
                                                                       reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference)
    _feed(loop, model, _blobs(MIN_WINDOW - BATCH, seed=2)[0])
    with pytest.raises(ValueError, match="not enough recent traffic"):
        loop.force_adaptation()
    _feed(loop, model, _blobs(300, seed=3)[0])
    loop.force_adaptation()
    with pytest.raises(RuntimeError, match="already running"):
        loop.force_adaptation()
    assert loop.adaptation_inputs().window_x.shape == (len(loop.window), D)  # no drift: the whole window


def test_loop_config_refuses_settings_that_cannot_work() -> None:
    with pytest.raises(ValueError, match="window_capacity"):
        LoopConfig(window=2048, window_capacity=1024)
    with pytest.raises(ValueError, match="refine_after"):
        LoopConfig(refine_after=-1)
    with pytest.raises(ValueError, match="holdout_fraction"):
        LoopConfig(holdout_fraction=1.5)
    with pytest.raises(ValueError, match="min_feedback"):
        LoopConfig(feedback_window=10, min_feedback=20)
    with pytest.raises(ValueError, match="threshold"):
        LoopConfig(threshold=0.0)
    with pytest.raises(ValueError, match="normalize_window_max"):
        LoopConfig(normalize_window=256, normalize_window_max=128)


def test_an_interim_grows_to_twice_its_inputs_then_to_its_largest_window_never_past_what_is_kept() -> None:
    loop = DriftLoop(None, 3, LoopConfig(window=100, window_capacity=300))
    loop.events = 1000
    assert loop.interim_growth(128, loop.events - 100) is None  # 228 of its domain: not yet twice 128
    assert loop.interim_growth(128, loop.events - 128) == 256
    assert loop.interim_growth(256, loop.events - 256) == 300  # capped by the inputs kept (window_capacity)
    assert loop.interim_growth(300, 0) is None  # as large as it gets
    loop.window.add(np.arange(1000, dtype=np.float32).reshape(500, 2))
    assert len(loop.normalize_inputs()) == loop.config.normalize_window == 128
    grown = loop.normalize_inputs(1000)
    assert len(grown) == 300 and grown[-1].tolist() == [998.0, 999.0]  # the latest, at most what is kept


def test_while_an_interim_serves_its_domain_is_checked_every_domain_check_every_inputs_not_only_with_the_source(
        model: Classifier, reference: dict[str, np.ndarray]) -> None:
    loop = _loop(reference, window=1024)  # no candidate for 1,024 inputs: the interim serves on
    _feed(loop, model, _blobs(400, seed=2)[0])
    acted = _feed(loop, model, _blobs(1200, seed=3, shift=2.5)[0], until=Action.CHECK_DOMAIN)
    assert acted and acted[-1][1] is Action.CHECK_DOMAIN and loop.interim_serving
    first = acted[-1][0]
    assert loop.decide() is not Action.CHECK_DOMAIN  # one at a time: until answered, none more
    loop.record_domain_check()
    acted = _feed(loop, model, _blobs(200, seed=4, shift=2.5)[0], until=Action.CHECK_DOMAIN)
    assert acted[-1][0] - first <= loop.config.domain_check_every + BATCH  # not a source check's 128 later
    loop.record_domain_check()
    loop.serve(None, base=False)  # a candidate serves: its own monitor watches, no domain check
    assert not loop.interim_serving
    batch = _blobs(2 * loop.config.domain_check_every, seed=5, shift=2.5)[0]
    loop.update(batch, *_predict(model, batch))
    assert loop.decide() is not Action.CHECK_DOMAIN
