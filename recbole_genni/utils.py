"""Atomic file writes, the command line's error reporting, a run's id and its C allocator's setting."""

import contextlib
import ctypes
import functools
import glob
import logging
import os
import sys
import tempfile
import warnings
from pathlib import Path

from recbole_genni.errors import GenNiError


def count_or_fraction(value, whole: int) -> int:
    """An int as it is; a float as that fraction of ``whole``, at least 1 (``neg_pool_size``,
    ``train_window_stride``)."""
    return max(1, round(value * whole)) if isinstance(value, float) else value


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


def make_writable_folder(folder):
    """Create ``folder`` (and its parents) and check a file can be written in it; an ``OSError`` says why not (a
    read-only folder that exists passes ``makedirs`` and fails here)."""
    os.makedirs(folder, exist_ok=True)
    tempfile.NamedTemporaryFile(dir=folder).close()


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


#: glibc's ``mallopt`` parameters (malloc.h) and the values that keep freed memory: no allocation is its own
#: ``mmap`` (each would be unmapped when freed), and up to 2 GiB free at the heap's top stays mapped
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_KEPT = {_M_MMAP_MAX: 0, _M_TRIM_THRESHOLD: 2**31 - 1}
#: glibc's default limits, which return freed memory again (its adaptive threshold stays where it stood)
_RETURNED = {_M_MMAP_MAX: 65536, _M_TRIM_THRESHOLD: 128 * 1024}
#: environment variables through which a user sets glibc's malloc: when one is set, it decides
MALLOC_ENVIRONMENT = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def keep_freed_memory(keep: bool) -> bool:
    """With ``keep`` (``keep_freed_memory: True``), have glibc's malloc keep the memory a process frees for its next
    allocations. By default each allocation above 32 MiB (at first, above 128 KiB) is a fresh ``mmap``, returned to
    the system when freed, so a training step's large tensors (CE's logits over a chunk of items, a pool's scores, a
    batch's ranking scores) arrive as new zeroed pages at every step: on 119,481 items that kernel work was a
    quarter to two fifths of a step on a CPU (docs/training.md). Kept, the process holds on to its peak memory
    (:func:`freed_memory_kept` for a stretch of work). Setting these parameters turns off glibc's adaptive threshold
    (``man mallopt``), with no way back to its defaults, so ``keep=False`` leaves the allocator as it is.

    Returns whether this call set the allocator to keep: not for ``keep=False``, off glibc, nor where the
    environment sets malloc already (:data:`MALLOC_ENVIRONMENT`)."""
    libc = glibc()
    if not keep or libc is None or any(name in os.environ for name in MALLOC_ENVIRONMENT):
        return False
    return all(libc.mallopt(param, value) == 1 for param, value in _KEPT.items())


@contextlib.contextmanager
def freed_memory_kept(keep: bool):
    """:func:`keep_freed_memory` for a stretch of repeated work (a run's training and test); yields whether it was
    applied. On leaving, freed memory goes back to the system again (glibc's default limits) and what was kept is
    handed back (``malloc_trim``): work of another shape after it, such as building a dataset, would otherwise grow
    the heap around the kept blocks (a grouped re-evaluation after a 119,481-item CE run reached 24 GB)."""
    kept = keep_freed_memory(keep)
    try:
        yield kept
    finally:
        if kept:
            for param, value in _RETURNED.items():
                glibc().mallopt(param, value)
            glibc().malloc_trim(0)


@functools.lru_cache(maxsize=None)
def glibc():
    """The C library when it is glibc (``mallopt``, ``malloc_trim``), else None."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
