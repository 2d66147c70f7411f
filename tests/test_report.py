"""docs/benchmarks.md is what the committed results give, byte for byte, and every results file has a section."""

import pytest

from benchmarks import report


def test_page_is_up_to_date():
    assert report.render() == report.render()
    assert report.main(["--check"]) == 0, "run python benchmarks/report.py and commit docs/benchmarks.md"


def test_results_without_section_refused(tmp_path, monkeypatch):
    (tmp_path / "new.jsonl").write_text("")
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    with pytest.raises(SystemExit, match="new.jsonl: results file"):
        report.render()


def test_prose_file_sections(tmp_path):
    prose = tmp_path / "sections.md"
    prose.write_text("<!-- how to write it -->\n\nThe page,\nintroduced.\n\n"
                     "## a.jsonl | current | First | title\n\nWhat was\nmeasured.\n\n"
                     "## b.jsonl | cost | Second\n\nHow.\n")
    intro, sections = report.read_prose(prose)
    assert intro == "The page, introduced."
    assert sections == {"a.jsonl": ("First | title", "current", "What was measured."),
                        "b.jsonl": ("Second", "cost", "How.")}


def test_row_names_every_device():
    def record(seed, device):
        return {"dataset": "tiny", "name": "cell", "seed": seed, "device": device, "epochs": 3,
                "test": {m: 0.1 for m in ("hit@10", "ndcg@10", "hit@20", "ndcg@20")}, "best_valid": {"ndcg@10": 0.1},
                "train_seconds_per_epoch": 1.0}

    records = [record(1, "CPU (2 threads)"), record(2, "CPU (1 threads)"), record(3, "CPU (1 threads)")]
    rows = [line for line in report.cell_table(records) if line.startswith("| cell | 1")]
    assert len(rows) == 1 and rows[0].startswith("| cell | 1, 2, 3 | 0.1000 ± 0.0000 |")
    assert rows[0].endswith("| CPU (1 threads) / CPU (2 threads) |")


def test_check_fails_on_missing_plot(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "IMAGES", tmp_path / "img")
    monkeypatch.setattr(report, "OUTPUT", tmp_path / "benchmarks.md")
    report.OUTPUT.write_text(report.render())
    assert report.main(["--check"]) == 1


def test_commands_leave_out_paths():
    renamed = "python benchmarks/run_grid.py s.yaml --only recipe"
    assert report._commands("s3_four.jsonl", [{"command": renamed}]) == (
        "Commands: `python benchmarks/run_suite.py s.yaml --only recipe`.")
    command = "python benchmarks/run_suite.py s.yaml --out /x/a.jsonl --set resume_checkpoint=/x/m.pth --set epochs=2"
    assert report._commands("s3_four.jsonl", [{"command": command}]) == (
        "Commands: `python benchmarks/run_suite.py s.yaml --set epochs=2`.")
    read = "python benchmarks/negatives.py /root/ckpt/M-1.pth s.yaml --only recipe"
    assert report._commands("s3_four.jsonl", [{"command": read}]) == (
        "Commands: `python benchmarks/negatives.py saved/M-1.pth s.yaml --only recipe`.")


def test_budget_cells_at_equal_epochs():
    def record(name, scores, seed=1):
        return {"model": name.split("/")[0], "name": name, "seed": seed,
                "history": [{"epoch": i, "valid_score": v} for i, v in enumerate(scores)]}

    rows = report.equal_epochs_table([
        record("GRU4Rec/ce", [0.1, 0.2, 0.3, 0.4]), record("GRU4Rec/genni", [0.1, 0.25, 0.35]),
        record("GRU4Rec/genni", [0.1, 0.15, 0.25, 0.5], seed=2), record("STAMP/ce", [0.2]),
        record("STAMP/genni", [0.3, 0.4]),
    ])
    assert rows[0] == "| model | epochs | ce | genni |"
    assert rows[2:] == ["| GRU4Rec | 3 | 0.3000 | 0.3000 ± 0.0707 |", "| STAMP | 1 | 0.2000 | 0.3000 |"]


