"""The benchmark suite runner: cells expand as declared, results append as they finish, a rerun resumes; every
committed suite is valid."""

import argparse
import json
import sys
from pathlib import Path

import pytest
import yaml

from benchmarks import run_suite
from recbole_genni.config import Config


def suite_file(tmp_path, base_config):
    suite = {
        "datasets": ["tiny"],
        "seeds": [1, 2],
        "defaults": {k: v for k, v in base_config.items() if k != "seed"},
        "models": ["GRU4Rec"],
        "samplers": {"uniform": {"neg_sampler": "uniform"}, "genni": {"neg_sampler": "genni"}},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def test_set_parses_yaml():
    assert run_suite.parse_setting("train_time_budget=420") == ("train_time_budget", 420)
    assert run_suite.parse_setting("neg_pool_size=all") == ("neg_pool_size", "all")
    with pytest.raises(argparse.ArgumentTypeError, match="expected KEY=VALUE"):
        run_suite.parse_setting("epochs")
    with pytest.raises(argparse.ArgumentTypeError, match="use --seed"):
        run_suite.parse_setting("seed=3")


def test_expand_cells(tmp_path, base_config):
    cells = list(run_suite.expand(yaml.safe_load(suite_file(tmp_path, base_config).read_text())))
    assert [c["key"] for c in cells] == [
        "GRU4Rec/uniform|tiny|1", "GRU4Rec/genni|tiny|1", "GRU4Rec/uniform|tiny|2", "GRU4Rec/genni|tiny|2",
    ]
    assert cells[3]["config"]["neg_sampler"] == "genni" and cells[3]["config"]["seed"] == 2


def test_best_epoch_last_of_ties():
    assert run_suite.best_epoch([0.1, 0.3, None, 0.2, 0.3, 0.25]) == 4
    assert run_suite.best_epoch([None, None]) is None


def test_set_wins_over_a_cells_own_config(tmp_path, base_config):
    suite = yaml.safe_load(suite_file(tmp_path, base_config).read_text())
    cells = list(run_suite.expand(suite, {"neg_sampler": "popularity", "epochs": 2}))
    assert [c["config"]["neg_sampler"] for c in cells] == ["popularity"] * 4
    assert all(c["config"]["epochs"] == 2 for c in cells)


def test_results_append_and_a_rerun_resumes(tmp_path, base_config, monkeypatch, capsys):
    suite = suite_file(tmp_path, base_config)
    out = tmp_path / "res.jsonl"
    monkeypatch.setattr(sys, "argv", ["run_suite.py", str(suite), "--out", str(out), "--parallel", "2",
                                      "--set", "epochs=2", "--set", "stopping_step=5"])
    assert run_suite.main() == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 4 and all(set(r["test"]) == set(run_suite.METRICS) for r in records)
    assert all(r["best_valid"]["ndcg@10"] == max(h["valid_score"] for h in r["history"]) for r in records)
    assert all(r["epochs"] == 2 and r["stop_reason"] == "epochs" for r in records)  # --set reached every cell
    assert all(r["config"]["epochs"] == 2 and r["config"]["seed"] == r["seed"] for r in records)
    assert all(r["commit"] == run_suite.package_commit() != "" for r in records)
    for r in records:  # an epoch's seconds: its training plus its validation, as recorded in the epoch's history
        epoch_seconds = [h["train_seconds"] + h["valid_seconds"] for h in r["history"]]
        assert r["seconds_per_epoch"] == pytest.approx(sum(epoch_seconds) / 2)
        assert r["seconds_per_epoch"] > r["train_seconds_per_epoch"] > 0
        steps = sum(h["train_steps"] for h in r["history"])
        assert steps > 0 and r["train_seconds_per_step"] == pytest.approx(r["train_seconds_per_epoch"] * 2 / steps)
    table = capsys.readouterr().out.split("\ntiny\n")[-1].splitlines()  # the suite's table, printed at the end
    assert [row.split(" | ")[:2] for row in table[2:]] == [["| GRU4Rec/genni", "1, 2"], ["| GRU4Rec/uniform", "1, 2"]]
    assert not list(tmp_path.glob("*.md")) and not list(tmp_path.glob("*.png"))  # docs come from report.py

    # a kill mid-write leaves a cut line: that cell (and only it) runs again
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["run_suite.py", str(suite), "--out", str(out)])
    assert run_suite.main() == 0
    printed = capsys.readouterr().out
    assert printed.count("done, skipped") == 3 and printed.count(": to run") == 1
    assert sorted(r["key"] for r in run_suite.read_records(out)) == sorted(r["key"] for r in records)


def test_a_suites_groups_split_each_record(tmp_path, base_config, monkeypatch):
    """With ``groups`` for its dataset, a cell's record adds its tested model's test metrics per group of users:
    every test user in one group, the groups' metrics weighing up to the record's own."""
    groups = tmp_path / "groups.tsv"
    groups.write_text("category\tfirst_item\tlast_item\nlow\t1\t15\nhigh\t16\t40\n")
    suite = yaml.safe_load(suite_file(tmp_path, base_config).read_text())
    suite.update(seeds=[1], samplers={"uniform": {"neg_sampler": "uniform"}}, groups={"tiny": str(groups)})
    path = tmp_path / "grouped.yaml"
    path.write_text(yaml.safe_dump(suite))
    out = tmp_path / "res.jsonl"
    monkeypatch.setattr(sys, "argv", ["run_suite.py", str(path), "--out", str(out)])
    assert run_suite.main() == 0
    [record] = run_suite.read_records(out)
    by_group = record["test_by_group"]
    assert list(by_group) == ["low", "high"] and sum(g["users"] for g in by_group.values()) == 30
    for metric in ("hit@10", "ndcg@10"):
        weighed = sum(g[metric] * g["users"] for g in by_group.values()) / 30
        assert abs(weighed - record["test"][metric]) < 1e-4  # RecBole rounds its metrics to 4 digits


