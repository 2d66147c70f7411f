"""Run a benchmark grid (models x samplers x datasets x seeds) and report it.

    python benchmarks/run_grid.py benchmarks/grids/beauty.yaml

The grid YAML has ``datasets``, ``seeds``, ``shared`` (config keys for every cell), optional ``convert`` (source
files converted into ``shared.data_path`` when missing) and either ``cells`` (a list of ``{name, model, config}``)
or ``models`` x ``samplers`` (``{name: config}``). Each cell runs in its own process (peak memory is per cell, a
crash loses one cell); its result is appended to the JSONL file as soon as it finishes, so a killed grid resumes
where it stopped. The Markdown report (mean +- std over seeds, best per column in bold) is rewritten each time.
"""

import argparse
import itertools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/, run as a script or imported
import yaml
from cells import parse_args_or_run_cell, run_cell_process  # noqa: E402

METRICS = [f"{m}@{k}" for m in ("hit", "ndcg") for k in (5, 10, 20)]


def expand(grid, settings=None):
    """The grid's cells as dicts with ``key, name, model, dataset, seed, config``; ``settings`` (``--set``) win over
    the grid's shared keys and each cell's own."""
    if "cells" in grid:
        base = [(c["name"], c["model"], c.get("config", {})) for c in grid["cells"]]
    else:
        base = [
            (f"{model}/{sampler}", model, {**grid.get("model_config", {}).get(model, {}), **config})
            for model, (sampler, config) in itertools.product(grid["models"], grid["samplers"].items())
        ]
    # dataset, then seed, then cell: a grid cut short still compares every cell on the first dataset and seed
    for dataset, seed, (name, model, config) in itertools.product(grid["datasets"], grid["seeds"], base):
        yield {
            "key": f"{name}|{dataset}|{seed}",
            "name": name,
            "model": model,
            "dataset": dataset,
            "seed": seed,
            "config": {**grid.get("shared", {}), **config, **(settings or {}), "seed": seed},
        }


def best_epoch(scores):
    """The epoch of the tested model: the last of equal best valid scores, as RecBole's early stopping keeps a tie
    (``>=``); None if no epoch was validated."""
    return max((i for i, s in enumerate(scores) if s is not None), key=lambda i: (scores[i], i), default=None)


def read_records(path: Path) -> list:
    """The finished cells' records; a line cut by a kill is skipped, so that cell runs again."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def append_result(path: Path, record: dict):
    path.parent.mkdir(parents=True, exist_ok=True)
    cut = path.exists() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
    with open(path, "a") as f:
        f.write(("\n" if cut else "") + json.dumps(record) + "\n")  # never glue a record onto a cut line
        f.flush()
        os.fsync(f.fileno())


def run_cell(cell: dict) -> dict:
    """Train and test one cell in this process; return its record."""
    import torch

    from recbole_genni import run_recbole_genni

    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv
    start = time.time()
    result = run_recbole_genni(cell["model"], cell["dataset"], config_dict=dict(cell["config"]))
    history = result["history"]
    epochs = len(history)
    timed = [h["train_seconds"] + h["valid_seconds"] for h in history if "valid_seconds" in h]
    cuda = torch.cuda.is_available() and cell["config"].get("use_gpu", True)
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        **{k: cell[k] for k in ("key", "name", "model", "dataset", "seed")},
        "test": {m: result["test_result"][m] for m in METRICS},
        "best_valid": dict(result["best_valid_result"] or {}),
        "best_epoch": best_epoch([h.get("valid_score") for h in history]),
        "epochs": epochs,
        "stop_reason": result["stop_reason"],
        # training plus validation, from the epochs' own records: a resumed run's process saw only its last epochs
        "seconds_per_epoch": statistics.fmean(timed) if timed else None,
        "train_seconds_per_epoch": sum(h["train_seconds"] for h in history) / max(epochs, 1),
        "sampling_seconds_per_epoch": sum(h.get("sampling_seconds", 0.0) for h in history) / max(epochs, 1),
        "peak_memory_mb": peak / 2**20,
        "peak_memory_kind": "cuda" if cuda else "process RSS",
        "device": (torch.cuda.get_device_name() if cuda
                   else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"),
        "wall_seconds": time.time() - start,
        "history": history,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": package_commit(),
        "config": cell["config"],  # the cell's settings over the package's defaults (seed included)
    }


def package_commit() -> str:
    """The commit of the checkout the package runs from (with ``+`` if it has uncommitted changes), or
    ``unknown`` outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "")


