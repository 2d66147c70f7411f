"""A run killed mid-training and resumed from its last checkpoint ends with the uninterrupted run's metrics."""

import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from recbole_genni import run_recbole_genni
from recbole_genni.compat import load_checkpoint
from recbole_genni.errors import GenNiConfigError

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


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("model, extra", [
    ("SASRec", {}), ("GenNiSASRec", {}), ("GenNiSASRec", {"train_bucket_batches": 2, "train_batch_size": 8}),
], ids=["SASRec", "GenNiSASRec", "GenNiSASRec-bucketed"])
def test_resume_same_metrics(model, extra, base_config, tmp_path):
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


# Every process of the run (spawned ranks too) imports sitecustomize: rank 0 SIGKILLs itself once it has written
# the last-epoch checkpoint of KILLED_AFTER_EPOCH, the other rank is then ended by torch's spawn.
_KILL_RANK_ZERO = textwrap.dedent(f"""
    import os, signal
    from recbole_genni.trainer import Trainer
    save_last = Trainer._save_last_checkpoint

    def save_last_then_die(self, epoch):
        save_last(self, epoch)
        if epoch == {KILLED_AFTER_EPOCH} and self._rank == 0:
            os.kill(os.getpid(), signal.SIGKILL)

    Trainer._save_last_checkpoint = save_last_then_die
""")


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ddp_resume_same_metrics(base_config, tmp_path):
    """Each rank's random streams (dropout, shuffling, negatives) are saved and restored, not rank 0's for all."""
    config = {**base_config, "epochs": 5, "stopping_step": 100, "neg_num": 2, "seed": 5,
              "train_batch_size": 16, "hidden_dropout_prob": 0.3}
    reference = run_recbole_genni("SASRec", "tiny", nproc=2, ip="127.0.0.1", port=_free_port(),
                                  config_dict={**config, "checkpoint_dir": str(tmp_path / "ref")})
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_KILL_RANK_ZERO)
    killed_dir = tmp_path / "killed"
    args = [f"--{k}={v}" for k, v in config.items() if k not in ("load_col", "checkpoint_dir")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hooks), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run_recbole_genni.py"), "--model=SASRec", "--dataset=tiny", "--nproc=2",
         "--ip=127.0.0.1", f"--port={_free_port()}", f"--checkpoint_dir={killed_dir}", "--load_col=None", *args],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=240, env=env,
    )
    assert proc.returncode != 0, proc.stderr.decode()[-2000:]
    (last,) = killed_dir.glob("*-last.pth")
    checkpoint = load_checkpoint(last, "cpu")
    assert checkpoint["epoch"] == KILLED_AFTER_EPOCH and len(checkpoint["rng"]) == 2
    assert not torch.equal(checkpoint["rng"][0]["torch"], checkpoint["rng"][1]["torch"])  # each rank its own

    resumed = run_recbole_genni("SASRec", "tiny", nproc=2, ip="127.0.0.1", port=_free_port(), config_dict={
        **config, "checkpoint_dir": str(killed_dir), "resume_checkpoint": str(last),
    })
    assert resumed["test_result"] == reference["test_result"]
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in reference["history"]]


def test_resume_writes_to_checkpoint_dir(base_config, tmp_path):
    config = {**base_config, "epochs": 2, "stopping_step": 100}
    run_recbole_genni("SASRec", "tiny", config_dict={**config, "checkpoint_dir": str(tmp_path / "old")})
    shutil.move(tmp_path / "old", tmp_path / "moved")
    (last,) = (tmp_path / "moved").glob("*-last.pth")
    run_recbole_genni("SASRec", "tiny", config_dict={
        **config, "epochs": 3, "checkpoint_dir": str(tmp_path / "moved"), "resume_checkpoint": str(last),
    })
    assert not (tmp_path / "old").exists()
    assert load_checkpoint(last, "cpu")["epoch"] == 2  # the moved -last.pth was rewritten after the third epoch


def _written_checkpoint(base_config, folder):
    run_recbole_genni("SASRec", "tiny", config_dict={**base_config, "checkpoint_dir": str(folder)})
    (last,) = Path(folder).glob("*-last.pth")
    return last


@pytest.mark.parametrize("make, message", [
    (lambda last, tmp: tmp / "nope-last.pth", r"resume_checkpoint: .*nope-last.pth: no such file; expected a "
                                              r"checkpoint this package wrote"),
    (lambda last, tmp: _truncated(last, tmp / "cut.pth"),
     r"resume_checkpoint: .*cut.pth is not readable as a checkpoint \(.*\); it may be truncated or not a torch file"),
    (lambda last, tmp: _saved({"weights": torch.zeros(2)}, tmp / "foreign.pth"),
     r"resume_checkpoint: .*foreign.pth holds a dict without \['config', 'epoch', .*\], not a training state"),
    (lambda last, tmp: _saved([1, 2], tmp / "list.pth"), r"list.pth holds a list, not a training state"),
])
def test_bad_resume_described(make, message, base_config, tmp_path):
    path = make(_written_checkpoint(base_config, tmp_path / "saved"), tmp_path)
    with pytest.raises(GenNiConfigError, match=message):
        run_recbole_genni("SASRec", "tiny", config_dict={**base_config, "resume_checkpoint": str(path),
                                                           "checkpoint_dir": str(tmp_path / "other")})


