"""Scale benchmark: peak memory and seconds per training step of GenNiSASRec against the catalogue size.

    python benchmarks/scale.py benchmarks/suites/scale.yaml                 # 10^4, 10^5, 10^6 items
    python benchmarks/scale.py benchmarks/suites/scale.yaml --items 10000   # a quick look

The suite gives the catalogue sizes, the users, the timed steps, a CPU memory limit, ``defaults`` and the ``cells``
(``{name, config}``). Per catalogue size: a synthetic dataset (:mod:`recbole_genni.data.synthetic`, whole catalogue
in its ``.item`` file, written to ``data_path`` once). Per cell, a fresh process builds GenNiSASRec and its
all-position loader, takes one warm-up step, then times the steps (negatives, loss, backward, Adam) at the same
batch size. Memory: on CUDA ``max_memory_allocated``; on CPU the peak resident set (Linux ``VmHWM``, reset before
each step): the whole step's peak, and the peak while the encoder runs, the negatives are generated and the loss is
computed, above the memory held before the step (model, gradients, Adam state and data): what the sampler and loss
cost. A cell that cannot allocate under ``memory_limit_gb`` (address space, CPU only) or on the GPU is recorded as
out of memory. Each cell's record is appended to ``--out`` (JSONL) as it finishes; ``python benchmarks/report.py``
puts the table and its plot in docs/benchmarks.md.
"""

import argparse
import gc
import os
import platform
import resource
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/, run as a script or imported
import yaml  # noqa: E402
from cells import parse_args_or_run_cell, run_cell_process  # noqa: E402
from run_suite import append_result  # noqa: E402

# glibc keeps freed heap memory by default, so the resident set would not fall back after the warm-up step;
# serving every allocation over 64 KiB with mmap returns it on free, and the peak resident set tracks live tensors
FREED_MEMORY_LEAVES = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def _status_kb(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def run_cell(cell):
    """Build the model and loader for one (catalogue, sampler) cell and measure its training steps."""
    import torch
    from recbole.data import create_dataset
    from recbole.utils import init_seed

    from recbole_genni.config import Config
    from recbole_genni.quick_start import data_preparation

    cuda = torch.cuda.is_available()
    if not cuda:
        limit = int(cell["memory_limit_gb"] * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    config = Config("GenNiSASRec", cell["dataset"], config_dict=cell["config"])
    init_seed(config["seed"], True)
    train, _, _ = data_preparation(config, create_dataset(config))
    model = config.model_class(config, train._dataset).to(config["device"])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = []
    for batch in train:
        batches.append(batch.to(config["device"]))
        if len(batches) == cell["steps"] + 1:
            break

    def reset_peak():
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset the peak resident set (VmHWM) to the current one

    def peak():
        return torch.cuda.max_memory_allocated() if cuda else _status_kb("VmHWM") * 1024

    def step(batch):
        """One training step; returns (peak while negatives are generated and the loss computed, whole step's peak)."""
        optimizer.zero_grad(set_to_none=False)  # gradients stay allocated: part of the baseline, not of the step
        reset_peak()
        loss = model.calculate_loss(batch)
        if cuda:
            torch.cuda.synchronize()
        forward_peak = peak()
        loss.backward()  # the item table's gradient is dense: table-sized temporaries, whatever the sampler
        optimizer.step()  # so are Adam's
        if cuda:
            torch.cuda.synchronize()
        return forward_peak, peak()

    record = {"rows_per_step": [int((b[model.TARGET_SEQ] > 0).sum()) for b in batches[1:]],
              "catalogue": train._dataset.item_num - 1}
    try:
        step(batches[0])  # warm-up: allocator, Adam state
        gc.collect()
        baseline = torch.cuda.memory_allocated() if cuda else _status_kb("VmRSS") * 1024
        seconds, forward_peaks, step_peaks = [], [], []
        for batch in batches[1:]:
            start = time.perf_counter()
            forward_peak, step_peak = step(batch)
            seconds.append(time.perf_counter() - start)
            forward_peaks.append(forward_peak)
            step_peaks.append(step_peak)
    except (MemoryError, torch.OutOfMemoryError, RuntimeError) as error:
        if not isinstance(error, (MemoryError, torch.OutOfMemoryError)) and "memory" not in str(error).lower():
            raise
        return {**record, "oom": True, "error": str(error).splitlines()[0][:200]}
    return {
        **record,
        "oom": False,
        "seconds_per_step": statistics.median(seconds),
        "baseline_mb": baseline / 2**20,
        "peak_mb": max(step_peaks) / 2**20,
        "forward_mb": (max(forward_peaks) - baseline) / 2**20,
        "memory_kind": "cuda max_memory_allocated" if cuda else "process peak RSS (VmHWM)",
    }


def ensure_dataset(data_path, items, users, seed):
    from recbole_genni.data import synthetic

    name = f"synth-{items}"
    if not (Path(data_path) / name / f"{name}.item").exists():
        synthetic.write(data_path, name, items, *synthetic.generate(items, users, seed=seed))
    return name


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", nargs="?", help="scale suite YAML (benchmarks/suites/scale.yaml)")
    parser.add_argument("--items", type=int, nargs="+", help="catalogue sizes instead of the suite's")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="run only these cells")
    parser.add_argument("--out", default="benchmarks/results/scale.jsonl", help="results JSONL (appended)")
    args = parse_args_or_run_cell(parser, run_cell)
    suite = yaml.safe_load(Path(args.suite).read_text())
    cells = [c for c in suite["cells"] if not args.only or c["name"] in args.only]
    if not cells:
        parser.error(f"--only {args.only}: no cell of {args.suite} has that name")
    import torch

    defaults = suite.get("defaults", {})
    data_path = defaults.get("data_path", "dataset/")
    run = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "command": " ".join(["python", *sys.argv]),
        "device": f"cuda {torch.cuda.get_device_name()}" if torch.cuda.is_available()
        else f"CPU {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "batch_size": defaults.get("train_batch_size"), "max_len": defaults.get("MAX_ITEM_LIST_LENGTH"),
        "chunk": defaults.get("neg_score_chunk"), "steps": suite["steps"], "memory_limit_gb": suite["memory_limit_gb"],
    }
    for items in args.items or suite["catalogues"]:
        dataset = ensure_dataset(data_path, items, suite["users"], seed=0)
        for spec in cells:
            cell = {
                "dataset": dataset, "steps": suite["steps"], "memory_limit_gb": suite["memory_limit_gb"],
                "config": {
                    "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"]},
                    "show_progress": False, "state": "WARNING", "seed": 2020, **defaults, **spec["config"],
                },
            }
            record, proc = run_cell_process(__file__, cell, env={**os.environ, **FREED_MEMORY_LEAVES})
            if record is None:  # killed (e.g. by the kernel's OOM killer) or crashed: report, never invent a number
                tail = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
                print(f"{items} {spec['name']}: FAILED ({tail[0][:200]})", flush=True)
                record = {"catalogue": items, "oom": proc.returncode in (-9, 137), "error": tail[0][:200]}
                if not record["oom"]:
                    continue
            record = {**run, **record, "sampler": spec["name"], "config": cell["config"]}
            if not record["oom"]:
                record["rows"] = round(statistics.mean(record["rows_per_step"]))
            append_result(Path(args.out), record)
            print(f"{items} {spec['name']}: " + ("out of memory" if record["oom"] else
                  f"{record['seconds_per_step']:.3f} s/step, peak {record['peak_mb']:.0f} MB, "
                  f"negatives + loss {record['forward_mb']:.0f} MB"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