def convert_sources(grid, settings=None):
    """Convert the grid's ``convert`` sources missing under its ``data_path`` (``settings``, from ``--set``, win)."""
    from recbole_genni.data.convert import convert, dataset_name

    data_path = Path({**grid.get("shared", {}), **(settings or {})}.get("data_path", "dataset/"))
    for source in grid.get("convert", []):
        name = dataset_name(Path(source))
        if not (data_path / name / f"{name}.inter").exists():
            stats = convert(source, data_path)
            print(f"converted {source}: {stats}", flush=True)


def report(records, title: str) -> str:
    """Markdown: one row per cell name and dataset, mean +- std over seeds, the best mean per column in bold."""
    groups = {}
    for r in records:
        groups.setdefault((r["dataset"], r["name"]), []).append(r)
    columns = [(m, lambda r, m=m: r["test"][m], True) for m in METRICS] + [
        ("valid ndcg@10", lambda r: r["best_valid"].get("ndcg@10"), True),
        ("epochs", lambda r: r["epochs"], None),
        ("best epoch", lambda r: r["best_epoch"], None),
        ("s/epoch", lambda r: r["train_seconds_per_epoch"], False),
        ("sampling s/epoch", lambda r: r["sampling_seconds_per_epoch"], None),
        ("peak MB", lambda r: r["peak_memory_mb"], None),
    ]
    stats = {}
    for key, rs in groups.items():
        for col, get, _ in columns:
            values = [get(r) for r in rs if get(r) is not None]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            stats[key, col] = (statistics.mean(values), spread, len(values)) if values else None
    lines = [f"## {title}", "", "| dataset | cell | seeds | " + " | ".join(c for c, _, _ in columns) + " | device |"]
    lines.append("|" + "---|" * (len(columns) + 4))
    for dataset in sorted({d for d, _ in groups}):
        names = [n for d, n in groups if d == dataset]
        best = {}
        for col, _, bigger in columns:
            vals = [stats[(dataset, n), col][0] for n in names if stats[(dataset, n), col]]
            if bigger is not None and vals:
                best[col] = max(vals) if bigger else min(vals)
        for name in names:
            cells = []
            for col, _, _ in columns:
                s = stats[(dataset, name), col]
                if s is None:
                    cells.append("-")
                    continue
                mean, std, n = s
                precise = col in METRICS or col.startswith("valid")
                text = f"{mean:.4f}" if precise else f"{mean:.1f}"
                if n > 1:
                    text += f" ± {std:.4f}" if precise else f" ± {std:.1f}"
                cells.append(f"**{text}**" if best.get(col) == mean else text)
            rs = groups[dataset, name]
            devices = " / ".join(dict.fromkeys(r["device"] for r in rs))  # a cell's seeds may run on different ones
            lines.append(f"| {dataset} | {name} | {len(rs)} | " + " | ".join(cells) + f" | {devices} |")
    return "\n".join(lines) + "\n"


