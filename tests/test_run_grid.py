"""The benchmark grid runner: cells expand as declared, results append as they finish, a rerun resumes."""

import argparse
import json
import sys

import pytest
import yaml

from benchmarks import run_grid


def grid_file(tmp_path, base_config):
    grid = {
        "datasets": ["tiny"],
        "seeds": [1, 2],
        "shared": {k: v for k, v in base_config.items() if k != "seed"},
        "models": ["GRU4Rec"],
        "samplers": {"uniform": {"neg_sampler": "uniform"}, "genni": {"neg_sampler": "genni"}},
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    return path


def test_set_parses_yaml_values_and_refuses_a_bare_key():
    assert run_grid.parse_setting("train_time_budget=420") == ("train_time_budget", 420)
    assert run_grid.parse_setting("neg_pool_size=all") == ("neg_pool_size", "all")
    with pytest.raises(argparse.ArgumentTypeError, match="expected KEY=VALUE"):
        run_grid.parse_setting("epochs")
    with pytest.raises(argparse.ArgumentTypeError, match="use --seed"):
        run_grid.parse_setting("seed=3")


def test_expand_models_times_samplers_times_seeds(tmp_path, base_config):
    cells = list(run_grid.expand(yaml.safe_load(grid_file(tmp_path, base_config).read_text())))
    assert [c["key"] for c in cells] == [
        "GRU4Rec/uniform|tiny|1", "GRU4Rec/genni|tiny|1", "GRU4Rec/uniform|tiny|2", "GRU4Rec/genni|tiny|2",
    ]
    assert cells[3]["config"]["neg_sampler"] == "genni" and cells[3]["config"]["seed"] == 2


def test_best_epoch_is_the_last_of_equal_best_scores():
    assert run_grid.best_epoch([0.1, 0.3, None, 0.2, 0.3, 0.25]) == 4
    assert run_grid.best_epoch([None, None]) is None


def test_set_wins_over_a_cells_own_config(tmp_path, base_config):
    grid = yaml.safe_load(grid_file(tmp_path, base_config).read_text())
    cells = list(run_grid.expand(grid, {"neg_sampler": "popularity", "epochs": 2}))
    assert [c["config"]["neg_sampler"] for c in cells] == ["popularity"] * 4
    assert all(c["config"]["epochs"] == 2 for c in cells)


def test_results_append_and_a_rerun_resumes(tmp_path, base_config, monkeypatch, capsys):
    grid = grid_file(tmp_path, base_config)
    out = tmp_path / "res.jsonl"
    monkeypatch.setattr(sys, "argv", ["run_grid.py", str(grid), "--out", str(out), "--parallel", "2",
                                      "--set", "epochs=2", "--set", "stopping_step=5"])
    assert run_grid.main() == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 4 and all(set(r["test"]) == set(run_grid.METRICS) for r in records)
    assert all(r["best_valid"]["ndcg@10"] == max(h["valid_score"] for h in r["history"]) for r in records)
    assert all(r["epochs"] == 2 and r["stop_reason"] == "epochs" for r in records)  # --set reached every cell
    assert all(r["config"]["epochs"] == 2 and r["config"]["seed"] == r["seed"] for r in records)
    assert all(r["commit"] == run_grid.package_commit() != "" for r in records)
    for r in records:  # an epoch's seconds: its training plus its validation, as recorded in the epoch's history
        epoch_seconds = [h["train_seconds"] + h["valid_seconds"] for h in r["history"]]
        assert r["seconds_per_epoch"] == pytest.approx(sum(epoch_seconds) / 2)
        assert r["seconds_per_epoch"] > r["train_seconds_per_epoch"] > 0
    report = (tmp_path / "res.md").read_text()
    assert "GRU4Rec/genni" in report and "GRU4Rec/uniform" in report and "![res-tiny](res-tiny.png)" in report
    assert (tmp_path / "res-tiny.png").stat().st_size > 1000

    # a kill mid-write leaves a cut line: that cell (and only it) runs again
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["run_grid.py", str(grid), "--out", str(out)])
    assert run_grid.main() == 0
    printed = capsys.readouterr().out
    assert printed.count("done, skipped") == 3 and printed.count(": to run") == 1
    assert sorted(r["key"] for r in run_grid.read_records(out)) == sorted(r["key"] for r in records)


def test_report_names_every_device_of_a_cells_seeds():
    def record(seed, device):
        return {"dataset": "tiny", "name": "cell", "seed": seed, "device": device,
                "test": dict.fromkeys(run_grid.METRICS, 0.1), "best_valid": {"ndcg@10": 0.1}, "epochs": 3,
                "best_epoch": 2, "train_seconds_per_epoch": 1.0,
                "sampling_seconds_per_epoch": 0.5, "peak_memory_mb": 10.0}

    records = [record(1, "CPU (2 threads)"), record(2, "CPU (1 threads)"), record(3, "CPU (1 threads)")]
    rows = [line for line in run_grid.report(records, "t").splitlines() if "| tiny | cell |" in line]
    assert len(rows) == 1 and rows[0].startswith("| tiny | cell | 3 |")
    assert rows[0].endswith("| CPU (2 threads) / CPU (1 threads) |")
