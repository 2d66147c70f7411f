"""Scale benchmark: peak memory and seconds per training step of GenNiSASRec against the catalogue size.

    python benchmarks/scale.py                                  # 10^4, 10^5, 10^6 items
    python benchmarks/scale.py --items 10000 --steps 2          # a quick look

Per catalogue size: a synthetic dataset (:mod:`recbole_genni.data.synthetic`, whole catalogue in its ``.item`` file,
written to ``dataset/`` once). Per sampler, a fresh process builds GenNiSASRec and its all-position loader, takes one
warm-up step, then times ``--steps`` training steps (negatives, loss, backward, Adam) at the same batch size.
Memory: on CUDA ``max_memory_allocated``; on CPU the peak resident set (Linux ``VmHWM``, reset before each step):
the whole step's peak, and the peak while the encoder runs, the negatives are generated and the loss is computed,
above the memory held before the step (model, gradients, Adam state and data): what the sampler and loss cost. A
cell that cannot allocate under ``--memory_limit_gb`` (address space, CPU only) or on the GPU is reported as out of
memory. Writes ``--out`` (JSON), a Markdown table and
a PNG plot beside it.
"""

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/, run as a script or imported
from cells import parse_args_or_run_cell, run_cell_process  # noqa: E402

SAMPLERS = {
    "uniform": {"neg_sampler": "uniform", "loss_type": "BCE"},
    "GenNi M=256": {"neg_sampler": "genni", "neg_pool_size": 256, "loss_type": "BCE"},
    "GenNi M=1024": {"neg_sampler": "genni", "neg_pool_size": 1024, "loss_type": "BCE"},
    "exact GenNi (all)": {"neg_sampler": "genni", "neg_pool_size": "all", "loss_type": "BCE"},
    "exact GenNi with replacement": {"neg_sampler": "genni", "neg_pool_size": "all", "neg_replacement": True,
                                     "loss_type": "BCE"},
    "full-softmax CE": {"neg_sampler": "none", "loss_type": "CE"},
}

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


def report(results, meta):
    lines = [
        f"## GenNiSASRec training step against catalogue size ({meta['device']})",
        "",
        f"{meta['date']}; `{meta['command']}`; batch {meta['batch_size']} users x up to {meta['max_len']} positions "
        f"(about {meta['rows']} scored rows per step), hidden 64, `neg_score_chunk` {meta['chunk']}, "
        f"median of {meta['steps']} steps after one warm-up. Memory: {meta['memory_kind']}. *baseline*: model, "
        "gradients, Adam state and data before the step; *negatives + loss*: the peak above the baseline while the "
        "encoder runs, the negatives are generated and the loss is computed (what the sampler costs); *step peak*: "
        "the whole step's peak, backward and Adam included (both make item-table-sized temporaries, whatever the "
        "sampler: the table's gradient is dense).",
        "",
        "| items | sampler | s/step | baseline MB | negatives + loss MB | step peak MB |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in results:
        if r["oom"]:
            limit = "" if meta["device"].startswith("cuda") else f" (> {meta['memory_limit_gb']:g} GiB limit)"
            lines.append(f"| {r['catalogue']:,} | {r['sampler']} | - | - | out of memory{limit} | - |")
        else:
            lines.append(f"| {r['catalogue']:,} | {r['sampler']} | {r['seconds_per_step']:.3f} | "
                         f"{r['baseline_mb']:,.0f} | {r['forward_mb']:,.0f} | {r['peak_mb']:,.0f} |")
    return "\n".join(lines) + "\n"


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for sampler in SAMPLERS:
        rs = [r for r in results if r["sampler"] == sampler and not r["oom"]]
        if not rs:
            continue
        x = [r["catalogue"] for r in rs]
        for ax, key in zip(axes, ("peak_mb", "forward_mb", "seconds_per_step")):
            ax.plot(x, [r[key] for r in rs], marker="o", label=sampler)
    for r in (r for r in results if r["oom"]):
        for ax in axes[:2]:
            ax.annotate(f"{r['sampler']}: out of memory", (r["catalogue"], ax.get_ylim()[1]), fontsize=8,
                        ha="right", va="top", color="red")
    titles = ("step peak memory (MB)", "negatives + loss (forward) above the model (MB)", "seconds per training step")
    for ax, title in zip(axes, titles):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("catalogue size (items)")
        ax.set_title(title)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--max_len", type=int, default=50)
    parser.add_argument("--chunk", type=int, default=4096, help="neg_score_chunk")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=list(SAMPLERS))
    parser.add_argument("--memory_limit_gb", type=float, default=16.0)
    parser.add_argument("--data_path", default="dataset/")
    parser.add_argument("--out", default="benchmarks/results/scale.json")
    args = parse_args_or_run_cell(parser, run_cell)
    results = []
    for items in args.items:
        dataset = ensure_dataset(args.data_path, items, args.users, seed=0)
        for sampler in args.samplers:
            cell = {
                "dataset": dataset, "steps": args.steps, "memory_limit_gb": args.memory_limit_gb,
                "config": {
                    "data_path": args.data_path, "load_col": {"inter": ["user_id", "item_id", "timestamp"],
                                                              "item": ["item_id"]},
                    "train_batch_size": args.batch_size, "MAX_ITEM_LIST_LENGTH": args.max_len,
                    "neg_score_chunk": args.chunk, "show_progress": False, "state": "WARNING", "seed": 2020,
                    **SAMPLERS[sampler],
                },
            }
            record, proc = run_cell_process(__file__, cell, env={**os.environ, **FREED_MEMORY_LEAVES})
            if record is None:  # killed (e.g. by the kernel's OOM killer) or crashed: report, never invent a number
                tail = proc.stderr.strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
                print(f"{items} {sampler}: FAILED ({tail[0][:200]})", flush=True)
                record = {"catalogue": items, "oom": proc.returncode in (-9, 137), "error": tail[0][:200]}
                if not record["oom"]:
                    continue
            record["sampler"] = sampler
            results.append(record)
            print(f"{items} {sampler}: " + ("out of memory" if record["oom"] else
                  f"{record['seconds_per_step']:.3f} s/step, peak {record['peak_mb']:.0f} MB, "
                  f"negatives + loss {record['forward_mb']:.0f} MB"), flush=True)
    import torch

    measured = [r for r in results if not r["oom"]]
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "command": " ".join(["python", *sys.argv]),
        "device": f"cuda {torch.cuda.get_device_name()}" if torch.cuda.is_available()
        else f"CPU {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "batch_size": args.batch_size, "max_len": args.max_len, "chunk": args.chunk, "steps": args.steps,
        "memory_limit_gb": args.memory_limit_gb,
        "rows": round(statistics.mean(statistics.mean(r["rows_per_step"]) for r in measured)) if measured else "?",
        "memory_kind": measured[0]["memory_kind"] if measured else "-",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    out.with_suffix(".md").write_text(report(results, meta) + f"\n![scale]({out.with_suffix('.png').name})\n")
    plot(results, out.with_suffix(".png"))
    print(report(results, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
