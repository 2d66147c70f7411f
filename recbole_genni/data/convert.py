"""Convert interaction files as they come to RecBole atomic files.

    python -m recbole_genni.data.convert ../shared/datasets/Beauty/Beauty.txt [--out dataset/]
    python -m recbole_genni.data.convert ratings.csv                      # header userId,movieId,rating,timestamp
    python -m recbole_genni.data.convert ml-1m/ratings.dat --sep "::"     # user::item::rating::time, no header

Input, any of them ``.xz`` or ``.gz`` compressed:

- a delimited file of interactions, one a line (CSV, TSV, ``::``, ``;`` or ``|``, found from the first line or
  given with ``--sep``): the user, item and time columns are chosen by name or 0-based position (``--user``,
  ``--item``, ``--time``; ``--time none`` keeps the file's order), and the usual header names are recognised
  with no flag (``userId``/``user_id``, ``movieId``/``itemId``/``item_id``, ``timestamp``...). A first line is a
  header when it holds such a name, or a word above a number of the second line (``rating`` over ``5``). Without:
  user 0, item 1, and time 3 of four or more columns (MovieLens' ``user::item::rating::time``) or 2 of three;
- an S3-Rec/ICLRec sequence file (one user per line, ``user item item ...`` in time order, integer ids,
  separated by spaces);
- a RecBole ``.inter`` file (tab-separated, typed header), taken as it is with its ``.item``/``.user`` siblings.

Output: ``OUT/<name>/<name>.inter`` (a sequence file's position becomes the timestamp, so RecBole's time
ordering keeps the file's order). Files are written to a temporary name and renamed, so an interrupted or refused
run leaves no half-written dataset and no empty folder. Prints users / items / interactions / average sequence
length.
"""

import argparse
import csv
import gzip
import lzma
import shutil
import sys
from collections import Counter
from pathlib import Path

from recbole_genni.errors import GenNiConfigError
from recbole_genni.utils import atomic_write, run_cli

INTER_HEADER = "user_id:token\titem_id:token\ttimestamp:float"
#: interactions a user needs for RecBole's leave-one-out split to give them a training, a valid and a test row
SPLIT_MIN_LENGTH = 4


def _open_text(path: Path):
    if path.suffix == ".xz":
        return lzma.open(path, "rt", encoding="utf-8")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _copy_of(source: Path):
    """A writer for :func:`atomic_write` that copies (and decompresses) ``source``, closing it after."""
    def write(dst):
        with _open_text(source) as src:
            shutil.copyfileobj(src, dst)
    return write