def test_tuning_table(
        tmp_path, monkeypatch):
    import json

    def record(name, dataset, seed, ndcg):
        return {"dataset": dataset, "name": name, "seed": seed, "device": "CPU (1 threads)", "epochs": 3,
                "test": {m: ndcg for m in ("hit@10", "ndcg@10", "hit@20", "ndcg@20")},
                "best_valid": {"ndcg@10": ndcg}, "train_seconds_per_epoch": 1.0, "command": "python x.py"}

    untuned = [record("recipe", "Beauty", 1, 0.05), record("recipe", "Beauty", 2, 0.07),
               record("recipe", "Toys", 1, 0.09), record("ce", "Beauty", 1, 0.06)]
    (tmp_path / "s3_four.jsonl").write_text("".join(json.dumps(r) + "\n" for r in untuned))
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    lines = report.tune_section("s3_tune.jsonl", [record("recipe-tau2", "Beauty", 1, 0.08)])
    rows = [line for line in lines if line.startswith(("| recipe", "| ce "))]
    assert len(rows) == 3  # the other dataset's recipe left out
    assert rows[0].startswith("| ce (full-softmax twin, s3_four) | 1 | 0.0600 |")
    assert rows[1].startswith("| recipe (untuned, s3_four) | 1, 2 | 0.0600 ± 0.0141 |")
    assert rows[2].startswith("| recipe-tau2 | 1 | 0.0800 |")
    assert "**Toys**" not in lines


def _run(name, dataset, seed, test, valid):
    return {"dataset": dataset, "name": name, "seed": seed, "test": {"ndcg@10": test}, "best_valid": {"ndcg@10": valid}}


def test_negatives_gain():
    records = [_run("bce-uniform", "Yelp", 1, 0.04, 0.04), _run("bce-genni", "Yelp", 1, 0.01, 0.02),
               _run("bce-genni-patience30", "Yelp", 1, 0.05, 0.05), _run("bce-uniform", "Beauty", 1, 0.04, 0.04),
               _run("bce-genni", "Beauty", 1, 0.03, 0.03), _run("bce-genni", "Beauty", 2, 0.045, 0.03),
               _run("recipe", "Toys", 1, 0.06, 0.06)]
    assert report.negatives_gain(records) == (
        "In the paper's setting (BCE, one negative a position), GenNi's negatives against uniform ones "
        "(`bce-uniform`), test NDCG@10: -6% on Beauty (`bce-genni`), +25% on Yelp (`bce-genni-patience30`).")
    assert report.negatives_gain([_run("recipe", "Toys", 1, 0.06, 0.06)]) == ""


def test_zeroed_vs_masked():
    def checkpoint(dataset, seed, masked, zeroed):
        return {"dataset": dataset, "cell": f"GenNiSASRec on {dataset}, seed {seed}: loss_type CE (full softmax)",
                "masked": {"hit@10": masked, "ndcg@10": masked}, "zeroed": {"hit@10": zeroed, "ndcg@10": zeroed / 2}}

    records = [checkpoint("Yelp", 1, 0.04, 0.02), checkpoint("Yelp", 2, 0.05, 0.03), checkpoint("Beauty", 1, 0.1, 0.1)]
    assert report.zeroed_change(records) == (
        "The zeroed rule against the masked one, test HR@10 / NDCG@10: +0% / -50% on Beauty, -45% / -72% on Yelp.")


def test_seeds_share_a_command():
    records = [{"command": f"python benchmarks/run_suite.py s.yaml --only ce --seed {seed} --out /x.jsonl"}
               for seed in (2022, 2020)]
    records += [{"command": "python benchmarks/run_suite.py s.yaml --only ce"},
                {"command": "python benchmarks/run_suite.py s.yaml --only recipe --seed 7"}]
    assert report._commands("s3_four.jsonl", records) == (
        "Commands: `python benchmarks/run_suite.py s.yaml --only ce`; "
        "`python benchmarks/run_suite.py s.yaml --only ce --seed <seed>` (seeds 2020, 2022); "
        "`python benchmarks/run_suite.py s.yaml --only recipe --seed 7`.")


def _timed_run(name, seed, minutes_and_scores, dataset="Amazon2014-Six"):
    return {"dataset": dataset, "name": name, "seed": seed,
            "history": [{"epoch": i, "train_seconds": 60 * m, "valid_score": v}
                        for i, (m, v) in enumerate(minutes_and_scores)]}


def test_budget_table():
    rows = report.budget_table([
        _timed_run("ce", 2020, [(25, 0.01), (40, 0.02), (70, 0.03)]),  # ends at 25, 65 and 135 minutes
        _timed_run("uniform", 2020, [(10, 0.015), (10, 0.012)]),  # stopped (patience) after 20 minutes
        _timed_run("uniform", 2021, [(10, 0.017), (10, 0.018)]),
    ])
    assert rows[2] == "| ce | 2020 | 0.0100 | 0.0100 | 0.0200 | 0.0300 | 0.0300 | 0.0300 | 135 |"
    assert rows[3].startswith("| uniform | 2020, 2021 | 0.0165 ± 0.0021 | 0.0165 ± 0.0021 |")
    assert report.budget_table([_timed_run("slow", 1, [(45, 0.1)])])[2].startswith("| slow | 1 | - | 0.1000 |")


