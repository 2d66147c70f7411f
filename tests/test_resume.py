"""A run killed mid-training and resumed from its last checkpoint ends with the uninterrupted run's metrics."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recbole_genni import run_recbole_genni
from recbole_genni.utils import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("model, extra", [
    ("SASRec", {}), ("GenNiSASRec", {}), ("GenNiSASRec", {"train_bucket_batches": 2, "train_batch_size": 8}),
], ids=["SASRec", "GenNiSASRec", "GenNiSASRec-bucketed"])
def test_killed_run_resumes_to_the_same_metrics(model, extra, base_config, tmp_path):
    config = {**base_config, "epochs": 6, "stopping_step": 100, "neg_num": 2, "seed": 5, **extra}
    reference = run_recbole_genni(model, "tiny", config_dict={**config, "checkpoint_dir": str(tmp_path / "ref")})

    killed_dir = tmp_path / "killed"
    args = [f"--{k}={v}" for k, v in config.items() if k not in ("load_col", "checkpoint_dir")]
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "run_recbole_genni.py"), f"--model={model}", "--dataset=tiny",
         f"--checkpoint_dir={killed_dir}", "--load_col=None", *args],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    last = None
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:  # kill once an epoch before the end is checkpointed
        found = list(killed_dir.glob("*-last.pth")) if killed_dir.exists() else []
        if found and load_checkpoint(found[0], "cpu")["epoch"] >= 1:
            last = found[0]
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait()
    assert last is not None, "the run ended before it could be killed mid-training"
    killed_at = load_checkpoint(last, "cpu")["epoch"]
    assert killed_at < config["epochs"] - 1

    resumed = run_recbole_genni(model, "tiny", config_dict={
        **config, "checkpoint_dir": str(killed_dir), "resume_checkpoint": str(last),
    })
    assert resumed["test_result"] == reference["test_result"]
    assert resumed["best_valid_result"] == reference["best_valid_result"]
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in reference["history"]]
