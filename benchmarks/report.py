"""Regenerate ``docs/benchmarks.md`` and its plots from the committed results (``benchmarks/results/*.jsonl``).

    python benchmarks/report.py           # rewrite docs/benchmarks.md and docs/img/*.png
    python benchmarks/report.py --check   # exit 1 if docs/benchmarks.md is not what the results give

One section per results file: accuracy under the current protocol first, then cost and scale, then the earlier
protocols. Accuracy tables have mean +- std over seeds per cell and dataset, with the published figures beside
them where the dataset has some, and a plot of valid NDCG@10 per epoch. The output depends on the records alone,
so running it twice changes nothing.
"""

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUTPUT = ROOT / "docs" / "benchmarks.md"
IMAGES = OUTPUT.parent / "img"

BCE_UNIFORM = "SASRec, BCE, 1 uniform negative (S3-Rec)"
FULL_SOFTMAX = "SASRec, full softmax (SASRec+)"
#: published test HR@10 / NDCG@10 under the same protocol (leave-one-out, full ranking, history masked)
ANCHORS = {
    "Beauty": [(BCE_UNIFORM, 0.0605, 0.0318), (FULL_SOFTMAX, 0.0935, 0.0567), ("ELECRec", 0.0968, 0.0591),
               ("BSARec (released log, seed 42)", 0.1008, 0.0611)],
    "Sports_and_Outdoors": [(BCE_UNIFORM, 0.0350, 0.0192), (FULL_SOFTMAX, 0.0536, 0.0311),
                            ("ELECRec", 0.0548, 0.0322)],
    "Toys_and_Games": [(BCE_UNIFORM, 0.0675, 0.0374), (FULL_SOFTMAX, 0.0989, 0.0627), ("ELECRec", 0.0997, 0.0634)],
    "Yelp": [(BCE_UNIFORM, 0.0274, 0.0136), (FULL_SOFTMAX, 0.0409, 0.0209), ("ELECRec", 0.0593, 0.0270)],
}

PROSE = ROOT / "benchmarks" / "report_sections.md"


def read_prose(path: Path = PROSE):
    """``(introduction, {results file: (title, part of the page, what was measured and how)})`` from the page's
    prose file: sections headed ``## <file> | <part> | <title>``, each paragraph's lines joined with spaces."""
    text = re.sub(r"<!--.*?-->", "", path.read_text(), flags=re.S)
    intro, *blocks = re.split(r"^## ", text, flags=re.M)
    sections = {}
    for block in blocks:
        head, _, body = block.partition("\n")
        name, part, title = (field.strip() for field in head.split("|", 2))
        sections[name] = (title, part, " ".join(body.split()))
    return " ".join(intro.split()), sections


INTRO, SECTIONS = read_prose()
PARTS = [("current", "## Accuracy"), ("cost", "## Cost and scale"), ("earlier", "## Earlier protocols")]

COLUMNS = [("HR@10", lambda r: r["test"]["hit@10"]), ("NDCG@10", lambda r: r["test"]["ndcg@10"]),
           ("HR@20", lambda r: r["test"]["hit@20"]), ("NDCG@20", lambda r: r["test"]["ndcg@20"]),
           ("valid NDCG@10", lambda r: (r.get("best_valid") or {}).get("ndcg@10"))]
PLOTTED_CELLS = 10  # per dataset, the cells with the best mean test NDCG@10


