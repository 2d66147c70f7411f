"""Checks of a sequential dataset's ``.inter`` file, so bad data stops a run before training with a clear fix."""

import os
import re

import pandas as pd

from recbole_genni.utils import GenNiConfigError

#: a leave-one-out split needs a training, a valid and a test item per user
MIN_USER_INTERACTIONS = 3


def _lower_bound(interval) -> float:
    """The lower bound of a RecBole interval filter such as ``"[3,inf)"`` (0 when there is none)."""
    if not interval:
        return 0
    match = re.match(r"\s*[\[(]\s*([^,]*),", str(interval))
    return float(match.group(1)) if match and match.group(1).strip() not in ("", "-inf") else 0


def check_sequential_inter(config):
    """Raise :class:`GenNiConfigError` naming the file (and line) for what RecBole would trip over later.

    Checks the user, item and time columns (in the header and in ``load_col``), an empty file, non-numeric
    timestamps, and users with fewer than 3 interactions (too short for leave-one-out) unless
    ``user_inter_num_interval`` already filters them.
    """
    path = os.path.join(config["data_path"], f"{config['dataset']}.inter")
    if not os.path.isfile(path):
        raise GenNiConfigError(
            f"{path}: no such file; put <dataset>/<dataset>.inter under data_path, or convert one with "
            "python -m recbole_genni.data.convert"
        )
    sep = config["field_separator"] or "\t"
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split(sep)
    names = [column.split(":")[0] for column in header]
    needed = {"user": config["USER_ID_FIELD"], "item": config["ITEM_ID_FIELD"], "time": config["TIME_FIELD"]}
    for role, field in needed.items():
        if field not in names:
            raise GenNiConfigError(
                f"{path}:1: no {role} column {field!r} in the header {header}; sequential models need "
                f"'{needed['user']}', '{needed['item']}' and '{needed['time']}' (or set {role.upper()}"
                f"{'_ID' if role != 'time' else ''}_FIELD)"
            )
    load_col = (config["load_col"] or {}).get("inter")
    if load_col is not None:
        missing = [f for f in needed.values() if f not in load_col]
        if missing:
            raise GenNiConfigError(f"load_col: inter {load_col} leaves out {missing}; add them, or set load_col: ~")
    columns = [header[names.index(f)] for f in needed.values()]
    table = pd.read_csv(path, sep=sep, usecols=columns, dtype=str, keep_default_na=False)
    if table.empty:
        raise GenNiConfigError(f"{path}: no interactions after the header")
    times = pd.to_numeric(table[columns[2]], errors="coerce")
    if times.isna().any():
        row = int(times.isna().to_numpy().nonzero()[0][0])
        raise GenNiConfigError(
            f"{path}:{row + 2}: timestamp {table[columns[2]].iloc[row]!r} is not a number; "
            "sequential models order each user's items by it"
        )
    if _lower_bound(config["user_inter_num_interval"]) < MIN_USER_INTERACTIONS:
        counts = table[columns[0]].value_counts()
        short = counts[counts < MIN_USER_INTERACTIONS]
        if len(short):
            raise GenNiConfigError(
                f"{path}: {len(short)} user(s) have fewer than {MIN_USER_INTERACTIONS} interactions (e.g. "
                f"{short.index[0]!r} with {int(short.iloc[0])}), too few for leave-one-out; drop them with "
                f"user_inter_num_interval: \"[{MIN_USER_INTERACTIONS},inf)\""
            )