def test_edge_table_per_catalogue_with_twins():
    def run(name, dataset, ndcg):
        return {"name": name, "dataset": dataset, "test": {"ndcg@10": ndcg}}

    own = [run("ssm-uniform-k256", "Six", 0.02), run("genni", "Six", 0.025), run("genni", "Beauty", 0.051),
           run("recipe", "Six", 0.03)]
    twins = [run("ssm-uniform", "Beauty", 0.05), run("ssm-uniform", "Beauty", 0.06), run("recipe", "Beauty", 0.05),
             run("bce-genni", "Beauty", 0.9), run("recipe", "Six", 0.9)]  # Six has its own recipe run
    lines = report.edge_table(report.with_twins(own, twins))
    assert lines == ["| cell | Beauty | Six |", "|---|---:|---:|",
                     "| ssm-uniform-k256 | 0.0550 (2) | 0.0200 (1) |",
                     "| genni | 0.0510 (1, -7.3%) | 0.0250 (1, +25.0%) |",
                     "| recipe | 0.0500 (1, -9.1%) | 0.0300 (1, +50.0%) |"]


def test_other_checkout_commands():
    command = ("python /root/x/benchmarks/run_suite.py /root/x/benchmarks/suites/a.yaml --only ce --seed 1 "
               "--out /work/b.jsonl --set checkpoint_dir=/root/saved/")
    assert report._commands("amazon_six.jsonl", [{"command": command}]) == (
        "Commands: `python benchmarks/run_suite.py benchmarks/suites/a.yaml --only ce --seed 1`.")


def test_per_category_table():
    record = {"cell": "GenNiSASRec on Six, seed 1: ...", "command": "python benchmarks/reevaluate.py x.pth",
              "masked": {"hit@10": 0.1, "ndcg@10": 0.05, "valid ndcg@10": 0.05,
                         "by_group": {"Beauty": {"users": 10, "hit@10": 0.2, "ndcg@10": 0.1},
                                      "Books": {"users": 30, "hit@10": 0.0667, "ndcg@10": 0.0333}}}}
    lines = report.by_group_section("amazon_six_reevaluated.jsonl", [record])
    assert lines[0] == "| cell | all | Beauty | Books |"
    assert lines[2] == "| GenNiSASRec on Six, seed 1: ... | 0.1000 / 0.0500 | 0.2000 / 0.1000 | 0.0667 / 0.0333 |"
    assert "Test users per category: Beauty 10, Books 30." in lines[4]


def test_per_category_rows_of_suite_records():
    def run(name, seed, beauty, books):
        return {"name": name, "seed": seed, "test": {"hit@10": beauty * 0.25 + books * 0.75, "ndcg@10": 0.01},
                "test_by_group": {"Beauty": {"users": 10, "hit@10": beauty, "ndcg@10": 0.01},
                                  "Books": {"users": 30, "hit@10": books, "ndcg@10": 0.01}}}

    records = [run("a", 1, 0.2, 0.1), run("a", 2, 0.4, 0.3), run("b", 1, 0.1, 0.1), {"name": "old", "seed": 1}]
    lines = report.group_table(report.cells_by_group(records))
    assert lines[:4] == ["| cell | all | Beauty | Books |", "|---|---:|---:|---:|",
                         "| a (2) | 0.2250 / 0.0100 | 0.3000 / 0.0100 | 0.2000 / 0.0100 |",
                         "| b (1) | 0.1000 / 0.0100 | 0.1000 / 0.0100 | 0.1000 / 0.0100 |"]
    assert len(lines) == 6 and lines[5].endswith("Beauty 10, Books 30.")


def test_models_cost_table_takes_each_cells_latest_timing():
    def timing(cell, seconds, ratio, reference="GRU4Rec/uniform-ssm", commit="a" * 40):
        return {"name": cell, "dataset": "Beauty", "seconds_per_step": seconds / 500, "seconds_per_epoch": seconds,
                "ratio": ratio, "reference": reference, "batches": 40, "device": "CPU", "commit": commit,
                "command": "python benchmarks/step_cost.py benchmarks/suites/models_beauty.yaml"}
    records = [timing("GRU4Rec/uniform-ssm", 100, 1.0), timing("GRU4Rec/genni-pool-ssm", 150, 1.5),
               timing("GRU4Rec/uniform-ssm", 80, 1.0), timing("GRU4Rec/genni-pool-ssm", 90, 1.125),
               timing("GRU4Rec/ce", 70, 1.0, reference="GRU4Rec/ce")]
    lines = report.models_cost_section("models_beauty_cost.jsonl", records)
    # the latest of each cell; a ratio only against uniform SSM timed in the same process
    assert "| GRU4Rec | - | 80 (1.00) | 90 (1.12) | - | 70 |" in lines
    assert sum(line.startswith("| Beauty |") for line in lines) == 5  # every timing listed below