def dataset_name(path: Path) -> str:
    name = path.name
    for suffix in (".xz", ".gz", ".inter", ".txt", ".csv", ".tsv", ".dat"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    return name


#: header names recognised for each column, compared without case, ``_`` or a RecBole type suffix (``:token``)
COLUMN_NAMES = {
    "user": ("userid", "user", "uid", "reviewerid", "customerid", "visitorid"),
    "item": ("itemid", "movieid", "item", "iid", "productid", "asin", "businessid", "trackid", "songid", "bookid"),
    "time": ("timestamp", "time", "ts", "unixreviewtime", "datetime", "eventtime"),
}
#: separators of delimited files, in the order they are looked for in the first line
SEPARATORS = ("::", "\t", ",", ";", "|")


def _first_lines(path: Path, count: int = 1) -> list:
    """The file's first ``count`` non-empty lines (fewer if it has fewer)."""
    lines = []
    with _open_text(path) as f:
        for line in f:
            if line.strip():
                lines.append(line.rstrip("\r\n"))
                if len(lines) == count:
                    break
    return lines


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split(line: str, sep: str):
    if len(sep) == 1:  # the csv module: quoted fields may hold the separator
        return next(csv.reader([line], delimiter=sep))
    return line.split(sep)


def _column(spec, header, role, path, sep):
    """The 0-based index of the ``role`` column: ``spec`` (a name or a position) or, with none, the usual names in
    ``header``, or the headerless default; None for no time column."""
    if isinstance(spec, str) and spec.lower() == "none" and role == "time":
        return None
    width = len(header)
    if spec is not None and str(spec).isdigit():
        if int(spec) >= width:
            raise GenNiConfigError(f"{path}:1: --{role} {spec}: the file has {width} column(s) separated by {sep!r}")
        return int(spec)
    names = [h.split(":")[0].replace("_", "").strip().lower() for h in header]
    if spec is not None:
        wanted = str(spec).replace("_", "").lower()
        if wanted not in names:
            raise GenNiConfigError(f"{path}:1: --{role} {spec}: no such column in the header ({', '.join(header)})")
        return names.index(wanted)
    found = next((names.index(n) for n in COLUMN_NAMES[role] if n in names), None)
    if found is None and role != "time":
        raise GenNiConfigError(
            f"{path}:1: the header ({', '.join(header)}) has no {role} column of a usual name; name it with "
            f"--{role} COLUMN (a header name or a 0-based position)")
    return found


def read_interactions(path: Path, sep: str, user=None, item=None, time=None):
    """``(columns, rows)`` of a delimited interactions file: the user, item and time column indices (time None:
    the file's order) and a generator of ``(line number, user, item, time or None)``."""
    first, *second = [[field.strip() for field in _split(line, sep)] for line in _first_lines(path, 2)]
    usual = {name for names in COLUMN_NAMES.values() for name in names}
    # a header names a usual column, or has a word where the next line has a number (rating over 5)
    has_header = any(f.split(":")[0].replace("_", "").lower() in usual for f in first) or any(
        not _is_number(a) and _is_number(b) for a, b in zip(first, second[0] if second else []))
    roles = (("user", user), ("item", item), ("time", time))
    if not has_header:  # MovieLens' user::item::rating::time, or user,item,time
        defaults = {"user": 0, "item": 1, "time": 3 if len(first) >= 4 else 2 if len(first) == 3 else None}
        roles = tuple((role, defaults[role] if spec is None else spec) for role, spec in roles)
    columns = [_column(spec, first, role, path, sep) for role, spec in roles]

    def rows():
        needed = max(c for c in columns if c is not None) + 1
        with _open_text(path) as f:
            for number, line in enumerate(f, start=1):
                if (number == 1 and has_header) or not line.strip():
                    continue
                fields = [field.strip() for field in _split(line.rstrip("\r\n"), sep)]
                if len(fields) < needed:
                    raise GenNiConfigError(
                        f"{path}:{number}: {len(fields)} field(s) separated by {sep!r} where column {needed - 1} "
                        "is read; fix the line, or give the file's separator with --sep")
                u, i = fields[columns[0]], fields[columns[1]]
                t = fields[columns[2]] if columns[2] is not None else None
                if not u or not i:
                    raise GenNiConfigError(f"{path}:{number}: an empty user or item id; fix or remove the line")
                if t is not None and not _is_number(t):
                    raise GenNiConfigError(
                        f"{path}:{number}: time {t!r} is not a number (seconds or any increasing number); choose a "
                        "numeric column with --time, or --time none to keep the file's order")
                yield number, u, i, t

    return columns, rows()


def convert_delimited(path: Path, out: Path, sep: str, user=None, item=None, time=None) -> dict:
    """Write ``out/<name>/<name>.inter`` from a delimited interactions file; return its statistics."""
    name = dataset_name(path)
    columns, rows = read_interactions(path, sep, user, item, time)
    lengths, items = Counter(), set()

    def write(f):
        f.write(INTER_HEADER + "\n")
        for _, u, i, t in rows:
            f.write(f"{u}\t{i}\t{t if t is not None else lengths[u]}\n")
            lengths[u] += 1
            items.add(i)

    atomic_write(out / name / f"{name}.inter", write)
    short = sum(count < SPLIT_MIN_LENGTH for count in lengths.values())
    return {"users": len(lengths), "items": len(items), "interactions": sum(lengths.values()), "name": name,
            "short_users": short}


def read_sequences(path: Path):
    """``(user, [items])`` per line of an S3-Rec file; a malformed line, or a user's second line (their items would
    be interleaved with the first's, both numbered from 0), raises naming the file and line."""
    first_line = {}
    with _open_text(path) as f:
        for number, line in enumerate(f, start=1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) < 2:
                raise GenNiConfigError(f"{path}:{number}: a line needs a user id and at least one item id")
            bad = next((t for t in tokens if not (t.isascii() and t.isdigit())), None)
            if bad is not None:
                raise GenNiConfigError(f"{path}:{number}: token {bad!r} is not a non-negative integer id (0-9)")
            user = tokens[0]
            if user in first_line:
                raise GenNiConfigError(
                    f"{path}:{number}: user {user} already has line {first_line[user]}; a sequence file has one line "
                    "a user, their items in time order: join the two lines")
            first_line[user] = number
            yield user, tokens[1:]


def convert_sequences(path: Path, out: Path) -> dict:
    """Write ``out/<name>/<name>.inter`` from an S3-Rec sequence file; return its statistics."""
    name = dataset_name(path)
    stats = {"users": 0, "items": set(), "interactions": 0, "short_users": 0}

    def write(f):
        f.write(INTER_HEADER + "\n")
        for user, items in read_sequences(path):
            stats["users"] += 1
            stats["short_users"] += len(items) < SPLIT_MIN_LENGTH
            stats["interactions"] += len(items)
            stats["items"].update(items)
            f.writelines(f"{user}\t{item}\t{t}\n" for t, item in enumerate(items))

    atomic_write(out / name / f"{name}.inter", write)
    return {**stats, "items": len(stats["items"]), "name": name}


def copy_atomic(path: Path, out: Path) -> dict:
    """Copy (and decompress) a RecBole ``.inter`` file and its siblings; return its statistics."""
    name = dataset_name(path)
    with _open_text(path) as f:
        header_line = f.readline().rstrip("\r\n")
        if "\t" not in header_line:
            raise GenNiConfigError(
                f"{path}:1: a RecBole .inter file is tab-separated with a typed header (user_id:token<TAB>...), and "
                f"this header has no tab ({header_line[:80]!r}); to convert it, give its separator: --sep ','")
        header = header_line.split("\t")
        fields = [h.split(":")[0] for h in header]
        missing = [c for c in ("user_id", "item_id") if c not in fields]
        if missing:
            raise GenNiConfigError(f"{path}:1: header {header} has no {' or '.join(missing)} column")
        u, i = fields.index("user_id"), fields.index("item_id")
        users, items, lengths = Counter(), set(), 0
        for number, line in enumerate(f, start=2):
            row = line.rstrip("\n").split("\t")
            if len(row) != len(header):
                raise GenNiConfigError(
                    f"{path}:{number}: {len(row)} tab-separated field(s) where the header has {len(header)} "
                    f"({', '.join(header)}); write one interaction a line, fields separated by tabs")
            users[row[u]] += 1
            items.add(row[i])
            lengths += 1

    atomic_write(out / name / f"{name}.inter", _copy_of(path))
    for suffix in (".item", ".user"):
        for sibling in (path.with_name(name + suffix + end) for end in ("", ".xz", ".gz")):
            if sibling.exists():
                atomic_write(out / name / f"{name}{suffix}", _copy_of(sibling))
    short = sum(count < SPLIT_MIN_LENGTH for count in users.values())
    return {"users": len(users), "items": len(items), "interactions": lengths, "name": name, "short_users": short}


def convert(path, out="dataset/", sep=None, user=None, item=None, time=None) -> dict:
    """Convert one file (see the module docstring); return ``name, users, items, interactions, short_users``.
    ``sep``, ``user``, ``item``, ``time``: a delimited file's separator and columns (found when None)."""
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise GenNiConfigError(f"{path}: no such file")
    if out.exists() and not out.is_dir():
        raise GenNiConfigError(f"--out: {out} is a file; give the folder (data_path) to write <name>/<name>.inter in")
    folder = out / dataset_name(path)
    created = [p for p in (out, folder) if not p.exists()]
    try:
        if ".inter" in path.name and sep is None:
            return copy_atomic(path, out)
        first = "".join(_first_lines(path))
        sep = sep or next((s for s in SEPARATORS if s in first), None)
        if sep is None:
            return convert_sequences(path, out)
        return convert_delimited(path, out, sep.replace("\\t", "\t"), user, item, time)
    except BaseException:
        for made in reversed(created):  # a refused file leaves no empty folder behind
            if made.is_dir() and not any(made.iterdir()):
                made.rmdir()
        raise


def train_command() -> str:
    """The training command as the user's shell can run it: ``recbole-genni`` where it is on the PATH, else the
    script beside this Python (a venv not activated: ``.venv/bin/recbole-genni``)."""
    script = Path(sys.executable).parent / "recbole-genni"
    if shutil.which("recbole-genni") or not script.exists():
        return "recbole-genni"
    return str(script.relative_to(Path.cwd())) if script.is_relative_to(Path.cwd()) else str(script)


def usage_lines(stats, out) -> str:
    """How to train on a converted dataset: the command, and the YAML lines it needs."""
    lines = [f"  train on it: {train_command()} --model=GenNiSASRec --dataset={stats['name']} --data_path={out}",
             "  or with these lines in a YAML file (--config_files):", f"    data_path: {out}"]
    if stats["short_users"]:
        lines.append(f'    user_inter_num_interval: "[{SPLIT_MIN_LENGTH},inf)"   # {stats["short_users"]:,} users have '
                     f"fewer than {SPLIT_MIN_LENGTH} interactions, too few for a leave-one-out split")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="delimited interaction files (CSV, TSV, ::), S3-Rec .txt or "
                                                 "RecBole .inter files (.xz or .gz too)")
    parser.add_argument("--out", default="dataset/", help="data_path to write <name>/<name>.inter into")
    parser.add_argument("--sep", help="a delimited file's separator (default: found in its first line; \\t for tab)")
    parser.add_argument("--user", help="the user column: a header name or a 0-based position")
    parser.add_argument("--item", help="the item column: a header name or a 0-based position")
    parser.add_argument("--time", help="the time column: a header name, a 0-based position, or none (file order)")
    args = parser.parse_args(argv)

    def convert_all():
        names = [dataset_name(Path(path)) for path in args.paths]
        twice = next((name for name in names if names.count(name) > 1), None)
        if twice is not None:
            same = [path for path, name in zip(args.paths, names) if name == twice]
            raise GenNiConfigError(f"{' and '.join(same)} would both be written to {Path(args.out) / twice}; rename "
                                   "one, or convert them into different --out folders.")
        for path, name in zip(args.paths, names):
            replaced = (Path(args.out) / name / f"{name}.inter").exists()
            s = convert(path, args.out, args.sep, args.user, args.item, args.time)
            print(f"{s['name']}: {s['users']:,} users, {s['items']:,} items, {s['interactions']:,} interactions, "
                  f"avg length {s['interactions'] / max(s['users'], 1):.2f} -> {Path(args.out) / s['name']}"
                  + (" (replaced the dataset that was there)" if replaced else ""))
            print(usage_lines(s, args.out))

    return run_cli(convert_all)


if __name__ == "__main__":
    sys.exit(main())
