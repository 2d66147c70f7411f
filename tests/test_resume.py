"""A run killed mid-training and resumed from its last checkpoint ends with the uninterrupted run's metrics."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from recbole_genni import run_recbole_genni
from recbole_genni.utils import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
KILLED_AFTER_EPOCH = 2

# The CLI in a child process that SIGKILLs itself once the last-epoch checkpoint of KILLED_AFTER_EPOCH is written:
# a hard kill at a fixed point, where killing from outside raced a fast machine to the end of training.
_KILLED_CLI = textwrap.dedent(f"""
    import os, signal, sys
    sys.path.insert(0, {str(ROOT)!r})
    from recbole_genni.trainer import Trainer
    save_last = Trainer._save_last_checkpoint

    def save_last_then_die(self, epoch):
        save_last(self, epoch)
        if epoch == {KILLED_AFTER_EPOCH}:
            os.kill(os.getpid(), signal.SIGKILL)

    Trainer._save_last_checkpoint = save_last_then_die
    import run_recbole_genni
    sys.exit(run_recbole_genni.main(sys.argv[1:]))
""")


@pytest.mark.timeout(300)
@pytest.mark.parametrize("model, extra", [
    ("SASRec", {}), ("GenNiSASRec", {}), ("GenNiSASRec", {"train_bucket_batches": 2, "train_batch_size": 8}),
], ids=["SASRec", "GenNiSASRec", "GenNiSASRec-bucketed"])
def test_killed_run_resumes_to_the_same_metrics(model, extra, base_config, tmp_path):
    config = {**base_config, "epochs": 6, "stopping_step": 100, "neg_num": 2, "seed": 5, **extra}
    reference = run_recbole_genni(model, "tiny", config_dict={**config, "checkpoint_dir": str(tmp_path / "ref")})

    killed_dir = tmp_path / "killed"
    args = [f"--{k}={v}" for k, v in config.items() if k not in ("load_col", "checkpoint_dir")]
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_CLI, f"--model={model}", "--dataset=tiny",
         f"--checkpoint_dir={killed_dir}", "--load_col=None", *args],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=240,
    )
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    (last,) = killed_dir.glob("*-last.pth")
    assert load_checkpoint(last, "cpu")["epoch"] == KILLED_AFTER_EPOCH

    resumed = run_recbole_genni(model, "tiny", config_dict={
        **config, "checkpoint_dir": str(killed_dir), "resume_checkpoint": str(last),
    })
    assert resumed["test_result"] == reference["test_result"]
    assert resumed["best_valid_result"] == reference["best_valid_result"]
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in reference["history"]]
