"""benchmarks/fetch_data.py: files checked by sha256, offline told where to put them, nothing half-written."""

import hashlib
import io

import pytest

from benchmarks import fetch_data, run_suite

CONTENT = b"1 2 3 4\n2 3 4 5\n"


@pytest.fixture
def tiny_source(monkeypatch):
    """One fetchable dataset, Tiny, whose upstream file is CONTENT."""
    digest = hashlib.sha256(CONTENT).hexdigest()
    monkeypatch.setattr(fetch_data, "DATASETS", {"Tiny": ("Tiny.txt", "https://example.org/Tiny.txt", digest)})
    return digest


def test_fetches_and_checks(tiny_source, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(fetch_data.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(CONTENT))
    assert fetch_data.main(["Tiny", "--to", str(tmp_path)]) == 0
    assert (tmp_path / "Tiny" / "Tiny.txt").read_bytes() == CONTENT
    assert fetch_data.main(["Tiny", "--to", str(tmp_path)]) == 0  # in place: kept
    assert "Tiny: fetched" in capsys.readouterr().out.splitlines()[0]


@pytest.mark.parametrize("answer, message", [
    (OSError("no network"), "Tiny: offline or unreachable (no network); download https://example.org/Tiny.txt to"),
    (b"tampered\n", "Tiny: https://example.org/Tiny.txt did not match its sha256"),
])
def test_refusals_write_nothing(answer, message, tiny_source, tmp_path, monkeypatch, capsys):
    def urlopen(url, timeout):
        if isinstance(answer, Exception):
            raise answer
        return io.BytesIO(answer)

    monkeypatch.setattr(fetch_data.urllib.request, "urlopen", urlopen)
    assert fetch_data.main(["Tiny", "--to", str(tmp_path)]) == 1
    assert message in capsys.readouterr().out and not any(tmp_path.iterdir())


def test_built_dataset_says_where_it_comes_from(tmp_path, capsys):
    assert fetch_data.main(["Amazon2014-Six", "--to", str(tmp_path)]) == 1
    assert "Tiny-Snow/SeqRecBenchmark-Datasets" in capsys.readouterr().out


def test_a_suite_names_the_fetch_for_a_missing_source(tmp_path):
    suite = {"convert": [str(tmp_path / "shared" / "Beauty" / "Beauty.txt")], "defaults": {"data_path": str(tmp_path)}}
    with pytest.raises(SystemExit, match="Beauty.txt: missing; python benchmarks/fetch_data.py Beauty --to"):
        run_suite.convert_sources(suite)