def test_other_model_checkpoint_refused(base_config, tmp_path):
    last = _written_checkpoint(base_config, tmp_path / "saved")
    with pytest.raises(GenNiConfigError, match=r"was written by a run of SASRec on tiny, and this run is GRU4Rec on "
                                               r"tiny; resume it with --model=SASRec --dataset=tiny"):
        run_recbole_genni("GRU4Rec", "tiny", config_dict={**base_config, "resume_checkpoint": str(last)})
    with pytest.raises(GenNiConfigError, match=r"-last.pth was trained with hidden_size: 16 and this run sets 32; a "
                                               r"resumed run keeps the checkpoint's settings but .*: drop hidden_size, "
                                               r"or start a new run"):
        run_recbole_genni("SASRec", "tiny", config_dict={**base_config, "resume_checkpoint": str(last),
                                                           "hidden_size": 32})


def test_resume_applies_learning_rate(base_config, tmp_path):
    last = _written_checkpoint(base_config, tmp_path / "saved")
    with pytest.raises(GenNiConfigError, match=r"was trained with neg_num: 1 and this run sets 3; .*drop neg_num"):
        run_recbole_genni("SASRec", "tiny", config_dict={**base_config, "resume_checkpoint": str(last), "neg_num": 3,
                                                           "checkpoint_dir": str(tmp_path / "saved")})
    assert load_checkpoint(last, "cpu")["optimizer"]["param_groups"][0]["lr"] == 0.001
    run_recbole_genni("SASRec", "tiny", config_dict={**base_config, "resume_checkpoint": str(last), "epochs": 2,
                                                       "learning_rate": 0.0002,
                                                       "checkpoint_dir": str(tmp_path / "saved")})
    resumed = load_checkpoint(last, "cpu")
    assert resumed["epoch"] == 1 and resumed["optimizer"]["param_groups"][0]["lr"] == 0.0002


def _truncated(source, target):
    data = Path(source).read_bytes()
    Path(target).write_bytes(data[: len(data) // 2])
    return target


def _saved(obj, target):
    torch.save(obj, target)
    return target


def test_full_disk_keeps_checkpoint(base_config, tmp_path, monkeypatch):
    """The third epoch's checkpoints cannot be written: the second epoch's stay whole, with no temporary beside."""
    import errno

    from recbole_genni import trainer as trainer_module

    saves = []
    real_save = torch.save

    def save_until_the_disk_fills(state, f, **kwargs):
        saves.append(state["epoch"])
        if state["epoch"] == 2:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(state, f, **kwargs)

    monkeypatch.setattr(trainer_module.torch, "save", save_until_the_disk_fills)
    folder = tmp_path / "saved"
    with pytest.raises(trainer_module.CheckpointWriteError,
                       match=r"-last.pth|\.pth: could not write the checkpoint \(No space left on device\); the "
                             r"previous one is kept whole"):
        run_recbole_genni("SASRec", "tiny", config_dict={**base_config, "epochs": 4, "stopping_step": 100,
                                                           "checkpoint_dir": str(folder)})
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == 2 and all(name.endswith(".pth") for name in files)  # no temporary left behind
    assert all(load_checkpoint(folder / name, "cpu")["epoch"] <= 1 for name in files)


def test_nan_loss_stops(base_config, tmp_path, capsys,
                                                                                 monkeypatch):
    import sys

    from recbole_genni.cli import main

    saved = tmp_path / "diverged"
    argv = ["--model=SASRec", "--dataset=tiny", *[f"--{k}={v}" for k, v in base_config.items()
                                                   if k not in ("checkpoint_dir", "load_col", "epochs")],
            f"--checkpoint_dir={saved}", "--epochs=3", "--learning_rate=1e30", "--neg_sampler=uniform"]
    monkeypatch.setattr(sys, "argv", ["recbole-genni", *argv])  # RecBole's Config reads the keys from sys.argv
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "the training loss is NaN; lower learning_rate (1e+30 now)" in err
    assert err.startswith("error: epoch ")
    if "is kept in" in err:  # a NaN after a validated epoch: its state is still there, whole
        assert load_checkpoint(next(saved.glob("*-last.pth")), "cpu")["epoch"] >= 0


def test_pickled_checkpoint_needs_trust(base_config, tmp_path):
    from tests.conftest import write_earlier_version

    last = _written_checkpoint(base_config, tmp_path / "saved")
    earlier = write_earlier_version(last, tmp_path / "earlier-last.pth")
    config = {**base_config, "resume_checkpoint": str(earlier), "epochs": 2, "checkpoint_dir": str(tmp_path / "saved")}
    with pytest.raises(GenNiConfigError, match=r"earlier-last.pth holds Python objects, not only tensors and plain "
                                               r"values .*set trust_checkpoint_pickle: True"):
        run_recbole_genni("SASRec", "tiny", config_dict=config)
    result = run_recbole_genni("SASRec", "tiny", config_dict={**config, "trust_checkpoint_pickle": True})
    assert len(result["history"]) == 2  # the first epoch's record came with the checkpoint