def plot(records, out_dir: Path, stem: str) -> list:
    """PNG curves per dataset, one line per cell (mean over its seeds): valid NDCG@10, training seconds and
    negative hardness per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("valid_score", "valid NDCG@10"),
        ("train_seconds", "training seconds / epoch"),
        ("pool_rank", "pool rank of the negatives (0 = hardest)"),
        ("score_margin", "positive minus negative score"),
    ]
    paths = []
    for dataset in sorted({r["dataset"] for r in records}):
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.5))
        names = sorted({r["name"] for r in records if r["dataset"] == dataset})
        for ax, (key, label) in zip(axes, panels):
            for index, name in enumerate(names):
                per_epoch = {}
                seeds = [r for r in records if r["dataset"] == dataset and r["name"] == name]
                for h in (h for r in seeds for h in r["history"] if h.get(key) is not None):
                    per_epoch.setdefault(h["epoch"], []).append(h[key])
                if per_epoch:
                    epochs = sorted(per_epoch)
                    ax.plot(epochs, [statistics.mean(per_epoch[e]) for e in epochs], marker=".", color=f"C{index % 10}",
                            label=f"{name} ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})")
            ax.set_xlabel("epoch")
            ax.set_title(label)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(5, max(len(labels), 1)), fontsize=8)
        fig.suptitle(f"{stem}: {dataset} (mean over seeds)")
        fig.tight_layout(rect=(0, 0.12, 1, 1))
        path = out_dir / f"{stem}-{dataset}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def write_report(out: Path, report_path: Path, title: str):
    """Rewrite the Markdown table and its plots from everything finished so far (temporary file, then rename)."""
    records = read_records(out)
    images = plot(records, report_path.parent, report_path.stem)
    text = report(records, f"{title}: test metrics at the best valid NDCG@10 epoch")
    finished = sorted(r["finished"] for r in records)
    commands = sorted({r.get("command", "?") for r in records})
    provenance = (f"Cells finished {finished[0]} to {finished[-1]} (UTC); command: "
                  + ", ".join(f"`{c}`" for c in commands) + "; device in the last column.\n")
    from recbole_genni.utils import atomic_write

    body = text + "\n" + provenance + "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in images) + "\n"
    atomic_write(report_path, lambda f: f.write(body))


def parse_setting(text: str):
    """``KEY=VALUE`` from the command line, the value read as YAML (``epochs=2``, ``train_time_budget=420``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set {text!r}: expected KEY=VALUE")
    if key == "seed":
        raise argparse.ArgumentTypeError("--set seed: each cell takes its seed from the grid's seeds; use --seed")
    return key, yaml.safe_load(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid", nargs="?", help="grid YAML")
    parser.add_argument("--out", help="results JSONL (default: benchmarks/results/<grid name>.jsonl)")
    parser.add_argument("--report", help="Markdown report (default: next to --out, .md)")
    parser.add_argument("--set", dest="settings", type=parse_setting, action="append", default=[], metavar="KEY=VALUE",
                        help="set a config key in every cell, over the grid's and the cell's own (repeatable)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only the cells of this name (repeatable)")
    parser.add_argument("--dataset", dest="datasets", action="append", default=[], metavar="NAME",
                        help="run only these of the grid's datasets (repeatable)")
    parser.add_argument("--seed", dest="seeds", type=int, action="append", default=[], metavar="N",
                        help="run these seeds instead of the grid's (repeatable)")
    parser.add_argument("--parallel", type=int, default=1, metavar="N",
                        help="cells run at once, each in its own process (on one GPU they share it: time them apart)")
    args = parse_args_or_run_cell(parser, run_cell)
    grid = yaml.safe_load(Path(args.grid).read_text())
    settings = dict(args.settings)
    grid["seeds"] = args.seeds or grid["seeds"]
    unknown = sorted(set(args.datasets) - set(grid["datasets"]))
    if unknown:
        parser.error(f"--dataset {unknown}: not among the datasets of {args.grid}: {grid['datasets']}")
    grid["datasets"] = args.datasets or grid["datasets"]
    out = Path(args.out or f"benchmarks/results/{Path(args.grid).stem}.jsonl")
    report_path = Path(args.report or out.with_suffix(".md"))
    convert_sources(grid, settings)
    done = {r["key"] for r in read_records(out)}
    cells = [c for c in expand(grid, settings) if not args.only or c["name"] in args.only]
    if not cells:
        parser.error(f"--only {args.only}: no cell of {args.grid} has that name")
    todo = []
    for i, cell in enumerate(cells, start=1):
        state = "done, skipped" if cell["key"] in done else "to run"
        print(f"[{i}/{len(cells)}] {cell['key']}: {state}", flush=True)
        if cell["key"] not in done:
            todo.append((i, cell))
    command = " ".join([Path(sys.executable).name, *sys.argv])
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        running = {pool.submit(run_cell_process, __file__, cell): (i, cell) for i, cell in todo}
        for future in as_completed(running):  # results are written here, in this thread, one at a time
            i, cell = running[future]
            record, proc = future.result()
            if proc.returncode != 0 or record is None:
                print(f"[{i}/{len(cells)}] {cell['key']}: FAILED\n{proc.stderr[-3000:]}", flush=True)
                continue
            record["command"] = command
            append_result(out, record)
            print(f"[{i}/{len(cells)}] {cell['key']}: test ndcg@10 {record['test']['ndcg@10']:.4f}, "
                  f"{record['epochs']} epochs ({record['stop_reason']}), "
                  f"{record['train_seconds_per_epoch']:.1f} s/epoch", flush=True)
            write_report(out, report_path, Path(args.grid).stem)
    if read_records(out):
        write_report(out, report_path, Path(args.grid).stem)
    return 0


if __name__ == "__main__":
    sys.exit(main())
