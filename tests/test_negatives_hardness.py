"""benchmarks/negatives.py: every sampler draws from one model state; ranks and group shares are counted right."""

import json
import subprocess
import sys
from pathlib import Path

import torch
import yaml

from benchmarks import negatives
from benchmarks.groups import item_groups
from recbole_genni import run_recbole_genni

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "negatives.py"


def test_hardness_counts():
    # item 0 is padding; items 1..5 scored 5, 4, 3, 2, 1 for the one position
    scores = torch.tensor([[9.0, 5.0, 4.0, 3.0, 2.0, 1.0]])
    groups = torch.tensor([-1, 0, 0, 1, 1, 1])
    record = negatives.hardness(scores, torch.tensor([3]), torch.tensor([[1, 5]]), groups)
    assert record["mean_rank"] == (0 / 5 + 4 / 5) / 2  # the best item has none above it, the worst four
    assert record["top1000_share"] == 1.0
    assert record["own_group_share"] == 0.5  # item 5 shares item 3's group, item 1 does not


def test_item_groups_map_ranges(tmp_path):
    tsv = tmp_path / "groups.tsv"
    tsv.write_text("category\tfirst_item\tlast_item\tinteractions\na\t1\t2\t5\nb\t3\t9\t7\n")
    groups = item_groups(tsv, ["[PAD]", "3", "1", "2", "10"])
    assert groups.tolist() == [-1, 1, 0, 0, -1]


def test_uniform_vs_top_k_ranks(base_config, tmp_path):
    run_recbole_genni("GenNiSASRec", "tiny", config_dict={
        **base_config, "epochs": 3, "neg_sampler": "genni", "loss_type": "SSM", "neg_num": 5, "neg_pool_size": 40})
    best = [p for p in (tmp_path / "saved").glob("*.pth") if not p.stem.endswith("-last")][0]
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({
        "datasets": ["tiny"], "seeds": [7], "defaults": {"neg_pool_size": 20},
        "cells": [{"name": "uniform", "model": "GenNiSASRec", "config": {"neg_sampler": "uniform", "neg_num": 5}},
                  {"name": "dns", "model": "GenNiSASRec",
                   "config": {"neg_sampler": "dns", "neg_num": 5, "neg_pool_size": "all", "neg_exclude": "target",
                              "loss_type": "BCE"}},
                  {"name": "exact", "model": "GenNiSASRec",
                   "config": {"neg_sampler": "genni", "neg_num": 5, "neg_pool_size": "all", "neg_replacement": True}},
                  {"name": "pool", "model": "GenNiSASRec", "config": {"neg_sampler": "genni", "neg_num": 3,
                                                                       "neg_pool_size": 4}},
                  {"name": "midx", "model": "GenNiSASRec",
                   "config": {"neg_sampler": "midx", "neg_num": 5, "neg_index_clusters": 3}}]}))
    out = tmp_path / "negatives.jsonl"
    cells = [arg for name in ("uniform", "dns", "exact", "pool", "midx") for arg in ("--only", name)]
    done = subprocess.run([sys.executable, str(SCRIPT), str(best), str(suite), *cells, "--positions", "64",
                           "--out", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    uniform, dns, exact, pool, midx = (json.loads(line) for line in out.read_text().splitlines())
    # one draw's distribution against the model's softmax: the exact draw is it; a pool of 4 and the index are not
    assert "tv_to_softmax" not in uniform and "tv_to_softmax" not in dns and exact["tv_to_softmax"] < 1e-9
    assert 0.3 < pool["tv_to_softmax"] < 1 and 0 < midx["tv_to_softmax"] < pool["tv_to_softmax"]
    assert uniform["positions"] == dns["positions"] == 64 and uniform["negatives_per_position"] == 5
    assert 0.35 < uniform["mean_rank"] < 0.65  # uniform over the catalogue, history excluded
    # the model's five best items other than the target: at most five items (four and the target) above each
    assert 0 < dns["mean_rank"] <= 5 / 40 and dns["top1000_share"] == 1
    assert dns["sampler"]["neg_pool_size"] == "all"
    assert "neg_sampler genni, loss_type SSM" in uniform["checkpoint_model"] and uniform["checkpoint_cell"] == "?"
    assert uniform["checkpoint_epoch"] == 2 and 0 < uniform["checkpoint_valid_score"] <= 1


def test_tv_to_softmax(base_config, loader_for):
    train, net = loader_for(base_config, neg_exclude="none")
    scores = torch.randn(2, net.negatives.candidates.item_num, generator=torch.Generator().manual_seed(0))
    users, targets = torch.tensor([1, 2]), torch.tensor([3, 4])
    exact = torch.softmax(scores[:, 1:].double(), dim=1)
    padded = torch.cat([torch.zeros(2, 1, dtype=torch.double), exact], dim=1)
    assert negatives.tv_to_softmax(padded, scores, users, targets, net.negatives.candidates) < 1e-12
    point = torch.zeros_like(padded)
    point[:, 1] = 1.0  # all mass on item 1
    expected = (1 - exact[:, 0]).mean().item()
    assert abs(negatives.tv_to_softmax(point, scores, users, targets, net.negatives.candidates) - expected) < 1e-12
