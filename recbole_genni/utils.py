"""Atomic file writes, the command line's error reporting, a run's id, and reading a checkpoint to continue from."""

import glob
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

from recbole_genni.compat import load_checkpoint
from recbole_genni.errors import GenNiConfigError, GenNiError


def atomic_write(target, write, mode: str = "w"):
    """Call ``write(f)`` on a temporary file of this process's own beside ``target``, then rename it over
    ``target``: a kill or an error leaves the old file whole, and two processes writing the same file at once (a
    grid's parallel cells converting one dataset) each leave a whole one. An error leaves no temporary behind; a
    kill leaves one, named with its process id, which the next write of ``target`` removes once that process is
    gone. ``mode`` is ``"w"`` (UTF-8 text) or ``"wb"``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphan_temporaries(target)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f"{target.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with open(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename makes it the file: a crash never leaves it empty
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; datasets, checkpoints and reports are read by others too
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def _remove_orphan_temporaries(target: Path):
    """Delete the temporaries of ``target`` left by killed writers: ``<name>.<pid>.<random>.tmp`` whose process
    no longer runs."""
    for tmp in target.parent.glob(f"{glob.escape(target.name)}.*.tmp"):
        pid = tmp.name[len(target.name) + 1:].split(".")[0]
        if pid.isdigit() and not _process_runs(int(pid)):
            tmp.unlink(missing_ok=True)


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def run_log_file():
    """The log file this process's runs write to (RecBole's ``init_logger`` attaches it to the root logger), or
    None."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return None


def run_id():
    """The id of the current run: its log file's name without ``.log`` (``<model>-<dataset>-<time>-<config
    hash>``, RecBole's), which its TensorBoard folder already bears and its checkpoints and results take; None
    without a log file."""
    path = run_log_file()
    return os.path.splitext(os.path.basename(path))[0] if path else None


def hide_upstream_future_warnings():
    """RecBole 1.2.1's FutureWarnings (its pandas chained assignments, its own deprecations) say nothing a user of
    this package can act on: the command-line tools do not show them."""
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole(\.|$)")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"pandas(\.|$)")


def run_cli(action) -> int:
    """Run ``action()`` for a command-line tool: a :class:`GenNiError` becomes one ``error:`` line on stderr and
    exit code 2; success is 0. Upstream FutureWarnings are hidden (:func:`hide_upstream_future_warnings`)."""
    hide_upstream_future_warnings()
    try:
        action()
    except GenNiError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


#: what a checkpoint of RecBole's trainer (and this package's) holds, the minimum to continue training from it
_TRAINING_CHECKPOINT_KEYS = ("config", "epoch", "cur_step", "best_valid_score", "state_dict", "optimizer")


def read_checkpoint(path, device, prefix: str, expected: str):
    """``torch.load`` of a checkpoint file; a truncated or foreign file raises :class:`GenNiConfigError` in one line
    (``prefix`` names the key or command, ``expected`` what it takes)."""
    try:
        return load_checkpoint(path, device)
    except Exception as err:  # torch.load raises many kinds on a truncated or foreign file
        reason = (str(err).splitlines() or [""])[0][:200]
        raise GenNiConfigError(
            f"{prefix}{path} is not readable as a checkpoint ({type(err).__name__}: {reason}); it may be "
            f"truncated or not a torch file; expected {expected}."
        ) from None


def read_training_checkpoint(path, device, config):
    """A checkpoint to continue training from, checked before any training: a missing, truncated or foreign file
    (another kind of pickle, another model or dataset) raises :class:`GenNiConfigError` saying what it is and what
    was expected."""
    expected = "a checkpoint this package wrote (<name>-last.pth continues exactly; the best-model one after its epoch)"
    if not os.path.isfile(path):
        raise GenNiConfigError(f"resume_checkpoint: {path}: no such file; expected {expected}.")
    checkpoint = read_checkpoint(path, device, "resume_checkpoint: ", expected)
    missing = [k for k in _TRAINING_CHECKPOINT_KEYS if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        what = f"a {type(checkpoint).__name__}" if not isinstance(checkpoint, dict) else f"a dict without {missing}"
        raise GenNiConfigError(f"resume_checkpoint: {path} holds {what}, not a training state; expected {expected}.")
    saved = checkpoint["config"]
    if (saved["model"], saved["dataset"]) != (config["model"], config["dataset"]):
        raise GenNiConfigError(
            f"resume_checkpoint: {path} was written by a run of {saved['model']} on {saved['dataset']}, and this run "
            f"is {config['model']} on {config['dataset']}; resume it with --model={saved['model']} "
            f"--dataset={saved['dataset']}."
        )
    _refuse_keys_a_resume_would_ignore(path, saved, config)
    return checkpoint


#: keys a resumed run takes from its own config: how long, where and how verbosely it goes on, its evaluation's batch,
#: its device and processes, and its learning rate (set on the restored optimizer); every other key is the
#: checkpoint's
RESUME_KEYS = frozenset({
    "resume_checkpoint", "epochs", "stopping_step", "train_time_budget", "eval_step", "checkpoint_dir", "data_path",
    "show_progress", "state", "eval_batch_size", "use_gpu", "gpu_id", "worker", "learning_rate", "local_rank",
    "world_size", "ip", "port", "nproc", "offset",
})


def _refuse_keys_a_resume_would_ignore(path, saved, config):
    """A key given to a resumed run must be one it applies (:data:`RESUME_KEYS`) or agree with the checkpoint's:
    the weights, the optimizer's state and the random streams come from the checkpoint, so a new ``neg_num`` or
    ``seed`` would be printed in the config and not be what ran."""
    for key, value in config.external_config_dict.items():
        if key in RESUME_KEYS or key not in saved.final_config_dict or saved[key] == config[key]:
            continue
        applied = ", ".join(sorted(RESUME_KEYS - {"resume_checkpoint"}))
        raise GenNiConfigError(
            f"resume_checkpoint: {path} was trained with {key}: {saved[key]!r} and this run sets {config[key]!r}; "
            f"a resumed run keeps the checkpoint's settings but {applied}: drop {key}, or start a new run."
        )

