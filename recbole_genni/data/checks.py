"""Checks of a sequential dataset's ``.inter`` file, so bad data stops a run before training with a clear fix."""

import os
import re

import pandas as pd

from recbole_genni.errors import GenNiConfigError

#: RecBole's column types (``name:type`` in an atomic file's header)
COLUMN_TYPES = ("token", "token_seq", "float", "float_seq")


def _lower_bound(interval) -> float:
    """The lower bound of a RecBole interval filter such as ``"[3,inf)"`` (0 when there is none)."""
    if not interval:
        return 0
    match = re.match(r"\s*[\[(]\s*([^,]*),", str(interval))
    return float(match.group(1)) if match and match.group(1).strip() not in ("", "-inf") else 0


def min_user_interactions(config):
    """Interactions a user needs for RecBole's sequential leave-one-out split to give them a training row, and a
    row in every held-out split: the first item (input only), one training target, one target per held-out split.
    RecBole splits the augmented rows (one per item after the first) and keeps at least one for training, so a user
    with 3 interactions under ``valid_and_test`` gets a test row and no valid row. None for other splits."""
    split = config["eval_args"]["split"] or {}
    held_out = {"valid_and_test": 2, "valid_only": 1, "test_only": 1}.get(split.get("LS"))
    return None if held_out is None else 2 + held_out


def check_filtered_users(config, dataset):
    """After RecBole's own filters (``val_interval``, ``item_inter_num_interval``, ...), which the file check cannot
    see: every user still needs :func:`min_user_interactions`, or the split gives them no valid row (no valid row
    at all on a small dataset, and a run that reports "best valid: None")."""
    needed = min_user_interactions(config)
    if needed is None or not len(dataset.inter_feat):
        return
    counts = pd.Series(dataset.inter_feat[dataset.uid_field]).value_counts(sort=False).sort_index()  # by user id
    short = counts[counts < needed]
    if len(short):
        token = dataset.field2id_token[dataset.uid_field][short.index[0]]
        raise GenNiConfigError(
            f"dataset {dataset.dataset_name}: after RecBole's filters, {len(short)} user(s) have fewer than {needed} "
            f"interactions (e.g. {str(token)!r} with {int(short.iloc[0])}), too few for a leave-one-out split with a "
            f"training, a valid and a test row; add user_inter_num_interval: \"[{needed},inf)\" to drop them after "
            "the other filters"
        )


def _read_header(path, sep):
    """``(header, names, types)`` of an atomic file; a repeated column or an unknown type raises naming the file."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split(sep)
    names = [column.split(":")[0] for column in header]
    types = [column.split(":")[1] if ":" in column else "" for column in header]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise GenNiConfigError(f"{path}:1: column {repeated[0]!r} appears more than once in the header {header}")
    for column, kind in zip(header, types):
        if kind not in COLUMN_TYPES:
            raise GenNiConfigError(
                f"{path}:1: column {column!r} has no known type; write name:type with type one of "
                f"{', '.join(COLUMN_TYPES)}"
            )
    return header, names, types


def _loaded(config, suffix) -> bool:
    """Whether RecBole loads ``<dataset>.<suffix>``: every file when ``load_col`` is None, else the listed ones."""
    load_col = config["load_col"]
    return load_col is None or suffix in load_col


def check_sequential_inter(config):
    """Raise :class:`GenNiConfigError` naming the file (and line) for what RecBole would trip over later.

    Checks the ``.inter`` header (no repeated column, known types, the user, item and time columns, the user and
    item as ``token``, the time as ``float``) and a user's ``load_col`` (RecBole's default, the user and item
    columns only, gets the time column added: the header has it), an empty file, non-numeric timestamps, users too
    short for the leave-one-out split unless ``user_inter_num_interval`` already filters them, and an ``.item`` or
    ``.user`` file that leaves out ids of the ``.inter`` file (RecBole would drop their interactions).
    """
    path = os.path.join(config["data_path"], f"{config['dataset']}.inter")
    if not os.path.isfile(path):
        raise GenNiConfigError(
            f"{path}: no such file; put <dataset>/<dataset>.inter under data_path, or convert one with "
            "python -m recbole_genni.data.convert"
        )
    sep = config["field_separator"] or "\t"
    header, names, types = _read_header(path, sep)
    needed = {"user": config["USER_ID_FIELD"], "item": config["ITEM_ID_FIELD"], "time": config["TIME_FIELD"]}
    for role, field in needed.items():
        if field not in names:
            raise GenNiConfigError(
                f"{path}:1: no {role} column {field!r} in the header {header}; sequential models need "
                f"'{needed['user']}', '{needed['item']}' and '{needed['time']}' (or set {role.upper()}"
                f"{'_ID' if role != 'time' else ''}_FIELD)"
            )
    for role, field in needed.items():
        expected = "float" if role == "time" else "token"
        kind = types[names.index(field)]
        if kind != expected:
            why = ("RecBole orders each user's interactions by it, and a token is ordered by its id, not its value"
                   if role == "time" else "ids are tokens")
            raise GenNiConfigError(f"{path}:1: column '{field}:{kind}' must be '{field}:{expected}': {why}")
    load_col = (config["load_col"] or {}).get("inter")
    if load_col is not None:
        missing = [f for f in needed.values() if f not in load_col]
        if missing and "load_col" in config.external_config_dict:
            raise GenNiConfigError(f"load_col: inter {load_col} leaves out {missing}; add them, or set load_col: ~")
        if missing:  # RecBole's default lists the user and item only: the header has the rest, so load it too
            config["load_col"] = {**config["load_col"], "inter": list(load_col) + missing}
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
    needed_per_user = min_user_interactions(config)
    if needed_per_user is not None and _lower_bound(config["user_inter_num_interval"]) < needed_per_user:
        counts = table[columns[0]].value_counts()
        short = counts[counts < needed_per_user]
        if len(short):
            raise GenNiConfigError(
                f"{path}: {len(short)} user(s) have fewer than {needed_per_user} interactions (e.g. "
                f"{short.index[0]!r} with {int(short.iloc[0])}), too few for a leave-one-out split with a training, "
                f"a valid and a test row; drop them with user_inter_num_interval: \"[{needed_per_user},inf)\""
            )
    for suffix, role in (("item", "item"), ("user", "user")):
        _check_feature_file(config, path, table[columns[0 if role == "user" else 1]], suffix, needed[role], sep)


def _check_feature_file(config, inter_path, ids, suffix, field, sep):
    """Refuse an ``.item`` / ``.user`` file that RecBole loads and that leaves out ids of the ``.inter`` file:
    RecBole would silently drop those interactions (``filter_inter_by_user_or_item``)."""
    path = os.path.join(config["data_path"], f"{config['dataset']}.{suffix}")
    if not os.path.isfile(path) or not _loaded(config, suffix) or not config["filter_inter_by_user_or_item"]:
        return
    header, names, _ = _read_header(path, sep)
    if field not in names:
        return
    listed = set(pd.read_csv(path, sep=sep, usecols=[header[names.index(field)]], dtype=str,
                             keep_default_na=False).iloc[:, 0])
    dropped = ~ids.isin(listed)
    if dropped.any():
        missing = ids[dropped].unique()
        raise GenNiConfigError(
            f"{path}: {len(missing)} {field}(s) of {inter_path} are not listed (e.g. {missing[0]!r}), so RecBole would "
            f"drop {int(dropped.sum())} of its {len(ids)} interactions ({dropped.mean():.0%}); list them in "
            f"{os.path.basename(path)}, remove them from the .inter file, or set filter_inter_by_user_or_item: False "
            "to keep them without features"
        )
