"""The adaptation state machine: cooldown, labels needed, rollback, refinement."""

from __future__ import annotations

import pytest

from driftwise.drift.policy import AdaptationPolicy


class FakeClock:
    """Simulated seconds (the benchmark drives the policy the same way)."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _policy(**kwargs) -> tuple[AdaptationPolicy, FakeClock]:
    clock = FakeClock()
    defaults = dict(cooldown_seconds=60, min_pseudo_labels=20, max_consecutive_rejections=2,
                    rollback_window=4, rollback_tolerance=0.05, max_wait_seconds=30, min_fresh_events=0,
                    clock=clock)
    return AdaptationPolicy(**{**defaults, **kwargs}), clock


def test_no_adaptation_without_confirmed_drift():
    policy, _ = _policy()
    assert not policy.should_adapt(drift_confirmed=False, pseudo_count=1000)


def test_waits_for_pseudo_labels_then_adapts_anyway_after_max_wait():
    policy, clock = _policy()
    assert not policy.should_adapt(drift_confirmed=True, pseudo_count=5)
    clock.t = 29.0
    assert not policy.should_adapt(drift_confirmed=True, pseudo_count=5)
    clock.t = 30.0
    assert policy.should_adapt(drift_confirmed=True, pseudo_count=5)


def test_adapts_only_after_enough_fresh_inputs_since_the_drift():
    policy, _ = _policy(min_fresh_events=50)
    policy.observe([0.9] * 500)  # before the drift: not fresh
    assert not policy.should_adapt(drift_confirmed=True, pseudo_count=100)
    policy.observe([0.5] * 49)
    assert not policy.should_adapt(drift_confirmed=True, pseudo_count=100)
    policy.observe([0.5])
    assert policy.fresh_events == 50 and policy.should_adapt(drift_confirmed=True, pseudo_count=100)
    assert not policy.should_adapt(drift_confirmed=False, pseudo_count=100)
    assert not policy.should_adapt(drift_confirmed=True, pseudo_count=100), "a new drift starts a new count"


def test_cooldown_blocks_a_second_adaptation_until_it_expires():
    policy, clock = _policy()
    assert policy.should_adapt(drift_confirmed=True, pseudo_count=50)
    policy.adaptation_started()
    assert not policy.should_adapt(drift_confirmed=True, pseudo_count=50), "one at a time"
    clock.t = 10.0
    policy.record_outcome("failed")
    clock.t = 69.0
    assert not policy.should_adapt(drift_confirmed=True, pseudo_count=50)
    assert policy.snapshot()["cooldown_remaining_s"] == pytest.approx(1.0)
    clock.t = 70.0
    assert policy.should_adapt(drift_confirmed=True, pseudo_count=50)
    with pytest.raises(RuntimeError):
        policy.adaptation_started()
        policy.adaptation_started()


def test_repeated_rejections_raise_labels_needed_and_stop_adapting():
    policy, clock = _policy(cooldown_seconds=0)
    for _ in range(2):
        assert policy.should_adapt(drift_confirmed=True, pseudo_count=50)
        policy.adaptation_started()
        policy.record_outcome("rejected")
    assert policy.labels_needed and "rejected 2 candidates" in policy.labels_needed_reason
    assert not policy.should_adapt(drift_confirmed=True, pseudo_count=500)
    policy.resolve_labels_needed()
    assert policy.should_adapt(drift_confirmed=True, pseudo_count=50)


def test_rejections_for_an_unfit_window_do_not_ask_for_labels():
    # A burst of classes or a domain left while the candidate was made says nothing of whether the drift can be
    # learnt: counting them latched "labels needed" for the soak's last 27 minutes, with no interim made again.
    policy, clock = _policy(cooldown_seconds=0)
    for _ in range(5):
        assert policy.should_adapt(drift_confirmed=True, pseudo_count=50)
        policy.adaptation_started()
        policy.record_outcome("rejected", window_unfit=True)
    assert not policy.labels_needed and policy.consecutive_rejections == 0


def test_rejection_raised_labels_needed_clears_once_the_drift_is_over():
    policy, _ = _policy(cooldown_seconds=0, clear_after_calm_events=100)
    for _ in range(2):
        policy.should_adapt(drift_confirmed=True, pseudo_count=50)
        policy.adaptation_started()
        policy.record_outcome("rejected")
    assert policy.labels_needed
    policy.should_adapt(drift_confirmed=True, pseudo_count=50)
    policy.observe([0.9] * 500)
    assert policy.labels_needed, "still drifting: still needs labels"
    policy.should_adapt(drift_confirmed=False, pseudo_count=50)
    policy.observe([0.9] * 99)
    assert policy.labels_needed
    policy.observe([0.9])
    assert not policy.labels_needed and policy.consecutive_rejections == 0


def test_feedback_raised_labels_needed_waits_for_labels():
    policy, _ = _policy(min_feedback=10, feedback_window=10, clear_after_calm_events=10)
    policy.record_feedback([0] * 10, [1] * 10)
    policy.should_adapt(drift_confirmed=False, pseudo_count=0)
    policy.observe([0.9] * 1000)
    assert policy.labels_needed


def test_labels_that_keep_arriving_after_labels_needed_resolved_are_learnt_from_before_they_alarm_again():
    policy, _ = _policy(min_feedback=10, feedback_window=10, cooldown_seconds=0, max_wait_seconds=0)
    policy.record_feedback([0] * 10, [1] * 10)
    assert policy.labels_needed
    policy.resolve_labels_needed()
    policy.record_feedback([0] * 10, [1] * 10)  # the same model's mistakes, sent with the labels asked for
    assert not policy.labels_needed and policy.should_adapt(drift_confirmed=True, pseudo_count=0)
    policy.adaptation_started()
    policy.record_outcome("promoted")
    policy.record_feedback([0] * 10, [1] * 10)  # the new model is wrong too: that is news
    assert policy.labels_needed


def test_a_promotion_resets_the_rejection_streak():
    policy, _ = _policy(cooldown_seconds=0)
    for outcome in ["rejected", "promoted", "rejected"]:
        policy.adaptation_started()
        policy.record_outcome(outcome)
    assert not policy.labels_needed and policy.consecutive_rejections == 1


def test_feedback_disagreeing_with_predictions_means_labels_needed():
    policy, _ = _policy(min_feedback=10, feedback_window=20, min_live_accuracy=0.7)
    policy.record_feedback([1] * 9, [1] * 9)
    assert policy.live_accuracy is None, "too few pairs to judge"
    policy.record_feedback(range(10), [(i + 1) % 10 for i in range(10)])  # a permuted concept
    assert policy.live_accuracy == pytest.approx(9 / 19)
    assert policy.labels_needed and "live accuracy" in policy.labels_needed_reason
    assert not policy.should_adapt(drift_confirmed=True, pseudo_count=500)


def test_feedback_far_below_the_promised_confidence_means_labels_needed():
    policy, _ = _policy(min_feedback=10, feedback_window=20, min_live_accuracy=0.0, max_confidence_gap=0.2)
    policy.record_feedback([0] * 10, [0] * 8 + [1] * 2, confidences=[0.85] * 10)
    assert policy.live_accuracy == pytest.approx(0.8) and not policy.labels_needed, "within the promise"
    policy.record_feedback([0] * 10, [1] * 10, confidences=[0.95] * 10)
    assert policy.expected_accuracy == pytest.approx(0.9) and policy.labels_needed
    assert "under the model's confidence" in policy.labels_needed_reason


def test_a_new_drift_while_an_adapted_model_serves_falls_back_to_the_base():
    policy, _ = _policy()
    policy.adaptation_started()
    policy.record_outcome("promoted", expected_confidence=0.9)
    assert not policy.should_fall_back(drift_confirmed=False, serving_base=False)
    assert not policy.should_fall_back(drift_confirmed=True, serving_base=True)
    assert policy.should_fall_back(drift_confirmed=True, serving_base=False)
    policy.record_fallback()
    assert not policy.watching and policy.counts["fallbacks"] == 1


def test_rollback_when_confidence_after_swap_falls_below_expectation():
    policy, clock = _policy()
    policy.adaptation_started()
    policy.record_outcome("promoted", expected_confidence=0.9)
    assert policy.watching
    policy.observe([0.8, 0.8])
    assert not policy.rollback_needed, "window not full yet"
    policy.observe([0.8, 0.8, 0.99])  # the 5th value falls outside the 4-event window
    assert policy.rollback_needed and not policy.watching
    assert not policy.should_adapt(drift_confirmed=True, pseudo_count=500)
    clock.t = 5.0
    policy.record_rollback()
    assert not policy.rollback_needed and policy.counts["rolled_back"] == 1
    assert policy.consecutive_rejections == 1


def test_no_rollback_when_confidence_holds():
    policy, _ = _policy()
    policy.adaptation_started()
    policy.record_outcome("promoted", expected_confidence=0.9)
    policy.observe([0.88, 0.9, 0.86, 0.9])
    assert not policy.rollback_needed and not policy.watching


def test_a_promoted_model_is_refined_once_when_enough_of_its_domain_was_seen_without_waiting_for_cooldown_or_watch():
    policy, clock = _policy(refine_after_events=10, min_fresh_events=4)
    assert not policy.should_adapt(drift_confirmed=True, pseudo_count=100)
    policy.observe([0.6] * 4)  # the first window
    assert policy.should_adapt(drift_confirmed=True, pseudo_count=100)
    policy.adaptation_started()
    policy.observe([0.6] * 3)  # served by the old model while the candidate is made
    policy.record_outcome("promoted", expected_confidence=0.9)
    assert policy.domain_events == 7 and policy.refine_due
    assert not policy.should_refine(drift_confirmed=False), "3 more inputs of the domain to see"
    policy.observe([0.9] * 3)
    assert policy.watching and policy.cooldown_remaining() > 0  # neither holds the refinement back
    assert not policy.should_refine(drift_confirmed=True), "a new drift is the fallback's business"
    assert policy.should_refine(drift_confirmed=False)
    policy.adaptation_started(refinement=True)
    assert policy.refining and policy.counts["refinements"] == 1 and not policy.refine_due
    assert not policy.should_adapt(drift_confirmed=True, pseudo_count=100), "one adaptation at a time"
    policy.record_outcome("promoted", expected_confidence=0.9)
    policy.observe([0.9] * 100)
    clock.t = 1000.0
    assert not policy.refining and not policy.should_refine(drift_confirmed=False), "a refinement is not refined"


@pytest.mark.parametrize("undo", ["fallback", "rollback"])
def test_a_fallback_or_rollback_before_the_refinement_calls_it_off(undo):
    policy, clock = _policy(refine_after_events=10, cooldown_seconds=0)
    policy.adaptation_started()
    policy.record_outcome("promoted", expected_confidence=0.9)
    policy.record_fallback() if undo == "fallback" else policy.record_rollback()
    policy.observe([0.9] * 50)
    assert not policy.refine_due and not policy.should_refine(drift_confirmed=False)


def test_a_failed_watch_during_a_refinement_rolls_back_at_once_and_cancels_it():
    policy, clock = _policy(refine_after_events=4)
    policy.adaptation_started()
    policy.record_outcome("promoted", expected_confidence=0.9)
    policy.observe([0.5] * 2)
    policy.adaptation_started(refinement=True)
    assert not policy.should_roll_back()
    policy.observe([0.5] * 2)  # the watch (4 events) fails while the refinement runs
    assert policy.rollback_needed and policy.should_roll_back()
    policy.record_rollback()
    assert policy.refinement_cancelled and policy.counts["rolled_back"] == 1
    policy.record_outcome("rejected")  # the caller did not serve it
    assert policy.consecutive_rejections == 1, "the rollback counts, the cancelled refinement does not"


def test_no_rollback_while_an_adaptation_for_a_drift_runs():
    policy, _ = _policy()
    policy.adaptation_started()
    policy.rollback_needed = True  # cannot happen in use: no adaptation starts during a watch
    assert not policy.should_roll_back()


def test_a_new_drift_during_a_refinement_falls_back_at_once_and_cancels_it_without_counting_a_rejection():
    policy, clock = _policy(refine_after_events=4, cooldown_seconds=0)
    policy.adaptation_started()
    policy.record_outcome("promoted", expected_confidence=0.9)
    policy.observe([0.9] * 4)
    policy.adaptation_started(refinement=True)
    assert policy.should_fall_back(drift_confirmed=True, serving_base=False)
    policy.record_fallback()
    assert policy.refinement_cancelled
    policy.record_outcome("rejected")  # the caller did not serve it
    assert policy.consecutive_rejections == 0 and not policy.refining
    policy.adaptation_started()  # the next adaptation is wanted again
    assert not policy.refinement_cancelled and not policy.should_fall_back(drift_confirmed=True, serving_base=False)


def test_no_refinement_when_turned_off_or_after_a_rejection():
    for outcome, after in (("promoted", 0), ("rejected", 10)):
        policy, _ = _policy(refine_after_events=after, cooldown_seconds=0)
        policy.adaptation_started()
        policy.record_outcome(outcome, expected_confidence=0.9)
        policy.observe([0.9] * 50)
        assert not policy.should_refine(drift_confirmed=False)


def test_snapshot_is_plain_json():
    import json

    policy, _ = _policy()
    policy.record_feedback([0] * 60, [0] * 60)
    snap = json.loads(json.dumps(policy.snapshot()))
    assert snap["live_accuracy"] == 1.0 and snap["outcomes"] == {"promoted": 0, "rejected": 0, "failed": 0,
                                                                 "rolled_back": 0, "fallbacks": 0,
                                                                 "refinements": 0}


@pytest.mark.parametrize("kwargs", [dict(cooldown_seconds=-1), dict(max_consecutive_rejections=0),
                                    dict(rollback_window=0), dict(min_feedback=300),
                                    dict(rollback_tolerance=2.0), dict(refine_after_events=-1)])
def test_bad_hyperparameters_are_refused(kwargs):
    with pytest.raises(ValueError):
        AdaptationPolicy(**kwargs)


def test_unknown_outcome_is_refused():
    policy, _ = _policy()
    with pytest.raises(ValueError, match="outcome"):
        policy.record_outcome("maybe")
