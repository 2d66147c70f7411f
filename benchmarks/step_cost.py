"""Cost of a training step for cells of a suite, timed side by side in one process.

    python benchmarks/step_cost.py benchmarks/suites/models_beauty.yaml --only GRU4Rec/uniform-ssm \
        --only GRU4Rec/genni-ssm --batches 40

Each cell (the suite's defaults and the cell's own keys, then ``--set``, its first dataset or ``--dataset``, its
first seed) gets its training loader and model; then the cells take turns, one step each: collate, forward
(negatives drawn in the loss for the models that draw there), backward and Adam, under the cells'
``keep_freed_memory`` (one setting a run: a process cannot go back to glibc's defaults). Taking turns gives every
cell the same share of a machine's load, so the ratio between cells holds on a busy machine too. The timed steps are
followed by a few more, each measured for the memory it adds (:class:`StepMemory`, which hands free memory back
first and so would slow a timed step). Prints each cell's mean seconds per step (after one warm-up step each), its
projected epoch and its ratio to the first cell, and appends one record per cell to
``benchmarks/results/<suite>_cost.jsonl``.
"""

import argparse
import copy
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/, run as a script
from run_suite import append_result, convert_sources, expand, package_commit, parse_setting  # noqa: E402

from recbole_genni.utils import freed_memory_kept, glibc  # noqa: E402


def training_step(iterator, model, optimizer):
    """One training step: the next batch (its collate), the loss, backward and the optimizer."""
    batch = next(iterator)
    loss = model.calculate_loss(batch)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def timed_step(iterator, model, optimizer) -> float:
    """Seconds of one :func:`training_step`."""
    start = time.perf_counter()
    training_step(iterator, model, optimizer)
    return time.perf_counter() - start


def step_peak(iterator, model, optimizer):
    """Bytes one :func:`training_step` held above what was held before it (:class:`StepMemory`), or None."""
    memory = StepMemory(next(model.parameters()).device)
    training_step(iterator, model, optimizer)
    return memory.peak_above_start()


class StepMemory:
    """The peak memory of a stretch of work above its start, so that cells built side by side in one process are
    measured apart: CUDA's allocator peak on a GPU; on a CPU the process's resident high-water mark (``VmHWM``), reset
    at the start through ``/proc/self/clear_refs`` (Linux; elsewhere the peak is not measured, None) after the C
    allocator has handed back the memory it holds free (``malloc_trim``, also what ``keep_freed_memory`` keeps), so
    that what the step allocates is resident anew: on a CPU the figure is the resident memory the step added, exact
    for the large tensors that decide it. The trim makes the step after it slower: time steps apart."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        if self.cuda:
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            self.start = torch.cuda.memory_allocated(device)
            self.device = device
            return
        if glibc() is not None:
            glibc().malloc_trim(0)
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident size
            self.start = _proc_status_bytes("VmRSS")
        except OSError:
            self.start = None

    def peak_above_start(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) - self.start
        return None if self.start is None else _proc_status_bytes("VmHWM") - self.start


def _proc_status_bytes(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"/proc/self/status has no {field}")


#: keys that change a cell's sampler, loss or encoder but not its dataset: cells that differ in these only share one
#: loaded dataset (a catalogue of 10^5 items and 10^6 interactions is loaded once, not once a cell)
MODEL_ONLY_KEYS = ("loss_type", "gbce_t", "ssm_logq", "learning_rate", "hidden_size", "inner_size", "n_layers",
                   "n_heads", "hidden_dropout_prob", "attn_dropout_prob")


def dataset_key(cell) -> str:
    """What decides a cell's loaded dataset: its model, dataset and config but the :data:`MODEL_ONLY_KEYS` and
    ``neg_*`` keys."""
    kept = {k: v for k, v in cell["config"].items() if k not in MODEL_ONLY_KEYS and not k.startswith("neg_")}
    return json.dumps([cell["model"], cell["dataset"], kept], sort_keys=True, default=str)


def build_cell(cell, datasets=None):
    """``(training loader, model)`` of a suite cell, seeded as a run of it is; ``datasets`` (a dict) keeps the
    loaded datasets for the next cells that share one (:func:`dataset_key`)."""
    from recbole.data import create_dataset
    from recbole.utils import init_seed

    from recbole_genni.config import Config
    from recbole_genni.dataloader import GenNiTrainDataLoader
    from recbole_genni.quick_start import data_preparation

    config = Config(cell["model"], cell["dataset"], config_dict={**cell["config"], "state": "ERROR"})
    init_seed(config["seed"], True)
    datasets = {} if datasets is None else datasets
    key = dataset_key(cell)
    if key not in datasets:
        datasets[key] = create_dataset(config)
    train, _, _ = data_preparation(config, copy.deepcopy(datasets[key]))  # building a dataset changes it
    model = config.model_class(config, train._dataset).to(config["device"])
    if isinstance(train, GenNiTrainDataLoader):  # GenNiSASRec's loader has none: the model draws its negatives
        train.get_model(model)
    return train, model


def epochs_of(loader):
    """The loader's batches, epoch after epoch (a tiny dataset has fewer batches than the steps measured)."""
    while len(loader):
        yield from loader


