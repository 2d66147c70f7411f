"""Item groups of a dataset (its categories), read from a TSV of id ranges, for the benchmarks' per-group reports."""

import csv
from pathlib import Path

import torch


def read_groups(path: Path) -> list:
    """The rows of a TSV of item groups: ``category``, ``first_item``, ``last_item`` (inclusive ranges of the
    dataset's integer item tokens), as ``../shared/datasets/Amazon2014-Six/Amazon2014-Six.domains.tsv`` has them."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    missing = {"category", "first_item", "last_item"} - set(rows[0] if rows else {})
    if missing:
        raise SystemExit(f"{path}: needs tab-separated columns category, first_item, last_item; missing {missing}")
    return rows


def read_group_names(path: Path) -> list:
    """The groups' names, in the order of their indices in :func:`item_groups`."""
    return [row["category"] for row in read_groups(path)]


def item_groups(path: Path, item_tokens) -> torch.Tensor:
    """The group index of each internal item id ``[|I|]`` (-1 for padding and items in no group) from a TSV of item
    groups (:func:`read_groups`)."""
    rows = read_groups(path)
    groups = torch.full((len(item_tokens),), -1, dtype=torch.long)
    for index, row in enumerate(rows):
        low, high = int(row["first_item"]), int(row["last_item"])
        for item_id, token in enumerate(item_tokens):
            if item_id and token.isdigit() and low <= int(token) <= high:
                groups[item_id] = index
    return groups
