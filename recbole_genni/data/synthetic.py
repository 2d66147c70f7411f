"""Synthetic sequential datasets for scale tests: power-law popularity plus a learnable next-item rule.

    python -m recbole_genni.data.synthetic --items 1000000 --users 20000 --out dataset/ [--name synth-1M]

Each item ``i`` has a fixed successor ``next_of[i]`` (a random permutation). A user's sequence starts at a
popularity draw (Zipf, exponent ``--zipf``); each next item follows the rule with probability ``--signal``, else it is
a fresh popularity draw. A sequential model can learn the rule, and the popularity head is long-tailed.
Writes ``OUT/<name>/<name>.inter`` and ``OUT/<name>/<name>.item`` (every id ``1..items``, so RecBole's catalogue is
the whole ``--items`` even where the tail is never drawn) atomically.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from recbole_genni.data.convert import INTER_HEADER
from recbole_genni.utils import atomic_write


def generate(num_items, num_users, min_len=5, max_len=30, zipf=1.0, signal=0.6, seed=0):
    """``(users, items, positions)`` int arrays of all interactions, users ``1..num_users``, items ``1..num_items``."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, num_items + 1) ** zipf
    popularity = rng.permutation(weights / weights.sum())  # popular ids spread over the catalogue
    next_of = rng.permutation(num_items) + 1  # next_of[i - 1]: the successor of item i
    lengths = rng.integers(min_len, max_len + 1, num_users)
    total = int(lengths.sum())
    draws = rng.choice(num_items, size=total, p=popularity) + 1
    follow = rng.random(total) < signal
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    follow[starts] = False
    items = draws.copy()
    for t in range(1, max_len):  # position by position, vectorised over the users long enough
        idx = starts[lengths > t] + t
        rule = follow[idx]
        items[idx[rule]] = next_of[items[idx[rule] - 1] - 1]
    users = np.repeat(np.arange(1, num_users + 1), lengths)
    positions = np.arange(total) - np.repeat(starts, lengths)
    return users, items, positions


def write(out, name, num_items, users, items, positions):
    """The ``.inter`` file, and the ``.item`` file listing the whole catalogue; returns the ``.inter`` path."""
    path = Path(out) / name / f"{name}.inter"

    def catalogue(f):
        f.write("item_id:token\n")
        np.savetxt(f, np.arange(1, num_items + 1), fmt="%d")

    def body(f):
        f.write(INTER_HEADER + "\n")
        np.savetxt(f, np.stack([users, items, positions], axis=1), fmt="%d", delimiter="\t")

    atomic_write(path.with_suffix(".item"), catalogue)
    atomic_write(path, body)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--min_len", type=int, default=5)
    parser.add_argument("--max_len", type=int, default=30)
    parser.add_argument("--zipf", type=float, default=1.0)
    parser.add_argument("--signal", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default=None, help="dataset name (default synth-<items>)")
    parser.add_argument("--out", default="dataset/")
    args = parser.parse_args(argv)
    data = generate(args.items, args.users, args.min_len, args.max_len, args.zipf, args.signal, args.seed)
    path = write(args.out, args.name or f"synth-{args.items}", args.items, *data)
    used = len(np.unique(data[1]))
    print(f"{path}: {args.users:,} users, {used:,} items used of {args.items:,}, {len(data[0]):,} interactions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
