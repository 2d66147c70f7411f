"""Re-evaluating a saved checkpoint reproduces its run's test metrics, the history mask only adds to them, and the
published code's rule (history scores set to 0) is applied as that code applies it."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

from benchmarks import reevaluate
from recbole_genni import run_recbole_genni

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reevaluate.py"


def test_reproduces_the_run(base_config, tmp_path):
    result = run_recbole_genni("GenNiSASRec", "tiny", config_dict={
        **base_config, "epochs": 2, "eval_mask_history": False, "neg_sampler": "genni", "loss_type": "SSM"})
    best = [p for p in (tmp_path / "saved").glob("*.pth") if not p.stem.endswith("-last")]
    out = tmp_path / "reevaluated.jsonl"
    # a fresh process: no RecBole Config has run there before the checkpoint's is unpickled
    done = subprocess.run([sys.executable, str(SCRIPT), str(best[0]), "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["dataset"] == "tiny"
    assert record["cell"].startswith("GenNiSASRec on tiny, seed 7: neg_sampler genni, loss_type SSM")
    unmasked, masked = record["unmasked"], record["masked"]
    assert unmasked["valid ndcg@10"] == result["best_valid_score"]
    for metric in reevaluate.TEST_METRICS:
        assert unmasked[metric] == result["test_result"][metric]
        assert masked[metric] >= unmasked[metric]
    assert set(record) == {"file", "dataset", "cell", *reevaluate.RULES}
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert written == [{**record, "command": written[0]["command"]}]
    assert written[0]["command"].startswith("python ") and "--out" in written[0]["command"]


def test_zeroed_rule():
    scores = torch.tensor([[-9.0, -1.0, 2.0, -3.0, 4.0], [-9.0, 5.0, -2.0, 1.0, -4.0]])

    class Trainer:
        model = SimpleNamespace(ITEM_SEQ="item_id_list")

        def _full_sort_batch_eval(self, batched_data):
            interaction, history_index, positive_u, positive_i = batched_data
            assert history_index is None  # the parent scores without its own mask
            return interaction, scores.clone(), positive_u, positive_i

    interaction = {"item_id_list": torch.tensor([[2, 3, 0], [4, 2, 1]])}  # row 1's target (1) is in its sequence
    history = (torch.tensor([0, 0, 1, 1]), torch.tensor([2, 3, 4, 2]))  # RecBole's history: the target left out
    positive_u, positive_i = torch.tensor([0, 1]), torch.tensor([1, 1])
    _, zeroed, _, _ = reevaluate.zeroing(Trainer)()._full_sort_batch_eval(
        (interaction, history, positive_u, positive_i))
    expected = scores.clone()
    expected[history] = 0
    expected[1, 1] = 0
    assert torch.equal(zeroed, expected)


def test_groups_split_metrics(base_config, tmp_path):
    run_recbole_genni("GenNiSASRec", "tiny", config_dict={**base_config, "epochs": 2})
    best = [p for p in (tmp_path / "saved").glob("*.pth") if not p.stem.endswith("-last")]
    groups = tmp_path / "groups.tsv"
    groups.write_text("category\tfirst_item\tlast_item\nlow\t1\t15\nhigh\t16\t40\n")
    done = subprocess.run([sys.executable, str(SCRIPT), str(best[0]), "--groups", str(groups)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    masked = json.loads(done.stdout.strip().splitlines()[-1])["masked"]
    by_group = masked["by_group"]
    assert list(by_group) == ["low", "high"] and all(g["users"] > 0 for g in by_group.values())
    assert sum(g["users"] for g in by_group.values()) == 30  # every tiny user has a test row
    for metric in ("hit@10", "ndcg@10"):
        weighed = sum(g[metric] * g["users"] for g in by_group.values()) / 30
        assert abs(weighed - masked[metric]) < 1e-4  # RecBole rounds its metrics to 4 digits
