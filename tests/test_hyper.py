"""recbole-genni-hyper: RecBole's hyper-parameter search over this package's runs, with a results table and the
best keys written, and bad input refused before any trial."""

import sys

import pytest
import yaml

from recbole_genni.hyper import main


def _flags(base_config):
    return [f"--{key}={value}" for key, value in base_config.items()]


def _run(argv, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["recbole-genni-hyper"])
    return main(argv)


@pytest.mark.slow
def test_exhaustive_search(base_config, tmp_path, monkeypatch, capsys):
    params = tmp_path / "genni.hyper"
    params.write_text("# the temperature of GenNi's softmax\nneg_temperature choice [0.5,1.0,2.0]\n")
    out = tmp_path / "hyper"
    argv = ["--model=GRU4Rec", "--dataset=tiny", f"--params_file={params}", f"--output_dir={out}",
            "--neg_sampler=genni", *_flags(base_config)]
    assert _run(argv, monkeypatch) == 0
    rows = (out / "GRU4Rec-tiny-hyper.md").read_text().splitlines()[2:]
    assert [row.split(" | ")[1] for row in rows] == [f"neg_temperature: {t}" for t in (0.5, 1.0, 2.0)]
    scores = [float(row.split(" | ")[2]) for row in rows]
    best = [i for i, row in enumerate(rows) if row.rstrip(" |").endswith("best")]
    assert best == [max(range(3), key=lambda i: (scores[i], -i))]  # the first of equal best scores
    assert yaml.safe_load((out / "GRU4Rec-tiny-best.yaml").read_text()) == {
        "neg_temperature": [0.5, 1.0, 2.0][best[0]]}
    assert "3 trials" in capsys.readouterr().out


@pytest.mark.slow
def test_random_search_takes_max_evals(base_config, tmp_path, monkeypatch):
    params = tmp_path / "genni.hyper"
    params.write_text("learning_rate loguniform -7,-4\nneg_num choice [1,2]\n")
    argv = ["--model=GRU4Rec", "--dataset=tiny", f"--params_file={params}", f"--output_dir={tmp_path}",
            "--max_evals=2", *_flags(base_config)]
    assert _run(argv, monkeypatch) == 0
    rows = (tmp_path / "GRU4Rec-tiny-hyper.md").read_text().splitlines()[2:]
    assert len(rows) == 2 and all("learning_rate: " in row and "neg_num: " in row for row in rows)


@pytest.mark.parametrize("lines, extra, message", [
    ("neg_temperature choice [0.5,1.0]\n", ["--neg_temperature=2"],
     "neg_temperature: searched in .* and fixed on the command line"),
    ("neg_temperature between 0.5 and 1\n", [], r"genni.hyper:1: expected .<key> choice \[a,b\]."),
    ("learning_rate uniform 0.001,0.01\n", ["--algo=exhaustive"], "--algo exhaustive needs choice lines only"),
    ("", [], "no search line"),
    ("neg_temperature choice [1.0,0]\n", [], "neg_temperature: 0 is invalid"),  # the second trial's value
    ("learning_rate uniform 0.01,0.001\n", [], r"genni.hyper:1: learning_rate uniform needs finite bounds with "
                                              r"low <= high, got '0.01,0.001'"),
    ("learning_rate loguniform -inf,-4\n", [], r"genni.hyper:1: learning_rate loguniform needs finite bounds"),
    ("hidden_size quniform 16,64,0\n", [], r"hidden_size quniform needs finite bounds with low <= high and a step "
                                          r"q > 0"),
    ("neg_temperature choice [0.5]\n", ["--max_evals=0"], r"--max_evals: 0 is invalid; expected an integer >= 1"),
    ("neg_temperature choice [0.5]\n", ["--nproc=2"], r"--nproc: a search runs its trials one after another"),
    ("neg_temperature choice [0.5]\n", ["--epochs", "2"], r"--epochs: a config key on the command line takes its "
                                                         r"value after '='"),
])
def test_bad_input_refused_early(lines, extra, message, base_config, tmp_path, monkeypatch,
                                                      capsys):
    params = tmp_path / "genni.hyper"
    params.write_text(lines)
    argv = ["--model=GRU4Rec", "--dataset=tiny", f"--params_file={params}", f"--output_dir={tmp_path / 'out'}",
            *extra, *_flags(base_config)]
    assert _run(argv, monkeypatch) == 2
    assert pytest.importorskip("re").search(message, capsys.readouterr().err)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("saved/*.pth"))


def test_shipped_space_is_valid(base_config):
    import itertools
    from pathlib import Path

    from recbole_genni.config import Config
    from recbole_genni.hyper import read_params

    params = read_params(Path(__file__).parents[1] / "properties" / "genni.hyper")
    assert set(params) == {"choice"}
    grid = params["choice"]
    combinations = list(itertools.product(*grid.values()))
    assert len(combinations) == 24
    for values in combinations:  # every trial is a valid GenNiSASRec config
        Config("GenNiSASRec", "tiny", config_dict={**base_config, **dict(zip(grid, values))})


