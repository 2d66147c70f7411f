"""``recbole-genni-hyper``: RecBole's hyper-parameter search (``HyperTuning``, hyperopt) over this package's runs.

    recbole-genni-hyper --model=GenNiSASRec --dataset=ml-100k --params_file=genni.hyper --max_evals=20

The params file has RecBole's lines, ``<key> choice [v1,v2]``, ``<key> uniform low,high``, ``<key> loguniform
low,high`` (bounds of log(value)), ``<key> quniform low,high,q``; any config key can be searched, the ``neg_*``
keys included. Each trial is a whole training run (early stopping on ``valid_metric``), compared on its best valid
score. The search writes a results table (one row per trial, the best marked) and the best trial's keys as a
YAML file for ``--config_files``.
"""

import ast
import itertools
import math
import random
import sys
from pathlib import Path

import yaml

from recbole_genni.cli import check_config_args, config_files, training_parser
from recbole_genni.errors import GenNiConfigError
from recbole_genni.utils import atomic_write, make_writable_folder, run_cli

ALGORITHMS = ("exhaustive", "random", "bayes")
#: the seed of the sample an exhaustive search capped by max_evals takes from the grid
SEARCH_SEED = 2020


#: RecBole's search line types and how many numbers each takes after the key (choice: a list)
LINE_TYPES = {"choice": None, "uniform": 2, "loguniform": 2, "quniform": 3}


def read_params(params_file) -> dict:
    """A RecBole params file as RecBole's ``params_dict`` (``{"choice": {key: [values]}, "uniform": {key: [low,
    high]}, ...}``), each line checked (RecBole's own reader fails on a comment and trusts the rest to ``eval``):
    choices are Python literals only (a string keeps its spaces), bounds finite numbers with low <= high; ``#``
    lines and blank lines are skipped."""
    if not Path(params_file).is_file():
        raise GenNiConfigError(f"--params_file: {params_file}: no such file")
    params = {}
    for number, line in enumerate(Path(params_file).read_text().splitlines(), start=1):
        words = line.split(None, 2)
        if not words or words[0].startswith("#"):
            continue
        kind = words[1] if len(words) == 3 else None
        try:
            if kind == "choice":
                value = ast.literal_eval(words[2].strip())
                value = list(value) if isinstance(value, (list, tuple)) else [value]
            else:
                value = [float(v) for v in words[2].replace(" ", "").split(",")]
                if len(value) != LINE_TYPES[kind]:
                    raise ValueError
        except (KeyError, ValueError, SyntaxError):
            raise GenNiConfigError(
                f"{params_file}:{number}: expected '<key> choice [a,b]' (Python literals), '<key> uniform|loguniform "
                f"low,high' or '<key> quniform low,high,q', got {line.strip()!r}") from None
        if kind != "choice" and (not all(map(math.isfinite, value)) or value[0] > value[1]
                                 or (kind == "quniform" and value[2] <= 0)):
            raise GenNiConfigError(
                f"{params_file}:{number}: {words[0]} {kind} needs finite bounds with low <= high"
                + (" and a step q > 0" if kind == "quniform" else "") + f", got {words[2].strip()!r}")
        params.setdefault(kind, {})[words[0]] = value
    if not params:
        raise GenNiConfigError(f"{params_file}: no search line ('<key> choice [a,b]', ...)")
    return params


def plain(value):
    """A hyperopt value as a plain Python one (numpy scalars to int/float), for YAML and tables."""
    return value.item() if hasattr(value, "item") else value


def best_trial(trials):
    """The index of the best finished trial: the largest best valid score (the smallest for a metric where lower
    wins); None when every trial failed."""
    finished = [i for i, trial in enumerate(trials) if trial["score"] is not None]
    return max(finished, key=lambda i: trials[i]["score"] * (1 if trials[i]["bigger"] else -1), default=None)


def results_table(trials) -> list:
    """Markdown lines: one row per trial (its keys, best valid score, test HR@10 / NDCG@10, or why it failed), the
    best marked."""
    best = best_trial(trials)
    lines = ["| trial | keys | best valid score | test hit@10 | test ndcg@10 | |", "|---:|---|---:|---:|---:|---|"]
    for i, trial in enumerate(trials):
        keys = ", ".join(f"{k}: {v}" for k, v in trial["params"].items())
        if trial["score"] is None:
            lines.append(f"| {i + 1} | {keys} | - | - | - | failed: {trial['error']} |")
            continue
        test = trial["test_result"]
        lines.append(f"| {i + 1} | {keys} | {trial['score']:.4f} | {test.get('hit@10', float('nan')):.4f} | "
                     f"{test.get('ndcg@10', float('nan')):.4f} | {'best' if i == best else ''} |")
    return lines


def output_files(output_dir, model, dataset):
    """``(table, best YAML)`` of a new search under ``output_dir``, checked writable before the first trial; an
    earlier search's files are kept (the new ones take the first free ``-2``, ``-3``, ... suffix)."""
    folder = Path(output_dir)
    try:
        make_writable_folder(folder)
    except OSError as err:
        raise GenNiConfigError(f"--output_dir: {output_dir}: cannot write there ({err.strerror or err})") from None
    for run in itertools.count(1):
        suffix = "" if run == 1 else f"-{run}"
        table, best = folder / f"{model}-{dataset}-hyper{suffix}.md", folder / f"{model}-{dataset}-best{suffix}.yaml"
        if not table.exists() and not best.exists():
            return table, best


