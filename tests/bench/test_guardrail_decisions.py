"""Guardrail decisions scored against the frozen model on the same events."""

from __future__ import annotations

import numpy as np

from driftwise.bench.guardrail_decisions import rates, score_decisions

N = 600
DOMAIN = np.array(["clean"] * 200 + ["noise"] * 400)


def _never(version: int, idx: np.ndarray) -> np.ndarray:
    return np.zeros(len(idx), bool)


def _always(version: int, idx: np.ndarray) -> np.ndarray:
    return np.ones(len(idx), bool)


def test_a_promotion_that_served_worse_than_the_frozen_model_is_a_false_accept() -> None:
    served = np.array(["1"] * 250 + ["2"] * 350, dtype=object)
    adaptive = np.zeros(N, bool)
    frozen = np.ones(N, bool)
    rows = score_decisions([{"version": 2, "kind": "adapt", "status": "approved", "at_event": 250}], served,
                           adaptive, frozen, DOMAIN, offline_correct=_never)
    assert rows[0]["verdict"] == "false accept" and rows[0]["events"] == 350
    assert rates(rows)["false_accept_rate"] == 1.0


def test_a_refused_candidate_that_would_have_helped_on_its_domain_is_a_false_reject() -> None:
    frozen = np.zeros(N, bool)
    seen = []

    def offline(version: int, idx: np.ndarray) -> np.ndarray:
        seen.append(idx)
        return np.ones(len(idx), bool)

    rows = score_decisions([{"version": 3, "kind": "adapt", "status": "rejected", "at_event": 300}],
                           np.full(N, "1", dtype=object), frozen, frozen, DOMAIN, offline_correct=offline)
    assert rows[0]["verdict"] == "false reject"
    assert seen[0][0] == 300 and seen[0][-1] == N - 1  # the rest of its domain only
    assert rates(rows)["false_reject_rate"] == 1.0


def test_a_candidate_the_loop_cancelled_is_counted_apart_from_the_guardrails_rejections() -> None:
    frozen = np.zeros(N, bool)
    rows = score_decisions([{"version": 3, "kind": "refine", "status": "rejected", "at_event": 300,
                             "cancelled": "a new drift or a rollback came while the refinement ran"}],
                           np.full(N, "1", dtype=object), frozen, frozen, DOMAIN, offline_correct=_always)
    assert rows[0]["apart"] == "cancelled" and rows[0]["verdict"] == "false reject"  # scored all the same
    counted = rates(rows)
    assert counted["rejections_judged"] == 0 and counted["false_reject_rate"] is None
    assert counted["apart_judged"] == 1 and counted["apart_would_gain"] == 1


def test_a_stale_refusal_counts_apart_only_when_its_window_lay_in_another_phase() -> None:
    frozen = np.zeros(N, bool)
    reason = "same_domain: 0.004975 < 0.01 (the {} inputs since the window differ from it: the domain moved on)"
    versions = [{"version": 3, "kind": "adapt", "status": "rejected", "at_event": 300,
                 "guardrail_reasons": [reason.format(150)]},  # its window ended at 149: the clean phase
                {"version": 4, "kind": "adapt", "status": "rejected", "at_event": 400,
                 "guardrail_reasons": [reason.format(150)]}]  # its window ended at 249: the same phase
    rows = score_decisions(versions, np.full(N, "1", dtype=object), frozen, frozen, DOMAIN, offline_correct=_always)
    assert [r["apart"] for r in rows] == ["stale, its domain gone", None]
    counted = rates(rows)
    assert counted["rejections_judged"] == 1 and counted["false_rejects"] == 1 and counted["apart_judged"] == 1


def test_a_refinement_refused_as_its_latest_inputs_left_counts_apart_only_if_they_are_another_phases() -> None:
    frozen = np.zeros(N, bool)
    reason = "latest_domain: 0.004975 < 0.05 (the latest 64 inputs differ from its window)"
    versions = [{"version": 2, "kind": "adapt", "status": "approved", "at_event": 100},  # in the clean phase
                {"version": 3, "kind": "refine", "status": "rejected", "at_event": 300, "refines": "2",
                 "guardrail_reasons": [reason]},  # the latest inputs are the next phase's
                {"version": 4, "kind": "adapt", "status": "approved", "at_event": 250},
                {"version": 5, "kind": "refine", "status": "rejected", "at_event": 400, "refines": "4",
                 "guardrail_reasons": [reason]}]  # the same phase: the check's mistake
    rows = score_decisions(versions, np.full(N, "1", dtype=object), frozen, frozen, DOMAIN, offline_correct=_always)
    assert {r["version"]: r["apart"] for r in rows if r["status"] == "rejected"} == {3: "stale, its domain gone",
                                                                                  5: None}


