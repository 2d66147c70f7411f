"""What RecBole 1.2.1 needs to run on today's stack, one small function a workaround, each naming the upstream
issue (or the RecBole file, where none is filed). The rest of the package calls these and nothing else for it.

They are written against :data:`RECBOLE_VERSION`, which setup.py pins; :func:`check_recbole_version` warns once when
another RecBole is installed.
"""

import ast
import contextlib
import functools
import logging
import os
import pickle
import re
import sys

import torch

from recbole_genni.errors import GenNiConfigError
from recbole_genni.utils import make_writable_folder

#: the RecBole release the workarounds below are written for
RECBOLE_VERSION = "1.2.1"


@functools.lru_cache(maxsize=None)
def check_recbole_version(installed: str):
    """Warn (once per version) that the workarounds here were written for :data:`RECBOLE_VERSION` when RecBole
    ``installed`` is another: each may then be needless or wrong."""
    if installed != RECBOLE_VERSION:
        logging.getLogger().warning(
            f"RecBole {installed} is installed; recbole-genni's workarounds (recbole_genni/compat.py) are written "
            f"for RecBole {RECBOLE_VERSION}: pip install recbole=={RECBOLE_VERSION}")


def restore_numpy_aliases():
    """RecBole 1.2.1's ``Config`` runs ``np.float = np.float_`` (also ``complex_``, ``unicode_``): names NumPy 2
    removed (RUCAIBox/RecBole#2203). Give them back under NumPy 2 so RecBole runs there too; a no-op under NumPy 1."""
    import numpy as np

    for removed, current in (("float_", "float64"), ("complex_", "complex128"), ("unicode_", "str_")):
        if not hasattr(np, removed):
            setattr(np, removed, getattr(np, current))


def recbole_sequential_models():
    """``recbole.model.sequential_recommender``, imported with autograd anomaly detection left off: RecBole 1.2.1's
    ``sine.py`` switches it on for the whole process at import (a large share of CPU training time), and importing
    any sequential model imports it."""
    from recbole.model import sequential_recommender

    torch.autograd.set_detect_anomaly(False)
    return sequential_recommender


@contextlib.contextmanager
def recbole_loss_type(config, loss_type):
    """``config["loss_type"]`` set to ``loss_type`` for the block: RecBole 1.2.1's sequential constructors
    (``sasrec.py`` and the others) accept BPR or CE only and raise ``NotImplementedError`` for any other, so a
    subclass with other losses builds its RecBole parent under one of those; the user's value comes back after."""
    user_value = config["loss_type"]
    config["loss_type"] = loss_type
    try:
        yield
    finally:
        config["loss_type"] = user_value


@contextlib.contextmanager
def single_process_spec(config):
    """``config["single_spec"]`` True for the block: RecBole 1.2.1's ``Trainer.__init__`` (``trainer/trainer.py``)
    wraps a distributed model in ``DistributedDataParallel(device_ids=[local_rank])``, CUDA's form, which a CPU run
    on gloo refuses; the caller wraps it for the CPU after."""
    config["single_spec"] = True
    try:
        yield
    finally:
        config["single_spec"] = False


class _RewriteRecord(logging.Filter):
    """Rewrites the message of records that match ``pattern`` (colour codes included) to ``replacement``."""

    def __init__(self, pattern, replacement):
        super().__init__()
        self.pattern, self.replacement = re.compile(pattern), replacement

    def filter(self, record):
        message = record.getMessage()
        if self.pattern.search(message):
            record.msg, record.args = self.pattern.sub(self.replacement, message), ()
        return True


@contextlib.contextmanager
def training_line_names(negatives):
    """RecBole 1.2.1's ``data_preparation`` logs ``[Training]: ... train_neg_sample_args: [{'distribution':
    'none', ...}]`` (recbole/data/utils.py), which contradicts the package's negatives: within this context the line
    names ``negatives`` (the run's ``Negatives:`` summary) instead."""
    rewrite = _RewriteRecord(r"train_neg_sample_args.*", f"negatives: {negatives}\x1b[0m")
    logger = logging.getLogger()
    logger.addFilter(rewrite)
    try:
        yield
    finally:
        logger.removeFilter(rewrite)


