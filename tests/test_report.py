"""docs/benchmarks.md is what the committed results give, byte for byte, and every results file has a section."""

import pytest

from benchmarks import report


def test_the_benchmarks_page_is_regenerated_from_the_committed_results():
    assert report.render() == report.render()
    assert report.main(["--check"]) == 0, "run python benchmarks/report.py and commit docs/benchmarks.md"


def test_a_results_file_without_a_section_is_refused(tmp_path, monkeypatch):
    (tmp_path / "new.jsonl").write_text("")
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    with pytest.raises(SystemExit, match="new.jsonl: results file"):
        report.render()
