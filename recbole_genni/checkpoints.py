"""Checkpoints that hold tensors and plain values only, read back without running code and checked before use.

A checkpoint is written as tensors, numbers, strings, lists and dicts: the run's config as its model, dataset and
the keys it was given (rebuilt into a :class:`~recbole_genni.config.Config` when read), the random streams as
tensors, and a digest of every tensor. It is read with ``torch.load(weights_only=True)``, which refuses any other
Python object, so a crafted file runs no code; its tensors are checked against the digest, so a file changed after
it was written is refused. Checkpoints of earlier versions of the package pickle RecBole's ``Config``: they load
only when the user says they trust the file (``trust_checkpoint_pickle``).
"""

import hashlib
import os
import sys

import numpy as np
import torch

from recbole_genni.compat import load_checkpoint
from recbole_genni.errors import GenNiConfigError

#: what a checkpoint of RecBole's trainer (and this package's) holds, the minimum to continue training from it
_TRAINING_CHECKPOINT_KEYS = ("config", "epoch", "cur_step", "best_valid_score", "state_dict", "optimizer")
#: keys of a run's config that belong to its processes, not to what it trained: left out when the config is rebuilt
_PROCESS_KEYS = ("local_rank", "world_size", "ip", "port", "nproc", "offset", "resume_checkpoint")
_TRUSTED = "trust_checkpoint_pickle: True (--trust_pickle for recbole-genni-recommend)"


def plain(value):
    """``value`` as tensors, numbers, strings, booleans, None, lists and dicts with string or integer keys: what
    ``torch.load(weights_only=True)`` reads back (numpy arrays become tensors, tuples lists, anything else its
    string)."""
    if isinstance(value, dict):
        return {k if isinstance(k, (str, int)) else str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool, torch.Tensor)):
        return value
    return str(value)


def portable_config(config) -> dict:
    """The run's config as plain values: its model, its dataset and the keys it was given."""
    return {"model": config["model"], "dataset": config["dataset"], "keys": plain(config.external_config_dict)}


def checkpoint_config(checkpoint, config_class):
    """The config of a checkpoint: rebuilt by ``config_class`` (:class:`recbole_genni.config.Config`) from its
    model, dataset and keys (the command line of this process left out), or an earlier version's pickled one."""
    saved = checkpoint["config"]
    if not isinstance(saved, dict):
        saved.compatibility_settings()  # RecBole's numpy aliases, set by Config.__init__, which unpickling skips
        return saved
    keys = {k: v for k, v in saved["keys"].items() if k not in _PROCESS_KEYS}
    argv, sys.argv = sys.argv, sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv
    try:
        return config_class(saved["model"], saved["dataset"], config_dict=keys)
    finally:
        sys.argv = argv


