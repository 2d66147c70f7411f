"""Fetch the benchmark datasets from their public homes, checked against their sha256.

    python benchmarks/fetch_data.py                       # every dataset the suites read, into ../shared/datasets/
    python benchmarks/fetch_data.py Beauty --to data/     # one dataset, elsewhere

The S3-Rec / ICLRec sequence files (Beauty, Sports_and_Outdoors, Toys_and_Games, Yelp) are the files of
salesforce/ICLRec at a fixed commit (BSD-3-Clause; the data is McAuley's Amazon review data and the Yelp dataset,
research use). Amazon2014-Six is built from six categories of Tiny-Snow/SeqRecBenchmark-Datasets (MIT) and has no
single file to fetch: this script says where it comes from. A file already present with the right checksum is
kept; offline, each missing file gets one line with its URL and where to put it. The suites convert the files on
first use (``convert:`` in each suite).
"""

import argparse
import hashlib
import sys
import urllib.request
from pathlib import Path

ICLREC = "https://raw.githubusercontent.com/salesforce/ICLRec/2890e6c3ff6a22c6699fc19cb863b66786c1cde4/data"
#: dataset -> (file, URL, sha256)
DATASETS = {
    "Beauty": ("Beauty.txt", f"{ICLREC}/Beauty.txt",
               "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8"),
    "Sports_and_Outdoors": ("Sports_and_Outdoors.txt", f"{ICLREC}/Sports_and_Outdoors.txt",
                            "2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2"),
    "Toys_and_Games": ("Toys_and_Games.txt", f"{ICLREC}/Toys_and_Games.txt",
                       "176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f"),
    "Yelp": ("Yelp.txt", f"{ICLREC}/Yelp.txt", "724b219106b81dd2349027da997334ddb6da9fe2f152ad6e0d97a93170f7caed"),
}
#: datasets built from several upstream files, with where they come from
BUILT = {
    "Amazon2014-Six": (
        "Amazon2014-Six.txt", "37defb78b6ff33b04af7f0ce9fe80ea5e612ba6befc02437939b9bf5c6d90338",
        "six categories of https://github.com/Tiny-Snow/SeqRecBenchmark-Datasets (commit 3bc413e, data/amazon2014-"
        "{beauty,toy,electronic_1000000,clothing,health,book_1000000}/proc.zip), each user's items in time order, "
        "item ids offset per category"),
}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _remove(partial: Path):
    """A failed download leaves neither its partial file nor an empty folder."""
    partial.unlink(missing_ok=True)
    if not any(partial.parent.iterdir()):
        partial.parent.rmdir()


def fetch(name: str, to: Path) -> str:
    """Fetch one dataset into ``to/<name>/``; return a line saying what happened."""
    if name in BUILT:
        file, digest, source = BUILT[name]
        target = to / name / file
        if target.exists() and sha256(target) == digest:
            return f"{name}: {target} is in place (sha256 checked)"
        return f"{name}: not fetched: built from {source}; put it at {target} (sha256 {digest})"
    file, url, digest = DATASETS[name]
    target = to / name / file
    if target.exists() and sha256(target) == digest:
        return f"{name}: {target} is in place (sha256 checked)"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
            out.write(response.read())
    except OSError as error:
        _remove(partial)
        return f"{name}: offline or unreachable ({error}); download {url} to {target}"
    if sha256(partial) != digest:
        _remove(partial)
        return f"{name}: {url} did not match its sha256 {digest}; nothing written"
    partial.replace(target)
    return f"{name}: fetched {target} (sha256 checked)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"datasets (default: all): {', '.join([*DATASETS, *BUILT])}")
    parser.add_argument("--to", type=Path, default=Path("../shared/datasets"), help="folder of <name>/<file>")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in DATASETS and name not in BUILT]
    if unknown:
        parser.error(f"{', '.join(unknown)}: not a benchmark dataset; choose from {', '.join([*DATASETS, *BUILT])}")
    lines = [fetch(name, args.to) for name in args.names or [*DATASETS, *BUILT]]
    print("\n".join(lines))
    return 0 if all(line.endswith("(sha256 checked)") for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
