"""Run a benchmark suite (cells x datasets x seeds) and append each finished cell's record to its JSONL file.

    python benchmarks/run_suite.py benchmarks/suites/beauty.yaml --only recipe --seed 2020

A suite YAML has ``datasets``, ``seeds``, ``defaults`` (config keys for every cell), optional ``convert`` (source
files converted into ``defaults.data_path`` when missing), optional ``groups`` (``{dataset: TSV of item groups}``,
as ``benchmarks/groups.py`` reads it: each record then adds the tested model's test HR/NDCG@10 per group of users)
and either ``cells`` (a list of ``{name, model, config}``)
or ``models`` x ``samplers`` (``{name: config}``). Each cell runs in its own process (peak memory is per cell, a
crash loses one cell); its record (metrics, per-epoch history, command, device, package commit, seed and config) is
appended to ``benchmarks/results/<suite>.jsonl`` as soon as it finishes, so a killed suite resumes where it
stopped. At the end it prints the suite's table; ``python benchmarks/report.py`` puts it in docs/benchmarks.md.
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
from report import cell_table  # noqa: E402

METRICS = [f"{m}@{k}" for m in ("hit", "ndcg") for k in (5, 10, 20)]


def expand(suite, settings=None):
    """The suite's cells as dicts with ``key, name, model, dataset, seed, config``; ``settings`` (``--set``) win over
    the suite's defaults and each cell's own keys."""
    if "cells" in suite:
        base = [(c["name"], c["model"], c.get("config", {})) for c in suite["cells"]]
    else:
        base = [
            (f"{model}/{sampler}", model, {**suite.get("model_config", {}).get(model, {}), **config})
            for model, (sampler, config) in itertools.product(suite["models"], suite["samplers"].items())
        ]
    # dataset, then seed, then cell: a suite cut short still compares every cell on the first dataset and seed
    for dataset, seed, (name, model, config) in itertools.product(suite["datasets"], suite["seeds"], base):
        yield {
            "key": f"{name}|{dataset}|{seed}",
            "name": name,
            "model": model,
            "dataset": dataset,
            "seed": seed,
            "config": {**suite.get("defaults", {}), **config, **(settings or {}), "seed": seed},
            **({"groups": suite["groups"][dataset]} if dataset in suite.get("groups", {}) else {}),
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
    by_group = grouped_test_metrics(result["checkpoint"], cell["groups"]) if "groups" in cell else None
    timed = [h["train_seconds"] + h["valid_seconds"] for h in history if "valid_seconds" in h]
    cuda = torch.cuda.is_available() and cell["config"].get("use_gpu", True)
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        **{k: cell[k] for k in ("key", "name", "model", "dataset", "seed")},
        "test": {m: result["test_result"][m] for m in METRICS},
        **({"test_by_group": by_group} if by_group else {}),
        "best_valid": dict(result["best_valid_result"] or {}),
        "best_epoch": best_epoch([h.get("valid_score") for h in history]),
        "epochs": epochs,
        "stop_reason": result["stop_reason"],
        # training plus validation, from the epochs' own records: a resumed run's process saw only its last epochs
        "seconds_per_epoch": statistics.fmean(timed) if timed else None,
        "train_seconds_per_epoch": sum(h["train_seconds"] for h in history) / max(epochs, 1),
        "train_seconds_per_step": train_seconds_per_step(history),
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


def grouped_test_metrics(checkpoint_file, groups_file) -> dict:
    """The test HR/NDCG@10 of the checkpoint's model per group of users (``reevaluate.evaluate_by_group``), under
    the run's own rule for the users' earlier items."""
    from reevaluate import evaluate_by_group, rebuild

    from recbole_genni.checkpoints import read_checkpoint

    trainer, _, test = rebuild(read_checkpoint(checkpoint_file, "cpu", "", "a best-model checkpoint"))
    return evaluate_by_group(trainer, test, groups_file)[1]


def train_seconds_per_step(history):
    """Training seconds per step over the epochs, or None when an epoch's record has no step count (a run resumed
    from a checkpoint of an older version)."""
    steps = [h.get("train_steps") for h in history]
    if not history or None in steps:
        return None
    return sum(h["train_seconds"] for h in history) / max(sum(steps), 1)


def package_commit() -> str:
    """The commit of the checkout the package runs from (with ``+`` if it has uncommitted changes outside
    ``benchmarks/results/``, where a suite appends its records as it runs), or ``unknown`` outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)benchmarks/results"], cwd=root,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "")