def read(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mean_std(values, digits=4) -> str:
    """``mean ± std`` of the values that are not None (``-`` if none; no std for one value)."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    text = f"{statistics.fmean(values):.{digits}f}"
    return text + (f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else "")


def _commands(name: str, records) -> str:
    """The commands that made the records as a user would run them today: without where each wrote its file or
    which checkpoint a killed run resumed from, a checkpoint read from another folder as RecBole's ``saved/`` holds
    it, and with the runner's current name (``run_grid.py`` took the same arguments), one per command that differs
    in ``--seed`` only; an earlier protocol's are left to the records
    (their suite files are gone)."""
    if SECTIONS[name][1] == "earlier":
        return "Each record holds the exact command it ran."
    seeds = {}
    for r in records:
        words, kept, seed = r.get("command", "?").split(" "), [], None
        for word in words:
            word = word[word.index("benchmarks/"):] if "/benchmarks/" in word else word  # another checkout's path
            word = f"saved/{Path(word).name}" if word.startswith("/") and word.endswith(".pth") else word
            if kept and (kept[-1] == "--out" or (kept[-1] == "--set" and word.startswith(
                    ("resume_checkpoint=", "checkpoint_dir=")))):
                kept.pop()
            elif kept and kept[-1] == "--seed":
                kept.pop()
                seed = word
            else:
                kept.append(word)
        command = " ".join(kept).replace("benchmarks/run_grid.py", "benchmarks/run_suite.py")
        seeds.setdefault(command, set()).add(seed)
    shown = []
    for command, values in sorted(seeds.items()):
        if None in values:
            shown.append(f"`{command}`")
        given = sorted((v for v in values if v is not None), key=int)
        if len(given) == 1:
            shown.append(f"`{command} --seed {given[0]}`")
        elif given:
            shown.append(f"`{command} --seed <seed>` (seeds {', '.join(given)})")
    return "Commands: " + "; ".join(shown) + "."


def cell_table(rows: list, anchors=()) -> list:
    """Markdown rows: one per cell name (mean ± std over its seeds), after the published ``anchors``."""
    lines = ["| cell | seeds | " + " | ".join(c for c, _ in COLUMNS) + " | epochs | train s / epoch | device |",
             "|---" * (len(COLUMNS) + 5) + "|"]
    for label, hr, ndcg in anchors:
        lines.append(f"| *published: {label}* | | *{hr:.4f}* | *{ndcg:.4f}* |" + " |" * (len(COLUMNS) + 1))
    for cell in sorted({r["name"] for r in rows}):
        runs = sorted((r for r in rows if r["name"] == cell), key=lambda r: r["seed"])
        seeds = ", ".join(str(r["seed"]) for r in runs)
        metrics = " | ".join(mean_std([get(r) for r in runs]) for _, get in COLUMNS)
        counts = [r["epochs"] for r in runs]
        epochs = mean_std(counts, 0 if statistics.fmean(counts).is_integer() else 1)  # 2 and 3: 2.5, not 2
        seconds = mean_std([r["train_seconds_per_epoch"] for r in runs], 1)
        devices = " / ".join(sorted({r["device"] for r in runs}))  # a cell's seeds may run on different ones
        lines.append(f"| {cell} | {seeds} | {metrics} | {epochs} | {seconds} | {devices} |")
    return lines


def cells_section(name: str, records: list, with_anchors=True) -> list:
    lines = []
    for dataset in sorted({r["dataset"] for r in records}):
        anchors = ANCHORS.get(dataset, []) if SECTIONS[name][1] == "current" and with_anchors else []
        lines += [f"**{dataset}**", "", *cell_table([r for r in records if r["dataset"] == dataset], anchors), ""]
    if any(r.get("history") for r in records):
        lines += [f"![valid NDCG@10 per epoch]({_image(name).relative_to(OUTPUT.parent)})", ""]
    return lines + [_commands(name, records), ""]


def tune_section(name: str, records: list) -> list:
    """The tuning cells beside the untuned recipe and its full-softmax twin (all their s3_four seeds) on the datasets
    tuned so far: GenNi's own knobs (temperature, K) leave the encoder as it is, so that twin is theirs too."""
    datasets = {r["dataset"] for r in records}
    labels = {"recipe": "recipe (untuned, s3_four)", "ce": "ce (full-softmax twin, s3_four)"}
    untuned = [{**r, "name": labels[r["name"]]} for r in read(RESULTS / "s3_four.jsonl")
               if r["name"] in labels and r["dataset"] in datasets]
    return cells_section(name, untuned + records)


#: the scale table's cells, all catalogues
SCALE_COMMAND = "python benchmarks/scale.py benchmarks/suites/scale.yaml"


def scale_section(name: str, records: list) -> list:
    lines = ["| items | sampler | s / step | baseline MB | negatives + loss MB | step peak MB | device | memory "
             "| date |",
             "|---:|---|---:|---:|---:|---:|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["catalogue"], r["sampler"], r["date"])):
        if r["oom"]:
            limit = f" (> {r['memory_limit_gb']:g} GiB limit)" if r["device"].startswith("CPU") else ""
            lines.append(f"| {r['catalogue']:,} | {r['sampler']} | - | - | out of memory{limit} | - | "
                         f"{r['device']} | | {r['date']} |")
        else:
            lines.append(f"| {r['catalogue']:,} | {r['sampler']} | {r['seconds_per_step']:.3f} | "
                         f"{r['baseline_mb']:,.0f} | {r['forward_mb']:,.0f} | {r['peak_mb']:,.0f} | {r['device']} | "
                         f"{r['memory_kind']} | {r['date']} |")
    # the records were run before the cells moved into the suite file (``scale.py --samplers``); they keep that form
    return lines + ["", f"![scale]({_image(name).relative_to(OUTPUT.parent)})", "",
                    f"Command: `{SCALE_COMMAND}` (`--only <cell>` for one row's cell; each record keeps the command "
                    "it ran).", ""]


def record_table(name: str, records: list, columns) -> list:
    """One row per record: ``columns`` are ``(header, alignment row cell, cell(record) -> str)``; then the
    commands."""
    lines = ["| " + " | ".join(h for h, _, _ in columns) + " |", "|" + "|".join(a for _, a, _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(r) for _, _, cell in columns) + " |" for r in records]
    return lines + ["", _commands(name, records), ""]


def sampler_cost_section(name: str, records: list) -> list:
    return record_table(name, records, [
        ("sampler", "---", lambda r: r["sampler"]), ("s / batch", "---:", lambda r: f"{r['seconds_per_batch']:.3f}"),
        ("s / epoch (projected)", "---:", lambda r: f"{r['seconds_per_epoch']:.1f}"),
        ("batches timed", "---:", lambda r: f"{r['batches']}"), ("batch size", "---:", lambda r: f"{r['batch_size']}"),
        ("device", "---", lambda r: r["device"])])


def reevaluated_section(name: str, records: list) -> list:
    """One row per checkpoint: test HR@10 / NDCG@10 (valid NDCG@10) under each rule its records have."""
    rules = [rule for rule in ("unmasked", "masked", "zeroed") if any(rule in r for r in records)]
    lines = ["| checkpoint | cell | " + " | ".join(rules) + " |", "|---|---|" + "---|" * len(rules)]
    for r in records:
        values = " | ".join(f"{r[rule]['hit@10']:.4f} / {r[rule]['ndcg@10']:.4f} ({r[rule]['valid ndcg@10']:.4f})"
                            if rule in r else "-" for rule in rules)
        lines.append(f"| {Path(r['file']).name} | {r['cell']} | {values} |")
    return lines + ["", "Each rule: test HR@10 / NDCG@10 (valid NDCG@10).", "", _commands(name, records), ""]


def equal_epochs_table(records: list) -> list:
    """Markdown rows: per model, each sampler's valid NDCG@10 after the number of epochs every cell of the model
    reached (cells trained for a time budget reach different epochs; this compares them per epoch instead)."""
    models = sorted({r["model"] for r in records})
    samplers = list(dict.fromkeys(r["name"].split("/", 1)[1] for r in records))
    lines = ["| model | epochs | " + " | ".join(samplers) + " |", "|---|---:|" + "---:|" * len(samplers)]
    for model in models:
        rows = [r for r in records if r["model"] == model]
        epochs = min(len(r["history"]) for r in rows)
        values = []
        for sampler in samplers:
            scores = [r["history"][epochs - 1].get("valid_score") for r in rows if r["name"] == f"{model}/{sampler}"]
            values.append(mean_std(scores))
        lines.append(f"| {model} | {epochs} | " + " | ".join(values) + " |")
    return lines


def models_section(name: str, records: list) -> list:
    """The cells' table at the time budget, then valid NDCG@10 at equal epochs."""
    # no published anchors: they are converged SASRec variants, and these cells stop at a time budget
    *lines, commands, _ = cells_section(name, records, with_anchors=False)  # the commands line stays last
    return lines + ["Valid NDCG@10 at equal epochs (mean over seeds):", "", *equal_epochs_table(records), "",
                    commands, ""]


def defaults_section(name: str, records: list) -> list:
    """One row per run, by dataset: test metrics, how long it trained and how far."""
    def minutes(r):
        return f"{sum(h['train_seconds'] for h in r['history']) / 60:.1f}"

    def steps(r):
        return f"{sum(h.get('train_steps', 0) for h in r['history']):,}"

    ordered = sorted(records, key=lambda r: (r["dataset"], r["name"], r["seed"]))
    return record_table(name, ordered, [
        ("dataset", "---", lambda r: r["dataset"]), ("cell", "---", lambda r: r["name"]),
        ("model", "---", lambda r: r["model"]), ("seed", "---:", lambda r: f"{r['seed']}"),
        *[(c, "---:", lambda r, get=get: f"{get(r):.4f}") for c, get in COLUMNS],
        ("epochs (best)", "---:", lambda r: f"{r['epochs']} ({(r['best_epoch'] or 0) + 1})"),
        ("steps", "---:", steps), ("train min", "---:", minutes), ("device", "---", lambda r: r["device"])])


def step_cost_section(name: str, records: list) -> list:
    return record_table(name, records, [
        ("dataset", "---", lambda r: r.get("dataset", "-")), ("cell", "---", lambda r: r["name"]),
        ("s / step", "---:", lambda r: f"{r['seconds_per_step']:.4f}"),
        ("s / epoch (projected)", "---:", lambda r: f"{r['seconds_per_epoch']:.1f}"),
        ("x first cell", "---:", lambda r: f"{r['ratio']:.2f} ({r['reference']})"),
        ("steps timed", "---:", lambda r: f"{r['batches']}"),
        ("step peak MB", "---:", lambda r: f"{r['step_peak_memory_mb']:,.0f}" if r.get("step_peak_memory_mb")
         is not None else "-"),
        ("freed memory kept", "---", lambda r: "yes" if r.get("keep_freed_memory") else "no"),
        ("device", "---", lambda r: r["device"]),
        ("load average", "---:", lambda r: f"{r['load_average']:.1f}" if "load_average" in r else "-"),
        ("commit", "---", lambda r: r["commit"][:7])])


#: the per-model cost table's columns: sampler cell -> header
MODEL_COST_COLUMNS = {"bpr-uniform": "BPR, 1 uniform", "uniform-ssm": "SSM, 256 uniform",
                      "genni-pool-ssm": "SSM, 256 GenNi from a pool of 2,048", "genni-ssm": "SSM, 256 exact GenNi",
                      "ce": "full-softmax CE"}


def models_cost_section(name: str, records: list) -> list:
    """One row per model, one column per sampler: each cell's latest timing (s / epoch, projected from its steps)
    and its ratio to uniform SSM timed in the same process; then every record."""
    latest = {r["name"]: r for r in records}
    models = list(dict.fromkeys(cell.split("/")[0] for cell in latest))
    lines = ["One CPU thread, s / epoch (x uniform SSM's) from each cell's latest timing:", "",
             "| model | " + " | ".join(MODEL_COST_COLUMNS.values()) + " |", "|---|" + "---:|" * len(MODEL_COST_COLUMNS)]
    for model in models:
        cells = [latest.get(f"{model}/{sampler}") for sampler in MODEL_COST_COLUMNS]
        lines.append(f"| {model} | " + " | ".join(
            f"{r['seconds_per_epoch']:.0f} ({r['ratio']:.2f})" if r and r["reference"] == f"{model}/uniform-ssm"
            else f"{r['seconds_per_epoch']:.0f}" if r else "-" for r in cells) + " |")
    return lines + ["", "Every timing:", ""] + step_cost_section(name, records)


def _mean(rows: list, get) -> float:
    return statistics.fmean(get(r) for r in rows)


def negatives_gain(records: list) -> str:
    """GenNi's negatives against uniform ones in the paper's setting (BCE, one a position), per dataset: test
    NDCG@10 of the BCE GenNi cell with the best valid NDCG@10 (they differ in patience) over the uniform cell's."""
    gains = []
    for dataset in sorted({r["dataset"] for r in records}):
        rows = [r for r in records if r["dataset"] == dataset]
        uniform = [r for r in rows if r["name"] == "bce-uniform"]
        genni = {r["name"] for r in rows if r["name"].startswith("bce-genni")}
        if uniform and genni:
            best = max(sorted(genni), key=lambda n: _mean([r for r in rows if r["name"] == n],
                                                           lambda r: r["best_valid"]["ndcg@10"]))
            gain = _mean([r for r in rows if r["name"] == best], lambda r: r["test"]["ndcg@10"]) / _mean(
                uniform, lambda r: r["test"]["ndcg@10"]) - 1
            gains.append(f"{gain:+.0%} on {dataset} (`{best}`)")
    return ("In the paper's setting (BCE, one negative a position), GenNi's negatives against uniform ones "
            "(`bce-uniform`), test NDCG@10: " + ", ".join(gains) + ".") if gains else ""


def zeroed_change(records: list) -> str:
    """What the published code's rule for earlier items changes against the masked rule, per dataset: test HR@10 /
    NDCG@10, means over its checkpoints."""
    by_dataset = {}
    for r in records:
        if "zeroed" in r and "masked" in r:
            by_dataset.setdefault(r["dataset"], []).append(r)
    changes = [" / ".join(f"{_mean(rows, lambda r: r['zeroed'][m] / r['masked'][m]) - 1:+.0%}"
                          for m in ("hit@10", "ndcg@10")) + f" on {dataset}"
               for dataset, rows in sorted(by_dataset.items())]
    return ("The zeroed rule against the masked one, test HR@10 / NDCG@10: " + ", ".join(changes) + ".") \
        if changes else ""


#: cumulative training time budgets, in minutes, at which cells trained for different times are compared
BUDGETS = (30, 60, 120, 240, 480, 960)


def training_minutes(history: list) -> list:
    """Cumulative training minutes at the end of each epoch (validation excluded)."""
    total, out = 0.0, []
    for h in history:
        total += h["train_seconds"]
        out.append(total / 60)
    return out


def best_within(record: dict, minutes: float):
    """The best valid NDCG@10 of a run's epochs that ended within ``minutes`` of training; a run that stopped
    before (patience) keeps its best; None when its first validation came later."""
    scores = [h.get("valid_score") for h in record["history"]]
    reached = [v for v, m in zip(scores, training_minutes(record["history"])) if m <= minutes and v is not None]
    return max(reached) if reached else None


def budget_table(records: list) -> list:
    """Markdown rows: per cell, the best valid NDCG@10 reached within each training-time budget (mean over seeds;
    ``-`` before a cell's first validation)."""
    lines = ["| cell | seeds | " + " | ".join(f"{b} min" for b in BUDGETS) + " | trained min |",
             "|---|---|" + "---:|" * (len(BUDGETS) + 1)]
    for cell in sorted({r["name"] for r in records}):
        runs = sorted((r for r in records if r["name"] == cell), key=lambda r: r["seed"])
        values = []
        for budget in BUDGETS:
            best = [best_within(r, budget) for r in runs]
            values.append("-" if None in best else mean_std(best))
        trained = mean_std([training_minutes(r["history"])[-1] for r in runs], 0)
        lines.append(f"| {cell} | {', '.join(str(r['seed']) for r in runs)} | " + " | ".join(values)
                     + f" | {trained} |")
    return lines


#: s3_four.yaml cells that are amazon_six.yaml cells under another name (the same configuration): where a dataset
#: has no run of the amazon_six cell, the edge table takes the s3_four cell's runs on it
S3_FOUR_TWINS = {"recipe": "recipe", "ce": "ce", "ssm-uniform": "ssm-uniform-k256"}


def with_twins(records: list, twins: list) -> list:
    """``records`` plus the ``twins`` (s3_four records) renamed to their amazon_six cell, for (dataset, cell) pairs
    that ``records`` lacks."""
    have = {(r["dataset"], r["name"]) for r in records}
    renamed = [dict(r, name=S3_FOUR_TWINS[r["name"]]) for r in twins if r["name"] in S3_FOUR_TWINS]
    return records + [r for r in renamed if (r["dataset"], r["name"]) not in have]


def edge_table(records: list, reference: str = "ssm-uniform-k256") -> list:
    """One row per cell, one column per dataset (the smaller catalogue first): test NDCG@10 (seeds) and its change
    against the ``reference`` cell's mean. Does the edge grow with the catalogue?"""
    datasets = sorted({r["dataset"] for r in records}, key=lambda d: (d != "Beauty", d))

    def runs_of(dataset, cell):
        return [r for r in records if r["dataset"] == dataset and r["name"] == cell]

    def test_ndcg(runs):
        return _mean(runs, lambda r: r["test"]["ndcg@10"])

    base = {d: test_ndcg(runs_of(d, reference)) for d in datasets if runs_of(d, reference)}
    lines = ["| cell | " + " | ".join(datasets) + " |", "|---|" + "---:|" * len(datasets)]
    for cell in sorted({r["name"] for r in records}, key=lambda c: (c != reference, c)):
        values = []
        for dataset in datasets:
            runs = runs_of(dataset, cell)
            if not runs:
                values.append("-")
                continue
            ndcg = test_ndcg(runs)
            edge = f", {ndcg / base[dataset] - 1:+.1%}" if dataset in base and cell != reference else ""
            values.append(f"{ndcg:.4f} ({len(runs)}{edge})")
        lines.append(f"| {cell} | " + " | ".join(values) + " |")
    return lines


def amazon_six_section(name: str, records: list) -> list:
    """The cells' tables, then the best valid NDCG@10 within equal training-time budgets, and its curve."""
    *lines, commands, _ = cells_section(name, records, with_anchors=False)
    lines = [line for line in lines if not line.startswith("![")]  # the time plot replaces the per-epoch one
    twins = read(RESULTS / "s3_four.jsonl") if (RESULTS / "s3_four.jsonl").exists() else []
    lines += ["Test NDCG@10 (seeds, change against `ssm-uniform-k256`'s mean) per catalogue: does GenNi's edge over "
              "uniform negatives grow with the catalogue? Where `amazon_six.yaml` has no run of a cell on a dataset, "
              "the runs of its twin in `s3_four.yaml` (the same configuration: "
              + ", ".join(f"`{a}` for `{b}`" for a, b in S3_FOUR_TWINS.items()) + ") stand in:", "",
              *edge_table(with_twins(records, [r for r in twins if r["dataset"] in {x["dataset"] for x in records}])),
              ""]
    for dataset in sorted({r["dataset"] for r in records}):
        lines += [f"Best valid NDCG@10 within a training-time budget, **{dataset}** (mean over seeds; training "
                  "seconds as each run measured them beside one other single-thread run):", "",
                  *budget_table([r for r in records if r["dataset"] == dataset]), ""]
        grouped = cells_by_group([r for r in records if r["dataset"] == dataset])
        if grouped:
            lines += [f"Per category, **{dataset}** (the tested model of each run, mean over its seeds; a user's "
                      "category is their test item's; cells trained before the suite named its categories have no "
                      "row):", "", *group_table(grouped), ""]
    return lines + [f"![valid NDCG@10 against training time]({_image(name).relative_to(OUTPUT.parent)})", "",
                    commands, ""]


def negatives_section(name: str, records: list) -> list:
    return record_table(name, records, [
        ("model (dataset: its cell, epoch, valid NDCG@10)", "---", lambda r: f"{r['dataset']}: "
         f"{r['checkpoint_cell']}, epoch {r['checkpoint_epoch'] + 1}, {r['checkpoint_valid_score']:.4f}"),
        ("sampler (cell)", "---", lambda r: r["name"]),
        ("mean rank", "---:", lambda r: f"{r['mean_rank']:.4f}"),
        ("top-1000 share", "---:", lambda r: f"{r['top1000_share']:.4f}"),
        ("own-category share", "---:", lambda r: f"{r['own_group_share']:.4f}" if "own_group_share" in r else "-"),
        ("TV to the softmax", "---:", lambda r: f"{r['tv_to_softmax']:.4f}" if "tv_to_softmax" in r else "-"),
        ("positions", "---:", lambda r: f"{r['positions']:,}")])


def group_table(rows: list) -> list:
    """Markdown rows from ``(label, {hit@10, ndcg@10}, {group: {users, hit@10, ndcg@10}})``: test HR@10 / NDCG@10
    overall and per group of users, then a line with each group's number of test users."""
    groups = list(dict.fromkeys(g for _, _, by_group in rows for g in by_group))
    lines = ["| cell | all | " + " | ".join(groups) + " |", "|---|---:|" + "---:|" * len(groups)]
    for label, overall, by_group in rows:
        values = [f"{by_group[g]['hit@10']:.4f} / {by_group[g]['ndcg@10']:.4f}" if g in by_group else "-"
                  for g in groups]
        lines.append(f"| {label} | {overall['hit@10']:.4f} / {overall['ndcg@10']:.4f} | " + " | ".join(values) + " |")
    users = {g: next(by_group[g]["users"] for _, _, by_group in rows if g in by_group) for g in groups}
    return lines + ["", "Each cell: test HR@10 / NDCG@10, every earlier item ranked last. Test users per category: "
                    + ", ".join(f"{g} {n:,}" for g, n in users.items()) + "."]


def by_group_section(name: str, records: list) -> list:
    """One row per re-evaluated checkpoint: test HR@10 / NDCG@10 per group of users, masked rule."""
    rows = [(r["cell"], r["masked"], r["masked"].get("by_group", {})) for r in records]
    return group_table(rows) + ["", _commands(name, records), ""]


def cells_by_group(records: list) -> list:
    """:func:`group_table`'s rows of the records that have ``test_by_group``: one a cell, the mean over its seeds."""
    rows = []
    for cell in sorted({r["name"] for r in records if "test_by_group" in r}):
        runs = [r for r in records if r["name"] == cell and "test_by_group" in r]
        groups = list(runs[0]["test_by_group"])
        rows.append((f"{cell} ({len(runs)})", {m: _mean(runs, lambda r: r["test"][m]) for m in ("hit@10", "ndcg@10")},
                     {g: {"users": runs[0]["test_by_group"][g]["users"],
                          **{m: _mean(runs, lambda r: r["test_by_group"][g][m]) for m in ("hit@10", "ndcg@10")}}
                      for g in groups}))
    return rows


def loaded_section(name: str, records: list) -> list:
    """:func:`cells_section`'s tables and plot, the per-category rows of its records (:func:`cells_by_group`), then
    the commands."""
    *lines, commands, _ = cells_section(name, records)
    return lines + ["Per category (a user's category is their test item's):", "",
                    *group_table(cells_by_group(records)), "", commands, ""]


#: results file -> a sentence computed from its records, after the section's text
SUMMARIES = {"s3_four.jsonl": negatives_gain, "s3_four_reevaluated.jsonl": zeroed_change}

RENDERERS = {"scale.jsonl": scale_section, "defaults.jsonl": defaults_section,
             "sampler_cost.jsonl": sampler_cost_section, "models_beauty_cost.jsonl": models_cost_section,
             "s3_four_cost.jsonl": step_cost_section, "s3_tune.jsonl": tune_section,
             "models_beauty.jsonl": models_section, "beauty_cpu_reevaluated.jsonl": reevaluated_section,
             "s3_four_reevaluated.jsonl": reevaluated_section, "amazon_six.jsonl": amazon_six_section,
             "amazon_six_cost.jsonl": step_cost_section, "amazon_six_negatives.jsonl": negatives_section,
             "amazon_six_reevaluated.jsonl": by_group_section, "scale_k256_cost.jsonl": step_cost_section,
             "amazon_six_loaded.jsonl": loaded_section}


def section(name: str, records: list) -> str:
    title, _, about = SECTIONS[name]
    summary = SUMMARIES[name](records) if name in SUMMARIES else ""
    head = [f"### {title}", "", " ".join(filter(None, [about, summary, f"Results: `benchmarks/results/{name}`."])), ""]
    return "\n".join(head + RENDERERS.get(name, cells_section)(name, records))


def _image(name: str) -> Path:
    return IMAGES / f"{Path(name).stem}.png"


def plot_cells(records: list, path: Path):
    """Valid NDCG@10 per epoch, one panel per dataset, one line per cell (mean over its seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in records})
    fig, axes = plt.subplots(1, len(datasets), figsize=(6 * len(datasets), 4.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        rows = [r for r in records if r["dataset"] == dataset]
        names = {r["name"] for r in rows}
        best = {c: statistics.fmean(r["test"]["ndcg@10"] for r in rows if r["name"] == c) for c in names}
        for index, cell in enumerate(sorted(sorted(best, key=lambda c: (-best[c], c))[:PLOTTED_CELLS])):
            per_epoch = {}
            for h in (h for r in rows if r["name"] == cell for h in r.get("history", [])):
                if h.get("valid_score") is not None:
                    per_epoch.setdefault(h["epoch"], []).append(h["valid_score"])
            epochs = sorted(per_epoch)
            ax.plot(epochs, [statistics.fmean(per_epoch[e]) for e in epochs], color=f"C{index % 10}", label=cell)
        ax.set_title(dataset)
        ax.set_xlabel("epoch")
        ax.set_ylabel("valid NDCG@10")
        ax.legend(fontsize=6)
    _save(fig, path)


def plot_time(records: list, path: Path):
    """Valid NDCG@10 against cumulative training hours, one panel per dataset, one line per run (cell and seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"] for r in records})
    fig, axes = plt.subplots(1, len(datasets), figsize=(7 * len(datasets), 4.5), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        rows = sorted((r for r in records if r["dataset"] == dataset), key=lambda r: (r["name"], r["seed"]))
        cells = sorted({r["name"] for r in rows})
        for r in rows:
            points = [(m / 60, h["valid_score"]) for m, h in zip(training_minutes(r["history"]), r["history"])
                      if h.get("valid_score") is not None]
            ax.plot(*zip(*points), color=f"C{cells.index(r['name']) % 10}",
                    linestyle="-" if r["seed"] == min(x["seed"] for x in rows if x["name"] == r["name"]) else "--",
                    label=f"{r['name']} ({r['seed']})")
        ax.set_title(dataset)
        ax.set_xlabel("training hours (one CPU thread)")
        ax.set_ylabel("valid NDCG@10")
        ax.legend(fontsize=6)
    _save(fig, path)


def plot_scale(records: list, path: Path):
    """Step peak memory, the sampler's memory and seconds per step against the catalogue size (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    runs = sorted({(r["sampler"], r["device"], r["date"]) for r in records})
    for index, run in enumerate(runs):
        rs = sorted((r for r in records if (r["sampler"], r["device"], r["date"]) == run and not r["oom"]),
                    key=lambda r: r["catalogue"])
        repeated = sum(other[0] == run[0] for other in runs) > 1
        for ax, key in zip(axes, ("peak_mb", "forward_mb", "seconds_per_step")):
            ax.plot([r["catalogue"] for r in rs], [r[key] for r in rs], marker="o", color=f"C{index % 10}",
                    label=f"{run[0]} ({run[1]}, {run[2]})" if repeated else run[0])
    titles = ("step peak memory (MB)", "negatives + loss above the model (MB)", "seconds per training step")
    for ax, title in zip(axes, titles):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("catalogue size (items)")
        ax.set_title(title)
    axes[0].legend(fontsize=7)
    _save(fig, path)


def _save(fig, path: Path):
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Software": None})  # no version stamp: the same records give the same bytes
    plt.close(fig)


def render() -> str:
    files = sorted(p.name for p in RESULTS.glob("*.jsonl"))
    unknown = [f for f in files if f not in SECTIONS]
    if unknown:
        raise SystemExit(f"{', '.join(unknown)}: results file(s) without a section in {PROSE.relative_to(ROOT)}")
    parts = ["# Benchmarks", "", INTRO, ""]
    for part, heading in PARTS:
        names = [n for n in SECTIONS if SECTIONS[n][1] == part and n in files]
        if names:
            parts += [heading, ""] + [section(n, read(RESULTS / n)) for n in names]
    return "\n".join(parts).rstrip("\n") + "\n"


def plot_all():
    for name in SECTIONS:
        if (RESULTS / name).exists():
            records = read(RESULTS / name)
            if name == "scale.jsonl":
                plot_scale(records, _image(name))
            elif name == "amazon_six.jsonl":
                plot_time(records, _image(name))
            elif RENDERERS.get(name, cells_section) in (cells_section, models_section, tune_section, loaded_section) \
                    and any(r.get("history") for r in records):
                plot_cells(records, _image(name))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/benchmarks.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        missing = [p.name for p in map(_image, SECTIONS) if f"]({p.relative_to(OUTPUT.parent)})" in text
                   and not p.exists()]
        if current != text or missing:
            print(f"{OUTPUT} is out of date" + (f" (no {', '.join(missing)})" if missing else "")
                  + ": run python benchmarks/report.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    plot_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