def test_stopped_search_keeps_trials(base_config, tmp_path, monkeypatch):
    import recbole_genni

    runs = []

    def run_then_stop(model, dataset, files, config_dict):
        if runs:
            raise KeyboardInterrupt  # the user stops the search during its second trial
        runs.append(config_dict)
        return {"best_valid_score": 0.3, "valid_score_bigger": True, "best_valid_result": {},
                "test_result": {"hit@10": 0.5, "ndcg@10": 0.25}}

    monkeypatch.setattr(recbole_genni, "run_recbole_genni", run_then_stop, raising=False)
    params = tmp_path / "genni.hyper"
    params.write_text("neg_temperature choice [0.5,1.0]\n")
    argv = ["--model=GRU4Rec", "--dataset=tiny", f"--params_file={params}", f"--output_dir={tmp_path}",
            *_flags(base_config)]
    with pytest.raises(KeyboardInterrupt):
        _run(argv, monkeypatch)
    assert (tmp_path / "GRU4Rec-tiny-hyper.md").read_text().splitlines()[2:] == [
        "| 1 | neg_temperature: 0.5 | 0.3000 | 0.5000 | 0.2500 | best |"]
    assert yaml.safe_load((tmp_path / "GRU4Rec-tiny-best.yaml").read_text()) == {"neg_temperature": 0.5}


def _fake_runs(monkeypatch, fail_on=()):
    """Trials that take no training: a score per temperature, or an error for the temperatures in ``fail_on``."""
    import recbole_genni

    def run(model, dataset, files, config_dict):
        if config_dict["neg_temperature"] in fail_on:
            raise RuntimeError("loss is NaN at epoch 3")
        return {"best_valid_score": config_dict["neg_temperature"] / 10, "valid_score_bigger": True,
                "best_valid_result": {}, "test_result": {"hit@10": 0.5, "ndcg@10": 0.25}}

    monkeypatch.setattr(recbole_genni, "run_recbole_genni", run, raising=False)


def test_failed_trial_is_a_row(base_config, tmp_path, monkeypatch, capsys):
    _fake_runs(monkeypatch, fail_on=(2.0,))
    params = tmp_path / "genni.hyper"
    params.write_text("neg_temperature choice [0.5,2.0,1.0]\n")
    argv = ["--model=GRU4Rec", "--dataset=tiny", f"--params_file={params}", f"--output_dir={tmp_path}",
            *_flags(base_config)]
    assert _run(argv, monkeypatch) == 0
    assert (tmp_path / "GRU4Rec-tiny-hyper.md").read_text().splitlines()[2:] == [
        "| 1 | neg_temperature: 0.5 | 0.0500 | 0.5000 | 0.2500 |  |",
        "| 2 | neg_temperature: 2.0 | - | - | - | failed: RuntimeError: loss is NaN at epoch 3 |",
        "| 3 | neg_temperature: 1.0 | 0.1000 | 0.5000 | 0.2500 | best |"]
    assert yaml.safe_load((tmp_path / "GRU4Rec-tiny-best.yaml").read_text()) == {"neg_temperature": 1.0}
    assert "3 trials (1 failed)" in capsys.readouterr().out


def test_second_search_keeps_first_files(base_config, tmp_path, monkeypatch):
    _fake_runs(monkeypatch)
    params = tmp_path / "genni.hyper"
    argv = ["--model=GRU4Rec", "--dataset=tiny", f"--params_file={params}", f"--output_dir={tmp_path}",
            *_flags(base_config)]
    for values in ("[0.5]", "[1.0]"):
        params.write_text(f"neg_temperature choice {values}\n")
        assert _run(argv, monkeypatch) == 0
    assert yaml.safe_load((tmp_path / "GRU4Rec-tiny-best.yaml").read_text()) == {"neg_temperature": 0.5}
    assert yaml.safe_load((tmp_path / "GRU4Rec-tiny-best-2.yaml").read_text()) == {"neg_temperature": 1.0}
    assert "neg_temperature: 1.0" in (tmp_path / "GRU4Rec-tiny-hyper-2.md").read_text()


def test_unwritable_output_dir_refused(base_config, tmp_path, monkeypatch,
                                                                          capsys):
    _fake_runs(monkeypatch, fail_on=(0.5,))  # a trial would fail; none may run
    (tmp_path / "file").write_text("")
    params = tmp_path / "genni.hyper"
    params.write_text("neg_temperature choice [0.5]\n")
    argv = ["--model=GRU4Rec", "--dataset=tiny", f"--params_file={params}", f"--output_dir={tmp_path / 'file' / 'x'}",
            *_flags(base_config)]
    assert _run(argv, monkeypatch) == 2
    assert capsys.readouterr().err.startswith(f"error: --output_dir: {tmp_path / 'file' / 'x'}: cannot write there")


def test_choice_keeps_inner_spaces(tmp_path):
    from recbole_genni.hyper import read_params

    params = tmp_path / "genni.hyper"
    params.write_text("experiment_tag choice ['a b', 'c']\nlearning_rate uniform 0.001, 0.01\n")
    assert read_params(params) == {"choice": {"experiment_tag": ["a b", "c"]},
                                   "uniform": {"learning_rate": [0.001, 0.01]}}
