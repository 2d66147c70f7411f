"""Regenerate ``docs/benchmarks.md`` from the committed results (``benchmarks/results/*.jsonl``).

    python benchmarks/report.py           # rewrite docs/benchmarks.md
    python benchmarks/report.py --check   # exit 1 if it is not what the results give

One section per results file, current protocol first, then the earlier ones. Each table has mean +- std over seeds
per cell and dataset, with the published figures beside them where the dataset has some. The output depends on
the records alone, so running it twice changes nothing.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUTPUT = ROOT / "docs" / "benchmarks.md"

#: published test HR@10 / NDCG@10 under the same protocol (leave-one-out, full ranking, history masked)
ANCHORS = {
    "Beauty": [("SASRec, full softmax (SASRec+)", 0.0935, 0.0567), ("ELECRec", 0.0968, 0.0591),
               ("BSARec (released log, seed 42)", 0.1008, 0.0611)],
    "Sports_and_Outdoors": [("SASRec, full softmax (SASRec+)", 0.0536, 0.0311), ("ELECRec", 0.0548, 0.0322)],
    "Toys_and_Games": [("SASRec, full softmax (SASRec+)", 0.0989, 0.0627), ("ELECRec", 0.0997, 0.0634)],
    "Yelp": [("SASRec, full softmax (SASRec+)", 0.0409, 0.0209), ("ELECRec", 0.0593, 0.0270)],
}

#: results file -> (title, what was measured and how; "current" sections use today's evaluation)
SECTIONS = {
    "s3_four.jsonl": ("The paper's four datasets", "current",
                      "GenNiSASRec's recipe (SSM over 256 negatives drawn with replacement from the model's softmax "
                      "over the whole catalogue), its full-softmax twin and the other cells of "
                      "`benchmarks/suites/s3_four.yaml`. Every earlier item of the user is ranked last."),
    "beauty_cpu_masked.jsonl": ("Beauty, GenNiSASRec and RecBole's SASRec", "earlier",
                                "History masked over the row's input sequence only (up to 50 items)."),
    "toys_cpu_masked.jsonl": ("Toys, the exclusion", "earlier",
                              "History masked over the row's input sequence only."),
    "beauty_cpu_ssm.jsonl": ("Beauty, sampled softmax with per-row pools", "earlier",
                             "RecBole's sequential evaluation (no history mask)."),
    "beauty_cpu.jsonl": ("Beauty, a 30-epoch CPU budget", "earlier", "RecBole's sequential evaluation."),
    "beauty_h100.jsonl": ("Beauty on an H100, eight cells sharing the GPU", "earlier",
                          "RecBole's sequential evaluation. Cells sharing a start second shared checkpoint files."),
    "beauty_cpu_cost.jsonl": ("Beauty, the cost of one RecBole SASRec CE epoch", "earlier", "One epoch."),
    "beauty_h100_cost.jsonl": ("Beauty, epoch cost on an H100, one cell alone", "earlier", "Two epochs."),
    "ml100k.jsonl": ("ml-100k, RecBole models x samplers", "earlier", "RecBole's sequential evaluation, 3 epochs."),
    "ml100k_losses.jsonl": ("ml-100k, GenNiSASRec's losses", "earlier", "RecBole's sequential evaluation."),
}

COLUMNS = [("HR@10", lambda r: r["test"]["hit@10"]), ("NDCG@10", lambda r: r["test"]["ndcg@10"]),
           ("HR@20", lambda r: r["test"]["hit@20"]), ("NDCG@20", lambda r: r["test"]["ndcg@20"]),
           ("valid NDCG@10", lambda r: (r.get("best_valid") or {}).get("ndcg@10"))]


def read(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _mean_std(values, digits=4):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    text = f"{statistics.fmean(values):.{digits}f}"
    return text + (f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else "")


def section(name: str, records: list) -> str:
    title, protocol, about = SECTIONS[name]
    lines = [f"### {title}", "", f"{about} Results: `benchmarks/results/{name}`.", ""]
    for dataset in sorted({r["dataset"] for r in records}):
        rows = [r for r in records if r["dataset"] == dataset]
        lines += [f"**{dataset}**", "",
                  "| cell | seeds | " + " | ".join(c for c, _ in COLUMNS) + " | epochs | train s / epoch | device |",
                  "|---" * (len(COLUMNS) + 5) + "|"]
        if protocol == "current":
            for label, hr, ndcg in ANCHORS.get(dataset, []):
                lines.append(f"| *published: {label}* | | *{hr:.4f}* | *{ndcg:.4f}* |" + " |" * (len(COLUMNS) + 1))
        for cell in sorted({r["name"] for r in rows}):
            runs = sorted((r for r in rows if r["name"] == cell), key=lambda r: r["seed"])
            seeds = ", ".join(str(r["seed"]) for r in runs)
            metrics = " | ".join(_mean_std([get(r) for r in runs]) for _, get in COLUMNS)
            epochs = _mean_std([r["epochs"] for r in runs], 0)
            seconds = _mean_std([r["train_seconds_per_epoch"] for r in runs], 1)
            devices = " / ".join(sorted({r["device"] for r in runs}))
            lines.append(f"| {cell} | {seeds} | {metrics} | {epochs} | {seconds} | {devices} |")
        lines.append("")
    commands = sorted({r.get("command", "?") for r in records})
    lines += ["Commands: " + "; ".join(f"`{c}`" for c in commands) + ".", ""]
    return "\n".join(lines)


def render() -> str:
    files = sorted(p.name for p in RESULTS.glob("*.jsonl"))
    unknown = [f for f in files if f not in SECTIONS]
    if unknown:
        raise SystemExit(f"{', '.join(unknown)}: results file(s) without a section in benchmarks/report.py")
    parts = ["# Benchmarks", "",
             "Generated by `python benchmarks/report.py` from `benchmarks/results/*.jsonl`; do not edit by hand. "
             "Test metrics are at the best valid NDCG@10 epoch, mean ± std over seeds. Each record holds its command, "
             "device and, for newer runs, the package commit and the cell's config.", ""]
    for protocol, heading in (("current", "## Current protocol"), ("earlier", "## Earlier protocols")):
        names = [n for n in SECTIONS if SECTIONS[n][1] == protocol and n in files]
        if names:
            parts += [heading, ""] + [section(n, read(RESULTS / n)) for n in names]
    return "\n".join(parts).rstrip("\n") + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/benchmarks.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run python benchmarks/report.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
