"""driftwise.bench.collapse_confidence: the shipped `collapse_confidence` sits between what it measured for concept and
covariate shifts, and its report says so."""

from __future__ import annotations

import json
from pathlib import Path

from driftwise.bench import collapse_confidence as bc
from driftwise.drift.loop_config import LoopConfig


def _row(family: str, interim: float, concept: bool = False) -> dict:
    return {"dataset": "d", "seed": 0, "family": family, "concept": concept, "base_ratio": interim,
            "interim_ratio": interim, "base_accuracy": 0.5, "interim_accuracy": 0.5}


def test_the_shipped_default_separates_the_committed_measurement() -> None:
    rows = json.loads((bc.RESULTS / "collapse-confidence.json").read_text())["rows"]
    covariate = [r["interim_ratio"] for r in rows if not r["concept"] and r["family"] != "clean"]
    concept = [r["interim_ratio"] for r in rows if r["concept"]]
    assert concept and covariate
    assert max(concept) < LoopConfig().collapse_confidence <= min(covariate)


def test_the_report_states_the_separation(tmp_path: Path) -> None:
    rows = [_row("clean", 1.0), _row("noise", 0.9), _row("blur", 0.95), _row("inversion", 0.7, concept=True)]
    text = bc.write(rows, tmp_path, "cmd").read_text()
    assert "covariate shifts: min 0.90; concept (inversion, not held out): max 0.70" in text
    assert "| d | 0 | inversion (concept) | 0.70 | 0.70 |" in text
    assert json.loads((tmp_path / "collapse-confidence.json").read_text())["rows"] == rows


def test_families_add_the_concept_ones_to_digits_only() -> None:
    assert "inversion" in bc.families("digits")
    assert "inversion" not in bc.families("tabular")
