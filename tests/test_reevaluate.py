"""Re-evaluating a saved checkpoint reproduces its run's test metrics, and the history mask only adds to them."""

import json
import subprocess
import sys
from pathlib import Path

from benchmarks import reevaluate
from recbole_genni import run_recbole_genni

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "reevaluate.py"


def test_reevaluate_reproduces_the_run_and_reports_both_protocols(base_config, tmp_path):
    result = run_recbole_genni("GenNiSASRec", "tiny", config_dict={
        **base_config, "epochs": 2, "eval_mask_history": False, "neg_sampler": "genni", "loss_type": "SSM"})
    best = [p for p in (tmp_path / "saved").glob("*.pth") if not p.stem.endswith("-last")]
    out = tmp_path / "reevaluated.jsonl"
    # a fresh process: no RecBole Config has run there before the checkpoint's is unpickled
    done = subprocess.run([sys.executable, str(SCRIPT), str(best[0]), "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["cell"].startswith("GenNiSASRec on tiny: neg_sampler genni, loss_type SSM")
    unmasked, masked = record["unmasked"], record["masked"]
    assert unmasked["valid ndcg@10"] == result["best_valid_score"]
    for metric in reevaluate.TEST_METRICS:
        assert unmasked[metric] == result["test_result"][metric]
        assert masked[metric] >= unmasked[metric]
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert written == [{**record, "command": written[0]["command"]}]
    assert written[0]["command"].startswith("python ") and "--out" in written[0]["command"]