def tensor_digest(state: dict) -> str:
    """SHA-256 of every tensor in ``state`` (nested dicts and lists; dict keys in sorted order), its own top-level
    ``digest`` entry left out."""
    digest = hashlib.sha256()

    def visit(value):
        if isinstance(value, torch.Tensor):
            digest.update(value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(value, dict):
            for key in sorted(value, key=str):
                digest.update(str(key).encode())
                visit(value[key])
        elif isinstance(value, (list, tuple)):
            for item in value:
                visit(item)

    visit({key: value for key, value in state.items() if key != "digest"})
    return digest.hexdigest()


def read_checkpoint(path, device, prefix: str, expected: str, trust_pickle=False):
    """A checkpoint file, read as tensors and plain values and checked against its digest; a truncated, foreign,
    changed or (untrusted) pickled file raises :class:`GenNiConfigError` in one line (``prefix`` names the key or
    command, ``expected`` what it takes)."""
    try:
        checkpoint = load_checkpoint(path, device, trust_pickle)
    except Exception as err:  # torch.load raises many kinds on a truncated or foreign file
        if "can still be loaded" in str(err):  # a pickle of Python objects: it could run code
            raise GenNiConfigError(
                f"{prefix}{path} holds Python objects, not only tensors and plain values (a checkpoint of an earlier "
                f"version of this package, or a crafted file), and loading them could run code; if you wrote it, "
                f"set {_TRUSTED}."
            ) from None
        reason = (str(err).splitlines() or [""])[0][:200]
        raise GenNiConfigError(
            f"{prefix}{path} is not readable as a checkpoint ({type(err).__name__}: {reason}); it may be "
            f"truncated or not a torch file; expected {expected}."
        ) from None
    if isinstance(checkpoint, dict) and "digest" in checkpoint and tensor_digest(checkpoint) != checkpoint["digest"]:
        raise GenNiConfigError(
            f"{prefix}{path}: its tensors do not match the digest written with them: the file was changed or "
            f"damaged after it was written; expected {expected}."
        )
    return checkpoint


def read_training_checkpoint(path, device, config):
    """A checkpoint to continue training from, checked before any training: a missing, truncated, changed or
    foreign file (another kind of file, another model or dataset, a key the resumed run would ignore) raises
    :class:`GenNiConfigError` saying what it is and what was expected. Returns ``(checkpoint, its config)``."""
    expected = "a checkpoint this package wrote (<name>-last.pth continues exactly; the best-model one after its epoch)"
    if not os.path.isfile(path):
        raise GenNiConfigError(f"resume_checkpoint: {path}: no such file; expected {expected}.")
    checkpoint = read_checkpoint(path, device, "resume_checkpoint: ", expected, config["trust_checkpoint_pickle"])
    missing = [k for k in _TRAINING_CHECKPOINT_KEYS if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        what = f"a {type(checkpoint).__name__}" if not isinstance(checkpoint, dict) else f"a dict without {missing}"
        raise GenNiConfigError(f"resume_checkpoint: {path} holds {what}, not a training state; expected {expected}.")
    saved = checkpoint["config"]
    model, dataset = (saved["model"], saved["dataset"])
    if (model, dataset) != (config["model"], config["dataset"]):
        raise GenNiConfigError(
            f"resume_checkpoint: {path} was written by a run of {model} on {dataset}, and this run is "
            f"{config['model']} on {config['dataset']}; resume it with --model={model} --dataset={dataset}."
        )
    saved = checkpoint_config(checkpoint, type(config))
    _refuse_keys_a_resume_would_ignore(path, saved, config)
    return checkpoint, saved


#: keys a resumed run takes from its own config: how long, where and how verbosely it goes on, its evaluation's batch,
#: its device, processes and allocator, and its learning rate (set on the restored optimizer); every other key is the
#: checkpoint's
RESUME_KEYS = frozenset({
    "resume_checkpoint", "epochs", "stopping_step", "train_time_budget", "eval_step", "checkpoint_dir", "data_path",
    "show_progress", "state", "eval_batch_size", "use_gpu", "gpu_id", "worker", "learning_rate", "local_rank",
    "world_size", "ip", "port", "nproc", "offset", "trust_checkpoint_pickle", "keep_freed_memory",
})


def _refuse_keys_a_resume_would_ignore(path, saved, config):
    """A key given to a resumed run must be one it applies (:data:`RESUME_KEYS`) or agree with the checkpoint's:
    the weights, the optimizer's state and the random streams come from the checkpoint, so a new ``neg_num`` or
    ``seed`` would be printed in the config and not be what ran."""
    for key in config.external_config_dict:
        if key in RESUME_KEYS or key not in saved.final_config_dict or saved[key] == config[key]:
            continue
        applied = ", ".join(sorted(RESUME_KEYS - {"resume_checkpoint"}))
        raise GenNiConfigError(
            f"resume_checkpoint: {path} was trained with {key}: {saved[key]!r} and this run sets {config[key]!r}; "
            f"a resumed run keeps the checkpoint's settings but {applied}: drop {key}, or start a new run."
        )
