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

#: results file -> (title, part of the page, what was measured and how)
SECTIONS = {
    "s3_four.jsonl": ("The paper's four datasets", "current",
                      "GenNiSASRec's recipe (SSM over 256 negatives drawn with replacement from the model's softmax "
                      "over the whole catalogue), its full-softmax twin and the other cells of "
                      "`benchmarks/suites/s3_four.yaml`. Every earlier item of the user is ranked last, except the "
                      "row's own target (RecBole's rule: a positive is never masked). That matters on Yelp only, "
                      "where sequences repeat items: 2,027 of its 30,431 test targets (6.7%) and 1,640 valid targets "
                      "occur earlier in the user's sequence; `neg_exclude: target` likewise excludes only the "
                      "position's own target from its negatives. The published figures beside the tables come from "
                      "the S3-Rec / ICLRec / ELECRec / BSARec code, which 'masks' the history by setting its scores "
                      "to 0, not minus infinity: an earlier item still outranks every item with a negative score, and "
                      "a repeated target is scored 0 too. On Yelp, patience 10 stopped the paper's setting with GenNi "
                      "at an early peak; `bce-genni-patience30` trains it with patience 30. *train s / epoch* is each "
                      "run's own, at the commit it ran and beside one other single-thread run; the cost of a step at "
                      "the current code, both cells timed turn by turn in one process, is in [the cost section]"
                      "(#gennisasrec-on-the-papers-four-datasets-the-cost-of-a-training-step-the-recipe-and-its-"
                      "full-softmax-twin)."),
    "s3_four_reevaluated.jsonl": ("The paper's four datasets under the published code's rule for earlier items",
                                  "current",
                                  "The best checkpoints of the recipe and of its full-softmax twin evaluated again "
                                  "(`benchmarks/reevaluate.py`) under three rules for the user's earlier items: "
                                  "RecBole's sequential evaluation (unmasked), the package's (masked: ranked last) "
                                  "and the S3-Rec / ICLRec / ELECRec / BSARec code's, under which the published "
                                  "figures were measured (zeroed: their scores set to 0, a repeated target's too). "
                                  "Where the zeroed rule changes nothing, every target in a top 20 scores above 0. "
                                  "On Yelp 6.7% of the test targets are repeats, scored 0 among the other zeros, and "
                                  "the history's zeros outrank every target scored below 0 (softmax-trained scores "
                                  "have no fixed zero: adding a constant to all of them changes no training step)."),
    "s3_tune.jsonl": ("Tuning the recipe", "current",
                      "The s3_four recipe with one knob changed at a time (`benchmarks/suites/s3_tune.yaml`): "
                      "GenNi's temperature and K, and the knobs the papers tune (hidden size, layers, heads, "
                      "learning rate, dropout, maximum length), one seed each, chosen on valid NDCG@10; beside them "
                      "the untuned recipe and its full-softmax twin over their s3_four seeds (the twin of every "
                      "setting that changes GenNi's temperature or K only). The best of the first twelve on valid "
                      "NDCG@10, hidden 128 with learning rate 0.0005, then ran over three seeds, and so did its "
                      "full-softmax twin (`ce-hidden128-lr0.0005`, the same encoder and steps). A third layer on top "
                      "of it raised valid NDCG@10 again (`recipe-hidden128-lr0.0005-layers3`, the best of all "
                      "settings), and it too ran over three seeds beside its twin. On Sports and Toys that setting and "
                      "its twin ran as chosen on Beauty, three seeds each, with no search of their own."),
    "amazon_six.jsonl": ("A catalogue of 119,481 items: Amazon2014-Six", "current",
                         "Six Amazon-2014 categories in one catalogue (185,815 users, 1,743,192 interactions), each "
                         "user inside one category, so that most uniform negatives come from another category. The "
                         "same encoder in every cell (GenNiSASRec: hidden 64, 2 layers, the last 50 items, every "
                         "position trained, batches of 256 users bucketed by length) and the protocol of the four "
                         "datasets (`benchmarks/suites/amazon_six.yaml`): full-softmax CE, sampled softmax over K "
                         "uniform negatives, GenNi from a pool of M uniform candidates scored by the model (K = 256 "
                         "drawn from its softmax over the pool), the exact recipe (K = 256 from the whole catalogue) "
                         "and gBCE over 256 uniform negatives. The same cells on Beauty (12,101 items) give the edge "
                         "over uniform negatives on a catalogue ten times smaller. *train s / epoch* is each run's "
                         "own beside one other single-thread run; the cost of a step, all cells timed turn by turn "
                         "in one process, is in [the cost section](#a-catalogue-of-119481-items-the-cost-of-a-"
                         "training-step)."),
    "amazon_six_negatives.jsonl": ("A catalogue of 119,481 items: how hard each sampler's negatives are", "current",
                                   "`benchmarks/negatives.py`: one trained model's state, from which every sampler "
                                   "draws the negatives of the same 1,024 training positions: their mean rank among "
                                   "all items under that model (0 its top item, 0.5 a uniform item's), their share "
                                   "among its 1,000 best, and their share in the category of the position's target "
                                   "(Amazon2014-Six's categories: a user's items all lie in one)."),
    "amazon_six_reevaluated.jsonl": ("A catalogue of 119,481 items, per category", "current",
                                     "The best checkpoints of the cells evaluated again (`benchmarks/reevaluate.py "
                                     "--groups`), each test user in the category of their test item."),
    "models_beauty.jsonl": ("RecBole's own models on Beauty, four ways each", "current",
                            "Six built-in models (`benchmarks/suites/models_beauty.yaml`), each trained with RecBole's"
                            " default (BPR, one uniform negative), full-softmax CE, and sampled softmax over 256 "
                            "uniform or 256 GenNi negatives (drawn from the model's softmax over the whole catalogue, "
                            "scored from the loss's own pass). RecBole's models train on prefix rows (513 steps an "
                            "epoch here), too slow on one CPU thread to reach early stopping: every cell had the same "
                            "training-time budget, 480 s of training and validation (`train_time_budget`, the epoch "
                            "under way finishes), and was tested at its best valid epoch; *epochs* says how far each "
                            "got. Every earlier item of the user is ranked last. SASRec and GRU4Rec have two seeds. "
                            "The budget is checked after each validation, so a few seconds decide an epoch: SASRec's "
                            "GenNi cell of seed 2021 stopped after 2 epochs (482 s at the check) where the others had "
                            "3. GRU4Rec's and NARM's first three cells of seed 2020 shared the CPU with other work "
                            "for part of their budget (epochs of 118 to 131 s, against 103 to 113 s for their GenNi "
                            "cells). Compare at equal epochs (the second table) for the quality of an epoch."),
    "defaults.jsonl": ("GenNiSASRec with its defaults, against RecBole's SASRec with CE", "current",
                       "`--model=GenNiSASRec` with no other keys, as a new user runs it, beside RecBole's SASRec with "
                       "full-softmax CE (`--neg_sampler=none`, RecBole's defaults otherwise), the paper's setting, "
                       "the defaults with another window stride, and with the last 50 items of each sequence only at "
                       "batch sizes of 256 to 32 users (`benchmarks/suites/defaults.yaml`): early stopping on "
                       "valid NDCG@10 (patience 10), every earlier item of the user ranked last. *train min*: the "
                       "training time to the end of the run (patience included), validation excluded."),
    "models_beauty_cost.jsonl": ("RecBole's models on Beauty, the cost of a training step per loss", "cost",
                                 "`benchmarks/step_cost.py`: the cells of one model built in one process and "
                                 "timed turn by turn, one step each (collate, forward with the negatives drawn in "
                                 "the loss, backward, Adam), so a machine's load weighs on all alike; mean over "
                                 "the timed steps after one warm-up, and the ratio to the first cell."),
    "s3_four_cost.jsonl": ("GenNiSASRec on the paper's four datasets, the cost of a training step: the recipe "
                           "and its full-softmax twin", "cost",
                           "`benchmarks/step_cost.py` on each dataset of `benchmarks/suites/s3_four.yaml` "
                           "(`--dataset`): both cells built in one process and timed turn by turn on batches of 256 "
                           "users bucketed by length, mean over the timed steps after one warm-up, beside two other "
                           "single-thread jobs (the load average). Both compute the [positions, |I|] product; the "
                           "recipe then draws from it and back-propagates through its K + 1 columns a row only (a "
                           "sparse gradient), where the twin's softmax back-propagates through all |I|. Earlier "
                           "commits, kept for the record: a dense gradient (d6e4f6d), and on Sports and Yelp, where "
                           "K x hidden < |I|, the negatives scored again from their gathered embeddings (da0a712)."),
    "amazon_six_cost.jsonl": ("A catalogue of 119,481 items: the cost of a training step", "cost",
                              "`benchmarks/step_cost.py` on `benchmarks/suites/amazon_six.yaml`: the cells built in "
                              "one process and timed turn by turn, one step each, so that the machine's load weighs "
                              "on all alike; mean over the timed steps after one warm-up (the first batches, of "
                              "mixed lengths), the ratio to the first cell, and each step's peak resident memory "
                              "above what was held before it. Two processes, for memory: CE, the exact recipe and "
                              "GenNi from a pool of 8,192; then that GenNi cell again with the others, so its two "
                              "timings link the ratios."),
    "scale.jsonl": ("GenNiSASRec's training step against catalogue size", "cost",
                    "Synthetic catalogues of 10^4 to 10^6 items (`benchmarks/suites/scale.yaml`): batch 256 users x "
                    "up to 50 positions, hidden 64, median of the timed steps after one warm-up. *baseline*: model, "
                    "gradients, Adam state and data before the step; *negatives + loss*: the peak above the baseline "
                    "while the encoder runs, the negatives are generated and the loss is computed (what the sampler "
                    "costs); *step peak*: the whole step's peak, backward and Adam included (both make "
                    "item-table-sized temporaries whatever the sampler: the table's gradient is dense)."),
    "sampler_cost.jsonl": ("The cost of each sampler per training step", "cost",
                           "RecBole's SASRec on ml-100k, one process, the same batches for every sampler: collate "
                           "(with sampling), forward, backward and Adam, mean over the timed steps after one warm-up."),
    "beauty_cpu_masked.jsonl": ("Beauty, GenNiSASRec and RecBole's SASRec", "earlier",
                                "History masked over the row's input sequence only (up to 50 items)."),
    "toys_cpu_masked.jsonl": ("Toys, the exclusion", "earlier",
                              "History masked over the row's input sequence only."),
    "beauty_cpu_reevaluated.jsonl": ("Beauty, checkpoints evaluated with and without the history mask", "earlier",
                                     "The same weights under RecBole's sequential evaluation (unmasked) and with the "
                                     "row's input sequence masked (`benchmarks/reevaluate.py`)."),
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
    which checkpoint a killed run resumed from, and with the runner's current name (``run_grid.py`` took the same
    arguments), one per command that differs in ``--seed`` only; an earlier protocol's are left to the records
    (their suite files are gone)."""
    if SECTIONS[name][1] == "earlier":
        return "Each record holds the exact command it ran."
    seeds = {}
    for r in records:
        words, kept, seed = r.get("command", "?").split(" "), [], None
        for word in words:
            word = word[word.index("benchmarks/"):] if "/benchmarks/" in word else word  # another checkout's path
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
    return lines + ["", f"![scale]({_image(name).relative_to(OUTPUT.parent)})", "", _commands(name, records), ""]


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
        ("device", "---", lambda r: r["device"]),
        ("load average", "---:", lambda r: f"{r['load_average']:.1f}" if "load_average" in r else "-"),
        ("commit", "---", lambda r: r["commit"][:7])])


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


def edge_over_uniform(records: list, reference: str = "ssm-uniform-k256") -> str:
    """Per dataset, each other cell's test NDCG@10 over the ``reference`` cell's (means over seeds): does the
    edge grow with the catalogue?"""
    sentences = []
    for dataset in sorted({r["dataset"] for r in records}):
        rows = [r for r in records if r["dataset"] == dataset]
        base = [r for r in rows if r["name"] == reference]
        if not base:
            continue
        base_ndcg = _mean(base, lambda r: r["test"]["ndcg@10"])
        edges = []
        for cell in sorted({r["name"] for r in rows} - {reference}):
            ndcg = _mean([r for r in rows if r["name"] == cell], lambda r: r["test"]["ndcg@10"])
            edges.append(f"`{cell}` {ndcg / base_ndcg - 1:+.1%}")
        sentences.append(f"on {dataset}, " + ", ".join(edges))
    return (f"Test NDCG@10 against `{reference}`: " + "; ".join(sentences) + ".") if sentences else ""


def amazon_six_section(name: str, records: list) -> list:
    """The cells' tables, then the best valid NDCG@10 within equal training-time budgets, and its curve."""
    *lines, commands, _ = cells_section(name, records, with_anchors=False)
    lines = [line for line in lines if not line.startswith("![")]  # the time plot replaces the per-epoch one
    for dataset in sorted({r["dataset"] for r in records}):
        lines += [f"Best valid NDCG@10 within a training-time budget, **{dataset}** (mean over seeds; training "
                  "seconds as each run measured them beside one other single-thread run):", "",
                  *budget_table([r for r in records if r["dataset"] == dataset]), ""]
    return lines + [f"![valid NDCG@10 against training time]({_image(name).relative_to(OUTPUT.parent)})", "",
                    commands, ""]