def test_a_missing_groups_file_stops_the_suite_before_training(tmp_path, base_config, monkeypatch):
    suite = yaml.safe_load(suite_file(tmp_path, base_config).read_text())
    suite["groups"] = {"tiny": str(tmp_path / "nowhere.tsv")}
    path = tmp_path / "grouped.yaml"
    path.write_text(yaml.safe_dump(suite))
    monkeypatch.setattr(sys, "argv", ["run_suite.py", str(path), "--out", str(tmp_path / "res.jsonl")])
    with pytest.raises(SystemExit, match=r"groups: .*nowhere.tsv \(the item groups of tiny\) is missing"):
        run_suite.main()
    assert not (tmp_path / "res.jsonl").exists()


SUITES = sorted((Path(__file__).parent.parent / "benchmarks" / "suites").glob("*.yaml"))


@pytest.mark.parametrize("suite_path", SUITES, ids=[p.stem for p in SUITES])
def test_every_cell_valid(suite_path, base_config):
    """A misspelt key or a bad value in a suite fails here, not after a GPU was started for it."""
    suite = yaml.safe_load(suite_path.read_text())
    assert suite_path.read_text().startswith(f"# {suite_path.stem}: "), "a header comment saying what it answers"
    if "catalogues" in suite:  # run by scale.py: GenNiSASRec on synthetic catalogues
        cells = [{"key": c["name"], "model": "GenNiSASRec", "config": {**suite["defaults"], **c["config"]}}
                 for c in suite["cells"]]
    else:
        cells = list(run_suite.expand(suite))
    assert len({cell["key"] for cell in cells}) == len(cells)
    for cell in cells:
        Config(cell["model"], "tiny", config_dict={**base_config, **cell["config"]})


def test_a_scale_suite_is_sent_to_scale_py(monkeypatch, capsys):
    scale = Path(__file__).parent.parent / "benchmarks" / "suites" / "scale.yaml"
    monkeypatch.setattr(sys, "argv", ["run_suite.py", str(scale)])
    with pytest.raises(SystemExit):
        run_suite.main()
    assert "run it with python benchmarks/scale.py" in capsys.readouterr().err


def test_a_missing_suite_is_named(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["run_suite.py"])
    with pytest.raises(SystemExit):
        run_suite.main()
    assert "the suite YAML (benchmarks/suites/*.yaml) is required" in capsys.readouterr().err


def test_step_cost_turn_by_turn(tmp_path, base_config, monkeypatch, capsys):
    import recbole.data

    from benchmarks import step_cost

    loads = []
    create_dataset = recbole.data.create_dataset
    monkeypatch.setattr(recbole.data, "create_dataset", lambda config: loads.append(1) or create_dataset(config))
    out = tmp_path / "cost.jsonl"
    monkeypatch.setattr(sys, "argv", ["step_cost.py", str(suite_file(tmp_path, base_config)), "--only",
                                      "GRU4Rec/uniform", "--only", "GRU4Rec/genni", "--batches", "2",
                                      "--out", str(out)])
    step_cost.main()
    assert len(loads) == 1  # the two cells differ in their sampler only: one dataset loaded for both
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["name"] for r in records] == ["GRU4Rec/uniform", "GRU4Rec/genni"]
    assert records[0]["ratio"] == 1 and records[1]["ratio"] == records[1]["seconds_per_step"] / records[0][
        "seconds_per_step"]
    assert all(r["seconds_per_step"] > 0 and r["config"]["seed"] == 1 for r in records)
    assert all(r["step_peak_memory_mb"] >= 0 for r in records)  # tiny steps reuse freed memory: 0 is possible
    assert "GRU4Rec/genni" in capsys.readouterr().out


def test_step_cost_one_allocator_setting(tmp_path, base_config, monkeypatch, capsys):
    """Cells that set ``keep_freed_memory`` differently are refused: the first cell kept would keep for all."""
    from benchmarks import step_cost

    suite = yaml.safe_load(suite_file(tmp_path, base_config).read_text())
    suite["samplers"]["genni"]["keep_freed_memory"] = False
    path = tmp_path / "mixed.yaml"
    path.write_text(yaml.safe_dump(suite))
    monkeypatch.setattr(sys, "argv", ["step_cost.py", str(path), "--only", "GRU4Rec/uniform", "--only",
                                      "GRU4Rec/genni", "--out", str(tmp_path / "cost.jsonl")])
    with pytest.raises(SystemExit):
        step_cost.main()
    assert "keep_freed_memory: the cells set it differently" in capsys.readouterr().err
    assert not (tmp_path / "cost.jsonl").exists()


def test_step_memory():
    import torch

    from benchmarks.step_cost import StepMemory

    held = torch.ones(64 * 2**20 // 4)  # 64 MB resident before the step
    memory = StepMemory(torch.device("cpu"))
    step = torch.ones(128 * 2**20 // 4)  # 128 MB touched by the step, then freed
    del step
    peak = memory.peak_above_start()
    assert 120 * 2**20 < peak < 180 * 2**20
    assert held.sum() > 0


def test_step_cost_unknown_dataset(tmp_path, base_config, monkeypatch, capsys):
    from benchmarks import step_cost

    monkeypatch.setattr(sys, "argv", ["step_cost.py", str(suite_file(tmp_path, base_config)), "--only",
                                      "GRU4Rec/uniform", "--dataset", "Beauty"])
    with pytest.raises(SystemExit):
        step_cost.main()
    assert "--dataset Beauty: not among the datasets of" in capsys.readouterr().err