class LeaveFit(Exception):
    """Raised from a ``fit`` callback to end RecBole 1.2.1's ``Trainer.fit`` (``trainer/trainer.py``) after this
    epoch: its loop ends only when early stopping says so, which it decides before the callback runs. The caller
    catches it around ``super().fit``."""

    def __init__(self, epoch):
        super().__init__(epoch)
        self.epoch = epoch


def create_folder_for_recbole(folder):
    """Create ``folder`` race-free and check it is writable before RecBole 1.2.1's ``ensure_dir``
    (``utils/utils.py``) does: it checks, then creates, so two DDP ranks starting together can both find the folder
    missing and one fails with ``FileExistsError``. An ``OSError`` says why the folder cannot be used."""
    make_writable_folder(folder)


def literal_config_values(config_dict: dict) -> dict:
    """RecBole 1.2.1's ``Config._convert_config_dict`` turns every string value of the command line and of
    ``config_dict`` back into a Python value with ``eval`` (added for ``config_dict`` by RUCAIBox/RecBole#365), so
    ``--neg_sampler=__import__('os').system('...')`` runs code. The same conversion, literals only: a string that
    is not a Python literal stays a string (``true``/``false`` any case become booleans, as there)."""
    for key, value in config_dict.items():
        if not isinstance(value, str):
            continue
        try:
            config_dict[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            config_dict[key] = {"true": True, "false": False}.get(value.lower(), value)
    return config_dict


def load_checkpoint(path, device, trust_pickle=False):
    """Load a checkpoint as tensors and plain values (``weights_only=True``: no code runs). RecBole's checkpoints,
    and this package's before its checkpoints held plain values only, pickle RecBole's ``Config``, which torch >= 2.6
    refuses by default (RUCAIBox/RecBole#2212): ``trust_pickle`` loads them as pickles, which can run code (only for
    files you wrote)."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        if not trust_pickle:
            raise
        return torch.load(path, map_location=device, weights_only=False)


def init_distributed(final):
    """RecBole's distributed device set-up, on gloo (CPU) as well as NCCL (CUDA): RecBole 1.2.1's
    ``Config._init_device`` hard-wires ``init_process_group(backend="nccl")`` and ``cuda:<local_rank>``.
    ``final`` is the config's final dict, updated in place."""
    use_cuda = torch.cuda.is_available() and final["use_gpu"]
    if use_cuda:
        gpu_id = ",".join(map(str, final["gpu_id"])) if isinstance(final["gpu_id"], tuple) else str(final["gpu_id"])
        final["gpu_id"] = gpu_id
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu_id
        if len(gpu_id.split(",")) < final["nproc"]:
            raise GenNiConfigError(f"gpu_id: '{gpu_id}' names fewer GPUs than nproc: {final['nproc']}.")
    torch.distributed.init_process_group(
        backend="nccl" if use_cuda else "gloo",
        rank=final["local_rank"] + final["offset"],
        world_size=final["world_size"],
        init_method=f"tcp://{final['ip']}:{final['port']}",
    )
    final["device"] = torch.device("cuda", final["local_rank"]) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(final["local_rank"])
    final["single_spec"] = False
    if final["local_rank"] != 0:
        final.update(state="error", show_progress=False, verbose=False)


def exit_rank():
    """End a finished spawned rank without interpreter finalization (gloo, torch's process groups).

    The gloo process group must be neither freed nor finalized from Python:
    - freed (its last reference dropped, which holds the GIL), its destructor waits for a gloo worker thread that
      is itself waiting for the GIL to release a finished all-gather's tensors: the rank deadlocks;
    - left alive to interpreter finalization, such a thread can reach for the GIL while the interpreter is torn
      down: the rank aborts (SIGABRT, "terminate called without an active exception").
    So a finished rank keeps its group (the caller holds a reference; DDP's constructor also pins it, by importing
    ``torch.distributed.nn``, whose functions hold ``group.WORLD`` as a default argument), flushes its logs and
    leaves at once. Its result must already have gone through a synchronous queue.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