def negatives_section(name: str, records: list) -> list:
    return record_table(name, records, [
        ("model (its cell, epoch, valid NDCG@10)", "---", lambda r: f"{r['checkpoint_cell']}, epoch "
         f"{r['checkpoint_epoch'] + 1}, {r['checkpoint_valid_score']:.4f}"),
        ("sampler (cell)", "---", lambda r: r["name"]),
        ("mean rank", "---:", lambda r: f"{r['mean_rank']:.4f}"),
        ("top-1000 share", "---:", lambda r: f"{r['top1000_share']:.4f}"),
        ("own-category share", "---:", lambda r: f"{r['own_group_share']:.4f}" if "own_group_share" in r else "-"),
        ("positions", "---:", lambda r: f"{r['positions']:,}")])


def by_group_section(name: str, records: list) -> list:
    """One row per checkpoint: test HR@10 / NDCG@10 per group of users, masked rule."""
    groups = list(dict.fromkeys(g for r in records for g in r["masked"].get("by_group", {})))
    lines = ["| cell | all | " + " | ".join(groups) + " |", "|---|---:|" + "---:|" * len(groups)]
    for r in records:
        by_group = r["masked"].get("by_group", {})
        values = [f"{by_group[g]['hit@10']:.4f} / {by_group[g]['ndcg@10']:.4f}" if g in by_group else "-"
                  for g in groups]
        lines.append(f"| {r['cell']} | {r['masked']['hit@10']:.4f} / {r['masked']['ndcg@10']:.4f} | "
                     + " | ".join(values) + " |")
    users = {g: next(r["masked"]["by_group"][g]["users"] for r in records if g in r["masked"].get("by_group", {}))
             for g in groups}
    return lines + ["", "Each cell: test HR@10 / NDCG@10, every earlier item ranked last. Test users per category: "
                    + ", ".join(f"{g} {n:,}" for g, n in users.items()) + ".", "", _commands(name, records), ""]