def search(model, dataset, params_file, config_file_list=None, algo=None, max_evals=None, output_dir="hyper"):
    """Run the search; return ``(trials, table path, best YAML path)``. ``trials``: dicts with ``params``,
    ``score`` (best valid score), ``bigger`` (whether larger is better) and ``test_result``. ``algo`` defaults to
    ``exhaustive`` when every line is a ``choice``, else ``random``. An exhaustive search runs every combination in
    the file's order, or with ``max_evals`` below their number a seeded sample of them."""
    from recbole.trainer.hyper_tuning import HyperTuning

    from recbole_genni import run_recbole_genni
    from recbole_genni.config import Config

    params = read_params(params_file)
    keys = [key for lines in params.values() for key in lines]
    fixed = [a.split("=", 1)[0][2:] for a in sys.argv[1:] if a.startswith("--") and "=" in a]
    both = sorted(set(keys) & set(fixed))
    if both:
        raise GenNiConfigError(f"{', '.join(both)}: searched in {params_file} and fixed on the command line (which "
                               "would win in every trial); drop one")
    choices_only = set(params) == {"choice"}
    algo = algo or ("exhaustive" if choices_only else "random")
    if algo not in ALGORITHMS:
        raise GenNiConfigError(f"--algo: {algo!r}; expected {' | '.join(ALGORITHMS)}")
    if algo == "exhaustive" and not choices_only:
        raise GenNiConfigError(
            f"--algo exhaustive needs choice lines only in {params_file}; use --algo random or bayes")
    trials = []
    table = best_yaml = None

    def objective(params, file_list):
        params = {k: plain(v) for k, v in params.items()}
        try:
            result = run_recbole_genni(model, dataset, file_list, config_dict=params)
        except Exception as err:  # a trial's failure is its row; the search goes on
            reason = (str(err).splitlines() or [""])[0][:300]
            trials.append({"params": params, "score": None, "bigger": True, "error": f"{type(err).__name__}: "
                           f"{reason}".replace("|", "/")})
            result = {"best_valid_score": -math.inf, "valid_score_bigger": True, "best_valid_result": {},
                      "test_result": {}}
        else:
            trials.append({"params": params, "score": result["best_valid_score"],
                           "bigger": result["valid_score_bigger"], "test_result": dict(result["test_result"])})
        # rewritten after every trial: a search stopped part-way keeps what it found
        lines = results_table(trials)
        atomic_write(table, lambda f: f.write("\n".join(lines) + "\n"))
        best = best_trial(trials)
        if best is not None:
            atomic_write(best_yaml, lambda f: yaml.safe_dump(trials[best]["params"], f, sort_keys=False))
        return {"model": model, **result}

    if algo == "exhaustive":
        # every combination in the file's order; RecBole's exhaustive algo draws them at random with a numpy
        # RandomState, which hyperopt >= 0.2.7 cannot use (no .integers)
        grid = params["choice"]
        combinations = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
        if max_evals and max_evals < len(combinations):  # a seeded sample, so that a cap still spans every key
            combinations = random.Random(SEARCH_SEED).sample(combinations, max_evals)
        for combination in combinations:  # a bad value is refused before the first trial, not in the middle
            Config(model, dataset, config_file_list, config_dict=combination)
        table, best_yaml = output_files(output_dir, model, dataset)
        tuner = HyperTuning(objective, params_dict=params, fixed_config_file_list=config_file_list, algo="random")
        for combination in combinations:
            tuner.trial(combination)
    else:
        table, best_yaml = output_files(output_dir, model, dataset)
        tuner = HyperTuning(objective, params_dict=params, fixed_config_file_list=config_file_list, algo=algo,
                            max_evals=max_evals or 100)
        tuner.run()
    return trials, table, best_yaml


def main(argv=None) -> int:
    parser = training_parser(__doc__)
    parser.add_argument("--params_file", required=True, help="RecBole params file: '<key> choice [a,b]' lines, ...")
    parser.add_argument("--max_evals", type=int, default=None, help="trials at most (default: 100, or the whole "
                                                                    "space for an exhaustive search)")
    parser.add_argument("--algo", default=None, help="exhaustive | random | bayes (default: exhaustive when every "
                                                     "line is a choice, else random)")
    parser.add_argument("--output_dir", default="hyper", help="where the table and best YAML go (default hyper/)")
    args, rest = parser.parse_known_args(argv)
    argv0 = sys.argv[0]

    def action():
        if args.max_evals is not None and args.max_evals < 1:
            raise GenNiConfigError(f"--max_evals: {args.max_evals} is invalid; expected an integer >= 1")
        if any(arg.split("=", 1)[0] in ("--nproc", "--world_size") for arg in rest):
            raise GenNiConfigError("--nproc: a search runs its trials one after another in one process; drop it")
        check_config_args(rest)
        sys.argv = [argv0, *rest]  # RecBole's Config reads --key=value from sys.argv: only the config keys
        trials, table, best = search(args.model, args.dataset, args.params_file, config_files(args), args.algo,
                                     args.max_evals, args.output_dir)
        failed = sum(trial["score"] is None for trial in trials)
        print(table.read_text() + f"\n{len(trials)} trials" + (f" ({failed} failed)" if failed else "")
              + f"; table: {table}; best keys: " + (str(best) if best.exists() else "none (every trial failed)"))
    return run_cli(action)


def console_main():
    sys.exit(main())
