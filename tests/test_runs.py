"""recbole-genni-runs: one table across the runs' results JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

from recbole_genni.runs import main

ROOT = Path(__file__).resolve().parents[1]


def test_a_run_is_a_row(base_config, tmp_path, capsys):
    keys = {**base_config, "neg_sampler": "uniform", "neg_num": 2}
    subprocess.run([sys.executable, str(ROOT / "run_recbole_genni.py"), "--model=GRU4Rec", "--dataset=tiny",
                    *(f"--{k}={v}" for k, v in keys.items())], cwd=tmp_path, check=True, capture_output=True)
    assert main([str(tmp_path / "log")]) == 0
    header, rule, row = capsys.readouterr().out.strip().splitlines()
    assert header.startswith("| run | model | dataset | negatives | epochs |") and rule.startswith("|---|")
    record = json.loads(next((tmp_path / "log" / "GRU4Rec").glob("*.json")).read_text())
    assert f"| {record['run_id']} | GRU4Rec | tiny | uniform, K=2, excluding history; loss BPR | 1 | epochs |" in row
    assert row.endswith(f"| {record['test_result']['ndcg@10']:.4f} |")


def test_filters_sort_and_refusals(tmp_path, capsys):
    for run, (model, ndcg) in enumerate([("SASRec", 0.1), ("GRU4Rec", 0.3), ("SASRec", 0.2)]):
        folder = tmp_path / model
        folder.mkdir(exist_ok=True)
        (folder / f"r{run}.json").write_text(json.dumps({
            "run_id": f"r{run}", "model": model, "dataset": "d", "train_seconds": 60.0,
            "best_valid_result": {"ndcg@10": ndcg}, "test_result": {"hit@10": 0.5, "ndcg@10": ndcg}}))
        os.utime(folder / f"r{run}.json", (run, run))
    assert main([str(tmp_path), "--model", "SASRec", "--sort", "test_ndcg@10"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == ["| r2", "| r0"]  # best first; GRU4Rec left out
    assert "| - | - | - | 1.0 | 0.2000 |" in rows[0]  # an earlier version's JSON: no negatives, epochs or stop
    assert main([str(tmp_path / "nosuch")]) == 2
    assert "nosuch: no such folder" in capsys.readouterr().err