#: results file -> a sentence computed from its records, after the section's text
SUMMARIES = {"s3_four.jsonl": negatives_gain, "s3_four_reevaluated.jsonl": zeroed_change,
             "amazon_six.jsonl": edge_over_uniform}

RENDERERS = {"scale.jsonl": scale_section, "defaults.jsonl": defaults_section,
             "sampler_cost.jsonl": sampler_cost_section, "models_beauty_cost.jsonl": step_cost_section,
             "s3_four_cost.jsonl": step_cost_section, "s3_tune.jsonl": tune_section,
             "models_beauty.jsonl": models_section, "beauty_cpu_reevaluated.jsonl": reevaluated_section,
             "s3_four_reevaluated.jsonl": reevaluated_section, "amazon_six.jsonl": amazon_six_section,
             "amazon_six_cost.jsonl": step_cost_section, "amazon_six_negatives.jsonl": negatives_section,
             "amazon_six_reevaluated.jsonl": by_group_section}


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
        raise SystemExit(f"{', '.join(unknown)}: results file(s) without a section in benchmarks/report.py")
    parts = ["# Benchmarks", "",
             "Generated by `python benchmarks/report.py` from `benchmarks/results/*.jsonl`; do not edit by hand. "
             "Test metrics are at the best valid NDCG@10 epoch, mean ± std over seeds. Each record holds its command, "
             "device and, for newer runs, the package commit and the cell's config.", ""]
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
            elif RENDERERS.get(name, cells_section) in (cells_section, models_section, tune_section) \
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
