"""Lookups with fallback to RecBole (models, trainers), checkpoint loading, atomic file writes, and the run-time
fixes RecBole needs."""

import importlib
import os
import pkgutil
import sys
import tempfile
from pathlib import Path

import torch
from recbole.utils import get_model as get_recbole_model


class GenNiError(Exception):
    """An error the command line reports as one ``error:`` line (exit code 2), with no traceback."""


class GenNiConfigError(GenNiError, ValueError):
    """Bad configuration or data, raised before training starts; the message names the key and the fix."""


class CheckpointWriteError(GenNiError, OSError):
    """A checkpoint could not be written (a full disk, a read-only folder); the previous one is kept whole."""


def atomic_write(target, write, mode: str = "w"):
    """Call ``write(f)`` on a temporary file of this process's own beside ``target``, then rename it over
    ``target``: a kill or an error leaves the old file whole and no temporary behind, and two processes writing
    the same file at once (a grid's parallel cells converting one dataset) each leave a whole one.
    ``mode`` is ``"w"`` (UTF-8 text) or ``"wb"``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name + ".", suffix=".tmp")
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


def run_cli(action) -> int:
    """Run ``action()`` for a command-line tool: a :class:`GenNiError` becomes one ``error:`` line on stderr and
    exit code 2; success is 0."""
    try:
        action()
    except GenNiError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _own_model_module(name: str):
    module_path = f"recbole_genni.model.{name.lower()}"
    if importlib.util.find_spec(module_path) is None:
        return None
    return importlib.import_module(module_path)


def supported_models() -> list:
    """Names of RecBole's sequential models plus the package's own."""
    import recbole.model.sequential_recommender as seq
    import recbole_genni.model as own

    names = []
    for pkg in (seq, own):
        for info in pkgutil.iter_modules(pkg.__path__):
            module = importlib.import_module(f"{pkg.__name__}.{info.name}")
            names += [n for n, obj in vars(module).items() if isinstance(obj, type) and n.lower() == info.name]
    return sorted(names)


def get_model(model_name: str):
    """The model class: the package's own (``recbole_genni.model.<lowercase>``) first, then RecBole's."""
    module = _own_model_module(model_name)
    if module is not None and hasattr(module, model_name):
        model_class = getattr(module, model_name)
    else:
        try:
            model_class = get_recbole_model(model_name)
        except (ValueError, AttributeError, ImportError):  # RecBole probes exlib_recommender, which needs lightgbm
            raise GenNiConfigError(
                f"unknown model {model_name!r}; supported sequential models: {', '.join(supported_models())}"
            ) from None
    disable_anomaly_detection()
    return model_class


def get_trainer(model_type, model_name):
    """``<Model>Trainer`` from this package or RecBole if one exists, else :class:`~recbole_genni.trainer.Trainer`."""
    from recbole.utils import ModelType, get_trainer as get_recbole_trainer

    import recbole_genni.trainer as own

    if hasattr(own, model_name + "Trainer"):
        return getattr(own, model_name + "Trainer")
    if model_type == ModelType.SEQUENTIAL and not hasattr(importlib.import_module("recbole.trainer"), model_name + "Trainer"):
        return own.Trainer
    return get_recbole_trainer(model_type, model_name)


def restore_numpy_aliases():
    """RecBole 1.2.1's ``Config`` runs ``np.float = np.float_`` (also ``complex_``, ``unicode_``): names NumPy 2
    removed. Give them back under NumPy 2 so RecBole runs there too; a no-op under NumPy 1."""
    import numpy as np

    for removed, current in (("float_", "float64"), ("complex_", "complex128"), ("unicode_", "str_")):
        if not hasattr(np, removed):
            setattr(np, removed, getattr(np, current))


def disable_anomaly_detection():
    """RecBole's ``sine.py`` switches autograd anomaly detection on for the whole process at import (about a
    third of CPU training time); every sequential-model import reaches it, so switch it back off."""
    torch.autograd.set_detect_anomaly(False)


def load_checkpoint(path, device):
    """Load a RecBole checkpoint. Checkpoints are pickles (they hold the Config): load only trusted files.

    torch >= 2.6 defaults to ``weights_only=True``, which refuses RecBole's checkpoints.
    """
    return torch.load(path, map_location=device, weights_only=False)


#: what a checkpoint of RecBole's trainer (and this package's) holds, the minimum to continue training from it
_TRAINING_CHECKPOINT_KEYS = ("config", "epoch", "cur_step", "best_valid_score", "state_dict", "optimizer")


def read_training_checkpoint(path, device, config):
    """A checkpoint to continue training from, checked before any training: a missing, truncated or foreign file
    (another kind of pickle, another model or dataset) raises :class:`GenNiConfigError` saying what it is and what
    was expected."""
    expected = "a checkpoint this package wrote (<name>-last.pth continues exactly; the best-model one after its epoch)"
    if not os.path.isfile(path):
        raise GenNiConfigError(f"resume_checkpoint: {path}: no such file; expected {expected}.")
    try:
        checkpoint = load_checkpoint(path, device)
    except Exception as err:  # torch.load raises many kinds on a truncated or foreign file
        reason = (str(err).splitlines() or [""])[0][:200]
        raise GenNiConfigError(
            f"resume_checkpoint: {path} is not readable as a checkpoint ({type(err).__name__}: {reason}); it may be "
            f"truncated or not a torch file; expected {expected}."
        ) from None
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
    return checkpoint

