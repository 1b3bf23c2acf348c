"""``driftwise bench serve --only SECTION``: one section measured again, the rest of the report kept word for word."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftwise.bench import serve


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each section renders its heading and the number it was given, so a test can tell old from new."""
    monkeypatch.setattr(serve, "SECTIONS", [
        (key, lambda quick: {}, lambda r, h=heading: f"{h} section\n\nvalue {r['value']}")
        for key, heading in serve.HEADINGS.items()
    ])


def test_only_kafka_replaces_that_section_and_keeps_the_others(tmp_path: Path, renders: None) -> None:
    path = tmp_path / "serve.md"
    serve.write_report({key: {"value": 1} for key in serve.HEADINGS}, quick=False, path=path)
    before = path.read_text()
    serve.write_report({"kafka": {"value": 2}}, quick=False, path=path, only=["kafka"])
    after = path.read_text()
    head, sections = serve._split_sections(after)
    assert sections["kafka"].endswith("value 2")
    assert sections["http"].endswith("value 1") and sections["replicas"].endswith("value 1")
    assert list(sections) == ["http", "kafka", "replicas"]  # the report's order is kept
    assert before.count("## ") == after.count("## ")
    assert head[0] == "# Serving benchmark" and head[-1].startswith("Regenerated alone by `driftwise bench serve "
                                                                    "--only kafka`")


def test_a_second_only_run_says_so_once(tmp_path: Path, renders: None) -> None:
    path = tmp_path / "serve.md"
    serve.write_report({key: {"value": 1} for key in serve.HEADINGS}, quick=False, path=path)
    for value in (2, 3):
        serve.write_report({"kafka": {"value": value}}, quick=False, path=path, only=["kafka"])
    assert path.read_text().count("Regenerated alone by") == 1
    assert serve._split_sections(path.read_text())[1]["kafka"].endswith("value 3")


def test_an_unknown_section_is_refused_before_anything_runs() -> None:
    with pytest.raises(ValueError, match="unknown section"):
        serve.run_serve_bench(quick=True, only=["kafak"])