def test_a_rejection_at_the_end_of_a_domain_is_too_few_to_judge() -> None:
    rows = score_decisions([{"version": 3, "kind": "adapt", "status": "rejected", "at_event": 150}],
                           np.full(N, "1", dtype=object), np.zeros(N, bool), np.zeros(N, bool), DOMAIN,
                           offline_correct=_always)
    assert rows[0]["events"] == 50 and rows[0]["verdict"] == "too few to judge"
    assert rates(rows)["false_reject_rate"] is None and rates(rows)["too_few"] == 1


def test_the_base_and_a_tie_within_the_margin_are_not_mistakes() -> None:
    versions = [{"version": 1, "kind": "pretrain", "status": "approved", "at_event": 0},
                {"version": 2, "kind": "normalize", "status": "approved", "at_event": 0}]
    same = np.ones(N, bool)
    rows = score_decisions(versions, np.full(N, "2", dtype=object), same, same, DOMAIN, offline_correct=_never)
    assert [(r["version"], r["verdict"]) for r in rows] == [(2, "right")]


def test_a_finished_run_is_scored_from_its_files_and_a_refused_candidate_is_run_from_its_registry(tmp_path) -> None:
    import json

    from driftwise.bench.guardrail_decisions import score_run
    from driftwise.drift.adapter import predict_proba
    from driftwise.models.registry import Registry
    from tests.service.conftest import SHAPE, tiny_classifier

    run = tmp_path / "runs" / "stream-x"
    registry = Registry(run / "registry-adaptive")
    registry.publish("digits", tiny_classifier(0), reason="pretrain")
    registry.publish("digits", tiny_classifier(1), reason="adapt", parent=1, activate=False, status="rejected")
    X = np.random.default_rng(0).uniform(0, 16, size=(N, *SHAPE)).astype(np.float32)
    y = predict_proba(tiny_classifier(1), X).argmax(1)  # the refused candidate is right on every event
    np.savez(run / "stream.npz", X=X, y=y)
    results = {"phases_run": ["clean", "noise"], "config": {"phase_events": 300}, "base_version": 1,
               "correct": {"adaptive": [False] * N, "no_adapt": [False] * N}, "swaps": {"adaptive": []},
               "versions": [{"version": 2, "kind": "adapt", "status": "rejected", "at_event": 300}]}
    (tmp_path / "stream-x.json").write_text(json.dumps(results))
    (row,) = score_run(tmp_path / "stream-x.json", run)
    assert (row["verdict"], row["events"], row["family"]) == ("false reject", 300, "noise")
    assert row["gain_points"] == 100.0


def test_a_promotion_is_also_judged_against_the_model_it_replaced_run_on_the_same_events() -> None:
    served = np.array(["1"] * 250 + ["2"] * 100 + ["3"] * 250, dtype=object)  # v3 replaced the interim v2
    frozen = np.zeros(N, bool)
    adaptive = np.ones(N, bool)
    adaptive[350:400] = False  # v3 is right on 200 of its 250 events: better than frozen, worse than v2
    asked = []

    def offline(version: int, idx: np.ndarray) -> np.ndarray:
        asked.append(version)
        return np.ones(len(idx), bool)  # v2 would have been right on all of them

    rows = score_decisions([{"version": 3, "kind": "adapt", "status": "approved", "at_event": 350}], served,
                           adaptive, frozen, DOMAIN, offline_correct=offline)
    assert (rows[0]["verdict"], rows[0]["verdict_vs_alternative"], rows[0]["alternative"]) == \
        ("right", "false accept", "2")
    assert asked == [2] and round(rows[0]["gain_vs_alternative_points"]) == -20
    assert rates(rows, verdict="verdict_vs_alternative")["false_accept_rate"] == 1.0


def test_a_rejection_is_also_judged_against_what_the_service_served_instead() -> None:
    frozen = np.zeros(N, bool)
    rows = score_decisions([{"version": 3, "kind": "refine", "status": "rejected", "at_event": 300}],
                           np.full(N, "2", dtype=object), np.ones(N, bool), frozen, DOMAIN,
                           offline_correct=lambda version, idx: np.arange(len(idx)) % 2 == 0)  # right on half
    assert (rows[0]["verdict"], rows[0]["verdict_vs_alternative"]) == ("false reject", "right")
    assert rates(rows, verdict="verdict_vs_alternative")["false_reject_rate"] == 0.0
