"""docs/benchmarks.md is what the committed results give, byte for byte, and every results file has a section."""

import pytest

from benchmarks import report


def test_the_benchmarks_page_is_regenerated_from_the_committed_results():
    assert report.render() == report.render()
    assert report.main(["--check"]) == 0, "run python benchmarks/report.py and commit docs/benchmarks.md"


def test_a_results_file_without_a_section_is_refused(tmp_path, monkeypatch):
    (tmp_path / "new.jsonl").write_text("")
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    with pytest.raises(SystemExit, match="new.jsonl: results file"):
        report.render()


def test_a_cell_row_names_every_device_of_its_seeds():
    def record(seed, device):
        return {"dataset": "tiny", "name": "cell", "seed": seed, "device": device, "epochs": 3,
                "test": {m: 0.1 for m in ("hit@10", "ndcg@10", "hit@20", "ndcg@20")}, "best_valid": {"ndcg@10": 0.1},
                "train_seconds_per_epoch": 1.0}

    records = [record(1, "CPU (2 threads)"), record(2, "CPU (1 threads)"), record(3, "CPU (1 threads)")]
    rows = [line for line in report.cell_table(records) if line.startswith("| cell | 1")]
    assert len(rows) == 1 and rows[0].startswith("| cell | 1, 2, 3 | 0.1000 ± 0.0000 |")
    assert rows[0].endswith("| CPU (1 threads) / CPU (2 threads) |")


def test_check_fails_when_a_linked_plot_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "IMAGES", tmp_path / "img")
    monkeypatch.setattr(report, "OUTPUT", tmp_path / "benchmarks.md")
    report.OUTPUT.write_text(report.render())
    assert report.main(["--check"]) == 1


def test_commands_leave_out_the_output_file_and_the_resumed_checkpoint():
    renamed = "python benchmarks/run_grid.py s.yaml --only recipe"
    assert report._commands("s3_four.jsonl", [{"command": renamed}]) == (
        "Commands: `python benchmarks/run_suite.py s.yaml --only recipe`.")
    command = "python benchmarks/run_suite.py s.yaml --out /x/a.jsonl --set resume_checkpoint=/x/m.pth --set epochs=2"
    assert report._commands("s3_four.jsonl", [{"command": command}]) == (
        "Commands: `python benchmarks/run_suite.py s.yaml --set epochs=2`.")


def test_cells_trained_for_a_time_budget_are_compared_at_equal_epochs():
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


def test_the_tuning_table_puts_the_untuned_recipe_and_twin_of_the_same_datasets_beside_the_tuned_cells(
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


def test_the_negatives_gain_takes_the_genni_cell_best_on_valid_against_the_uniform_one():
    records = [_run("bce-uniform", "Yelp", 1, 0.04, 0.04), _run("bce-genni", "Yelp", 1, 0.01, 0.02),
               _run("bce-genni-patience30", "Yelp", 1, 0.05, 0.05), _run("bce-uniform", "Beauty", 1, 0.04, 0.04),
               _run("bce-genni", "Beauty", 1, 0.03, 0.03), _run("bce-genni", "Beauty", 2, 0.045, 0.03),
               _run("recipe", "Toys", 1, 0.06, 0.06)]
    assert report.negatives_gain(records) == (
        "In the paper's setting (BCE, one negative a position), GenNi's negatives against uniform ones "
        "(`bce-uniform`), test NDCG@10: -6% on Beauty (`bce-genni`), +25% on Yelp (`bce-genni-patience30`).")
    assert report.negatives_gain([_run("recipe", "Toys", 1, 0.06, 0.06)]) == ""


def test_the_zeroed_rule_is_compared_with_the_masked_one_per_dataset_of_the_checkpoints():
    def checkpoint(dataset, seed, masked, zeroed):
        return {"dataset": dataset, "cell": f"GenNiSASRec on {dataset}, seed {seed}: loss_type CE (full softmax)",
                "masked": {"hit@10": masked, "ndcg@10": masked}, "zeroed": {"hit@10": zeroed, "ndcg@10": zeroed / 2}}

    records = [checkpoint("Yelp", 1, 0.04, 0.02), checkpoint("Yelp", 2, 0.05, 0.03), checkpoint("Beauty", 1, 0.1, 0.1)]
    assert report.zeroed_change(records) == (
        "The zeroed rule against the masked one, test HR@10 / NDCG@10: +0% / -50% on Beauty, -45% / -72% on Yelp.")


def test_commands_that_differ_in_their_seed_only_are_shown_once_with_the_seeds():
    records = [{"command": f"python benchmarks/run_suite.py s.yaml --only ce --seed {seed} --out /x.jsonl"}
               for seed in (2022, 2020)]
    records += [{"command": "python benchmarks/run_suite.py s.yaml --only ce"},
                {"command": "python benchmarks/run_suite.py s.yaml --only recipe --seed 7"}]
    assert report._commands("s3_four.jsonl", records) == (
        "Commands: `python benchmarks/run_suite.py s.yaml --only ce`; "
        "`python benchmarks/run_suite.py s.yaml --only ce --seed <seed>` (seeds 2020, 2022); "
        "`python benchmarks/run_suite.py s.yaml --only recipe --seed 7`.")
