"""Cost of negative sampling per training step: SASRec on ml-100k, one process, same batches for every sampler.

    python benchmarks/sampler_cost.py [--batches 40] [--batch_size 512] [--out benchmarks/results/sampler_cost.jsonl]

Times ``collate (sampling) + forward + backward + Adam step`` over the first N batches of an epoch for:
uniform, genni (M = 100), our dns (M = 10), and RecBole's own ``dynamic`` DNS (``candidate_num: 10``).
Prints seconds per batch and the projected epoch time, and appends one record per sampler to ``--out``.
"""

import argparse
import os
import platform
import sys
from datetime import date
from pathlib import Path

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/, run as a script
from run_suite import append_result  # noqa: E402
from step_cost import timed_step  # noqa: E402

from recbole_genni.utils import freed_memory_kept  # noqa: E402


def step_seconds(train_data, model, batches):
    """Mean seconds of one training step (its collate included) over ``batches`` steps after one warm-up, freed
    memory kept as a run's training keeps it (the package's default, for RecBole's DNS too)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    iterator = iter(train_data)
    with freed_memory_kept(True):
        times = [timed_step(iterator, model, optimizer) for _ in range(batches + 1)]
    return sum(times[1:]) / batches, len(train_data)


def ours(sampler, pool_size, batch_size, batches):
    from recbole.data import create_dataset
    from recbole.utils import init_seed

    from recbole_genni.config import Config
    from recbole_genni.quick_start import data_preparation

    config = Config("SASRec", "ml-100k", config_dict={
        "neg_sampler": sampler, "neg_pool_size": pool_size, "train_batch_size": batch_size, "state": "ERROR",
    })
    init_seed(config["seed"], True)
    train, _, _ = data_preparation(config, create_dataset(config))
    model = config.model_class(config, train._dataset)
    train.get_model(model)
    return step_seconds(train, model, batches)


def recbole_dynamic(candidate_num, batch_size, batches):
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, init_seed

    config = Config("SASRec", "ml-100k", config_dict={
        "loss_type": "BPR", "train_batch_size": batch_size, "state": "ERROR",
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1, "dynamic": True,
                                  "candidate_num": candidate_num},
    })
    init_seed(config["seed"], True)
    train, _, _ = data_preparation(config, create_dataset(config))
    model = get_model("SASRec")(config, train._dataset)
    torch.autograd.set_detect_anomaly(False)  # RecBole's sine.py switches it on at import
    train.get_model(model)
    return step_seconds(train, model, batches)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch_size", type=int, default=512)
    parser.add_argument("--out", help="results JSONL to append to")
    args = parser.parse_args()
    command = " ".join(["python", *sys.argv])
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv
    runs = {
        "uniform": lambda: ours("uniform", 100, args.batch_size, args.batches),
        "genni (M=100)": lambda: ours("genni", 100, args.batch_size, args.batches),
        "dns, ours (M=10)": lambda: ours("dns", 10, args.batch_size, args.batches),
        "dns, RecBole dynamic (candidate_num=10)": lambda: recbole_dynamic(10, args.batch_size, args.batches),
    }
    device = f"CPU ({platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__})"
    for name, run in runs.items():
        seconds, num_batches = run()
        print(f"{name:<42} {seconds:.3f} s/batch  {seconds * num_batches:8.1f} s/epoch (projected)", flush=True)
        if args.out:
            append_result(Path(args.out), {
                "sampler": name, "seconds_per_batch": seconds, "seconds_per_epoch": seconds * num_batches,
                "batches": args.batches, "batch_size": args.batch_size, "batches_per_epoch": num_batches,
                "model": "SASRec", "dataset": "ml-100k", "device": device, "date": date.today().isoformat(),
                "command": command,
            })


if __name__ == "__main__":
    main()
