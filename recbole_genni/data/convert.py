"""Convert sequence files to RecBole atomic files.

    python -m recbole_genni.data.convert ../shared/datasets/Beauty/Beauty.txt [--out dataset/]

Input: an S3-Rec/ICLRec sequence file (one user per line, ``user item item ...`` in time order, integer ids),
or a RecBole ``.inter`` file (tab-separated), taken as it is with its ``.item``/``.user`` siblings; either may be
``.xz`` or ``.gz`` compressed.
Output: ``OUT/<name>/<name>.inter`` (a sequence file's position becomes the timestamp, so RecBole's time
ordering keeps the file's order). Files are written to a temporary name and renamed, so an interrupted run
leaves no half-written dataset. Prints users / items / interactions / average sequence length.
"""

import argparse
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
    for suffix in (".xz", ".gz", ".inter", ".txt"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    return name


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
        header = f.readline().rstrip("\n").split("\t")
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


def convert(path, out="dataset/") -> dict:
    """Convert one file (see the module docstring); return ``name, users, items, interactions``."""
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise GenNiConfigError(f"{path}: no such file")
    if out.exists() and not out.is_dir():
        raise GenNiConfigError(f"--out: {out} is a file; give the folder (data_path) to write <name>/<name>.inter in")
    is_atomic = ".inter" in path.name
    return copy_atomic(path, out) if is_atomic else convert_sequences(path, out)


def usage_lines(stats, out) -> str:
    """How to train on a converted dataset: the command, and the YAML lines it needs."""
    lines = [f"  train on it: recbole-genni --model=GenNiSASRec --dataset={stats['name']} --data_path={out}",
             "  or with these lines in a YAML file (--config_files):", f"    data_path: {out}"]
    if stats["short_users"]:
        lines.append(f'    user_inter_num_interval: "[{SPLIT_MIN_LENGTH},inf)"   # {stats["short_users"]:,} users have '
                     f"fewer than {SPLIT_MIN_LENGTH} interactions, too few for a leave-one-out split")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="S3-Rec .txt or RecBole .inter files (.xz or .gz too)")
    parser.add_argument("--out", default="dataset/", help="data_path to write <name>/<name>.inter into")
    args = parser.parse_args(argv)

    def convert_all():
        names = [dataset_name(Path(path)) for path in args.paths]
        twice = next((name for name in names if names.count(name) > 1), None)
        if twice is not None:
            same = [path for path, name in zip(args.paths, names) if name == twice]
            raise GenNiConfigError(f"{' and '.join(same)} would both be written to {Path(args.out) / twice}; rename "
                                   "one, or convert them into different --out folders.")
        for path in args.paths:
            s = convert(path, args.out)
            print(f"{s['name']}: {s['users']:,} users, {s['items']:,} items, {s['interactions']:,} interactions, "
                  f"avg length {s['interactions'] / max(s['users'], 1):.2f} -> {Path(args.out) / s['name']}")
            print(usage_lines(s, args.out))

    return run_cli(convert_all)


if __name__ == "__main__":
    sys.exit(main())