def convert_sources(suite, settings=None):
    """Convert the suite's ``convert`` sources missing under its ``data_path`` (``settings``, from ``--set``, win)."""
    from recbole_genni.data.convert import convert, dataset_name

    data_path = Path({**suite.get("defaults", {}), **(settings or {})}.get("data_path", "dataset/"))
    for source in suite.get("convert", []):
        name = dataset_name(Path(source))
        if not (data_path / name / f"{name}.inter").exists():
            if not Path(source).exists():
                raise SystemExit(f"{source}: missing; python benchmarks/fetch_data.py {name} --to "
                                 f"{Path(source).parent.parent} fetches it (or says where it comes from)")
            stats = convert(source, data_path)
            print(f"converted {source}: {stats}", flush=True)


def check_groups(suite):
    """Read the item-group TSVs of the suite's datasets now, so that a missing or malformed one stops the suite
    before its cells train, not after."""
    from groups import read_groups

    for dataset in suite["datasets"]:
        path = suite.get("groups", {}).get(dataset)
        if path is not None:
            if not Path(path).exists():
                raise SystemExit(f"groups: {path} (the item groups of {dataset}) is missing; run from the folder the "
                                 "suite's paths are relative to, or remove the entry")
            read_groups(Path(path))


def parse_setting(text: str):
    """``KEY=VALUE`` from the command line, the value read as YAML (``epochs=2``, ``train_time_budget=420``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set {text!r}: expected KEY=VALUE")
    if key == "seed":
        raise argparse.ArgumentTypeError("--set seed: each cell takes its seed from the suite's seeds; use --seed")
    return key, yaml.safe_load(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", nargs="?", help="suite YAML (benchmarks/suites/)")
    parser.add_argument("--out", help="results JSONL (default: benchmarks/results/<suite name>.jsonl)")
    parser.add_argument("--set", dest="settings", type=parse_setting, action="append", default=[], metavar="KEY=VALUE",
                        help="set a config key in every cell, over the suite's and the cell's own (repeatable)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only the cells of this name (repeatable)")
    parser.add_argument("--dataset", dest="datasets", action="append", default=[], metavar="NAME",
                        help="run only these of the suite's datasets (repeatable)")
    parser.add_argument("--seed", dest="seeds", type=int, action="append", default=[], metavar="N",
                        help="run these seeds instead of the suite's (repeatable)")
    parser.add_argument("--parallel", type=int, default=1, metavar="N",
                        help="cells run at once, each in its own process (on one GPU they share it: time them apart)")
    args = parse_args_or_run_cell(parser, run_cell)
    suite = yaml.safe_load(Path(args.suite).read_text())
    if "catalogues" in suite:
        parser.error(f"{args.suite} is a scale suite; run it with python benchmarks/scale.py {args.suite}")
    settings = dict(args.settings)
    suite["seeds"] = args.seeds or suite["seeds"]
    unknown = sorted(set(args.datasets) - set(suite["datasets"]))
    if unknown:
        parser.error(f"--dataset {unknown}: not among the datasets of {args.suite}: {suite['datasets']}")
    suite["datasets"] = args.datasets or suite["datasets"]
    out = Path(args.out or f"benchmarks/results/{Path(args.suite).stem}.jsonl")
    convert_sources(suite, settings)
    check_groups(suite)
    done = {r["key"] for r in read_records(out)}
    cells = [c for c in expand(suite, settings) if not args.only or c["name"] in args.only]
    if not cells:
        parser.error(f"--only {args.only}: no cell of {args.suite} has that name")
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
    keys = {c["key"] for c in cells}
    finished = [r for r in read_records(out) if r["key"] in keys]
    for dataset in sorted({r["dataset"] for r in finished}):
        print(f"\n{dataset}\n" + "\n".join(cell_table([r for r in finished if r["dataset"] == dataset])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