#: steps of each cell measured for memory, after its timed steps
MEMORY_STEPS = 4


def interleaved_step_cost(cells, batches):
    """``(mean seconds per step, peak bytes of a step or None)`` of each ``(loader, model)``, the cells taking turns
    step by step: one warm-up each and ``batches`` timed, then :data:`MEMORY_STEPS` measured for memory."""
    runs = []
    for train, model in cells:
        model.train()
        runs.append((epochs_of(train), model, torch.optim.Adam(model.parameters(), lr=1e-3)))
    seconds, peaks = [[] for _ in runs], [[] for _ in runs]
    for measure, turns in ((timed_step, seconds), (step_peak, peaks)):
        for _ in range(batches + 1 if measure is timed_step else MEMORY_STEPS):
            for measured, (iterator, model, optimizer) in zip(turns, runs):
                measured.append(measure(iterator, model, optimizer))
    return [(sum(timed[1:]) / batches, None if None in peak else max(peak)) for timed, peak in zip(seconds, peaks)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", help="suite YAML (benchmarks/suites/)")
    parser.add_argument("--only", action="append", required=True, metavar="NAME",
                        help="a cell to time (repeatable; the first is the reference of the ratios)")
    parser.add_argument("--batches", type=int, default=40, help="timed steps per cell, after one warm-up")
    parser.add_argument("--dataset", help="the suite's dataset to time on (default: its first)")
    parser.add_argument("--out", help="results JSONL (default: benchmarks/results/<suite name>_cost.jsonl)")
    parser.add_argument("--set", dest="settings", type=parse_setting, action="append", default=[], metavar="KEY=VALUE",
                        help="set a config key in every cell, over the suite's and the cell's own (repeatable)")
    args = parser.parse_args()
    command = " ".join(["python", *sys.argv])
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv
    suite = yaml.safe_load(Path(args.suite).read_text())
    if args.dataset and args.dataset not in suite["datasets"]:
        parser.error(f"--dataset {args.dataset}: not among the datasets of {args.suite}: {suite['datasets']}")
    suite["datasets"], suite["seeds"] = [args.dataset or suite["datasets"][0]], suite["seeds"][:1]
    by_name = {cell["name"]: cell for cell in expand(suite, dict(args.settings))}
    unknown = [name for name in args.only if name not in by_name]
    if unknown:
        parser.error(f"--only {unknown}: not cells of {args.suite}")
    convert_sources(suite)
    chosen = [by_name[name] for name in args.only]
    datasets = {}
    built = [build_cell(cell, datasets) for cell in chosen]
    keep = {train.config["keep_freed_memory"] for train, _ in built}
    if len(keep) > 1:
        parser.error("keep_freed_memory: the cells set it differently; time each setting in its own run "
                     "(--set keep_freed_memory=true, then =false): a process cannot go back to glibc's defaults")
    load = os.getloadavg()[0]  # what else ran: the seconds depend on it, the ratios far less
    with freed_memory_kept(keep.pop()):
        costs = interleaved_step_cost(built, args.batches)
    out = Path(args.out or f"benchmarks/results/{Path(args.suite).stem}_cost.jsonl")
    device = "cuda" if torch.cuda.is_available() else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
    for cell, (train, _), (step, peak) in zip(chosen, built, costs):
        ratio = step / costs[0][0]
        peak_mb = None if peak is None else peak / 2**20
        print(f"{cell['name']:<28} {step:.4f} s/step  {step * len(train):8.1f} s/epoch (projected)  "
              f"x{ratio:.2f}  " + ("" if peak_mb is None else f"peak {peak_mb:.0f} MB a step"), flush=True)
        append_result(out, {
            "name": cell["name"], "model": cell["model"], "dataset": cell["dataset"], "seconds_per_step": step,
            "steps_per_epoch": len(train), "seconds_per_epoch": step * len(train), "ratio": ratio,
            "step_peak_memory_mb": peak_mb, "step_peak_memory_kind": "cuda allocated" if device == "cuda"
            else "process RSS above the step's start",
            "reference": chosen[0]["name"], "batches": args.batches, "memory_steps": MEMORY_STEPS,
            "keep_freed_memory": train.config["keep_freed_memory"], "device": device, "load_average": load,
            "torch": torch.__version__, "commit": package_commit(), "date": date.today().isoformat(),
            "config": cell["config"], "command": command,
        })


if __name__ == "__main__":
    main()
