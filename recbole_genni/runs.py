"""One table across runs: each run's results JSON (``log/<model>/<run id>.json``) as a row.

    recbole-genni-runs                 # every run under ./log, oldest first
    recbole-genni-runs log/ --dataset ml-100k --sort test_ndcg@10

Columns: run id, model, dataset, negatives and loss, epochs, why training stopped, training minutes, best valid
NDCG@10, test HR@10 and NDCG@10. Runs of an earlier version without a ``negatives`` entry show ``-`` there.
"""

import argparse
import json
import sys
from pathlib import Path

from recbole_genni.errors import GenNiConfigError
from recbole_genni.utils import run_cli

COLUMNS = (
    ("run", lambda r: r["run_id"]),
    ("model", lambda r: r["model"]),
    ("dataset", lambda r: r["dataset"]),
    ("negatives", lambda r: r.get("negatives", "-")),
    ("epochs", lambda r: str(r.get("epochs", "-"))),
    ("stop", lambda r: str(r.get("stop_reason") or "-")),
    ("train min", lambda r: f"{r['train_seconds'] / 60:.1f}"),
    ("valid_ndcg@10", lambda r: f"{r['best_valid_result'].get('ndcg@10', float('nan')):.4f}"),
    ("test_hit@10", lambda r: f"{r['test_result'].get('hit@10', float('nan')):.4f}"),
    ("test_ndcg@10", lambda r: f"{r['test_result'].get('ndcg@10', float('nan')):.4f}"),
)


def read_runs(folder) -> list:
    """Every run's results JSON under ``folder`` (``<model>/<run id>.json``), oldest first."""
    paths = sorted(Path(folder).glob("*/*.json"), key=lambda p: p.stat().st_mtime)
    return [json.loads(p.read_text()) for p in paths]


def table(runs, sort=None) -> str:
    """The runs as a Markdown table, sorted by the column ``sort`` (descending for metrics) or in time order."""
    names = [name for name, _ in COLUMNS]
    rows = [[cell(run) for _, cell in COLUMNS] for run in runs]
    if sort is not None:
        at = names.index(sort)
        rows.sort(key=lambda row: row[at], reverse="@" in sort)
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default="log", help="RecBole's log folder (default: ./log)")
    parser.add_argument("--model", help="only this model's runs")
    parser.add_argument("--dataset", help="only this dataset's runs")
    parser.add_argument("--sort", choices=[name for name, _ in COLUMNS], help="sort by this column")
    args = parser.parse_args(argv)

    def show():
        if not Path(args.folder).is_dir():
            raise GenNiConfigError(f"{args.folder}: no such folder; runs write log/<model>/<run id>.json")
        runs = [r for r in read_runs(args.folder) if (args.model in (None, r["model"]))
                and (args.dataset in (None, r["dataset"]))]
        print(table(runs, args.sort) if runs else f"{args.folder}: no runs' results JSON")

    return run_cli(show)


def console_main():
    sys.exit(main())


if __name__ == "__main__":
    sys.exit(main())
