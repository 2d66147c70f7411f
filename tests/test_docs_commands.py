"""Every shell command in the README and docs/ runs as written, on tiny data where it names a big dataset.

Each fenced ``bash`` block's commands are collected (continuation lines joined, comments dropped), and so is each
command written inline in the prose (a code span that starts with ``make``, ``python``, ``pip``, ``.venv/bin/`` or
``recbole-genni`` and has arguments, or a set of ``--model=... --key=value`` flags, run as ``recbole-genni`` on
ml-100k). A command runs in a folder of its own with what it reads put in place: its ``my.yaml`` (a short run),
``path/to/MyData.txt`` (a tiny sequence file), a checkpoint where it names one. The few that cannot run in CI are
listed in :data:`NOT_RUN` with the reason; a command in neither fails the test, so a new example has to be run here
or excused.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

#: commands excused from running, by their start, with why
NOT_RUN = {
    "make run": "trains to early stopping (minutes); its short version runs in test_main_job.py",
    "make test": "is this test suite",
    ".venv/bin/python run_recbole_genni.py --model=SASRec --nproc=4": "four DDP ranks to early stopping; "
                                                                       "test_distributed.py trains two ranks",
    ".venv/bin/python run_recbole_genni.py --nproc=4 --world_size=8": "needs a second machine",
    ".venv/bin/recbole-genni-hyper": "20 and 3 trials of ml-100k runs (tens of minutes); test_hyper.py searches tiny "
                                     "data",
    ".venv/bin/python benchmarks/run_suite.py": "two cells to early stopping (up to 300 epochs); test_run_suite.py "
                                                "runs suites on tiny data",
    ".venv/bin/python run_recbole_genni.py --model=SASRec --dataset=ml-100k --resume_checkpoint=":
        "continues a run to its 300 epochs; test_trainer.py resumes killed runs on tiny data",
    "python -m recbole_genni": "is `make run`'s job; test_packaging.py runs it from an installed wheel",
    "pip ": "installs into the reader's environment; test_packaging.py builds the wheel and installs it in a new venv",
    "python benchmarks/": "the benchmarks' commands on their real datasets (hours); test_run_suite.py, "
                          "test_reevaluate.py, test_negatives_hardness.py, test_fetch_data.py and test_report.py "
                          "run the scripts on tiny data",
}
#: how an inline command starts (a set of flags is the other kind)
INLINE_STARTS = ("make ", "python ", "pip ", ".venv/bin/", "recbole-genni")
#: a tiny S3-Rec sequence file: 30 users, items 1..40
TINY_SEQUENCES = "".join(f"{u} " + " ".join(str(1 + (u * 7 + t * 3) % 40) for t in range(6 + u % 5)) + "\n"
                         for u in range(1, 31))


def commands():
    """``(file, command)`` for each command of each fenced bash block of the README and docs/, and for each command
    written inline in their prose."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                command = re.sub(r"\s+#.*$", "", line).strip()  # a trailing comment
                if command and not command.startswith("#"):
                    found.append((page.name, " ".join(command.split())))
        for span in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S)):
            command = " ".join(span.split())
            if " " in command and (command.startswith(INLINE_STARTS) or re.fullmatch(r"--model=\S+( --\w+=\S+)+",
                                                                                      command)):
                found.append((page.name, command))
    return found


def test_every_command_is_run_or_excused():
    for page, command in commands():
        assert RUNS.get(command) or any(command.startswith(start) for start in NOT_RUN), (
            f"{page}: `{command}` is neither run by tests/test_docs_commands.py nor excused in NOT_RUN")


def _run(command, cwd):
    argv = shlex.split(command)
    if argv[0].startswith(".venv/bin/") or argv[0] == "python":
        argv[0] = str(BIN / Path(argv[0]).name)
    if argv[0].endswith("python") and len(argv) > 1 and not argv[1].startswith("-"):
        argv[1] = str(ROOT / argv[1])  # a repository script, run from the command's own folder
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"`{command}`:\n{proc.stderr[-3000:]}"
    return proc


def _short_yaml(cwd):
    """The reader's ``my.yaml``, as short as a run gets: one epoch of a small model over each user's last 10 items
    (an epoch of RecBole's SASRec on ml-100k over the last 50 costs about a minute of a CPU thread)."""
    (cwd / "my.yaml").write_text("epochs: 1\nhidden_size: 16\nembedding_size: 16\ninner_size: 32\n"
                                 "MAX_ITEM_LIST_LENGTH: 10\ntrain_batch_size: 2048\neval_batch_size: 4096\n"
                                 "show_progress: False\n")


def _checkpoint(cwd):
    """A finished one-epoch SASRec run on ml-100k in ``cwd``: its best checkpoint."""
    _short_yaml(cwd)
    _run(".venv/bin/recbole-genni --model=SASRec --dataset=ml-100k --config_files=my.yaml --neg_sampler=none", cwd)
    return next(path for path in (cwd / "saved").glob("*.pth") if not path.stem.endswith("-last"))


def run_convert(command, cwd):
    (cwd / "path" / "to").mkdir(parents=True)
    (cwd / "path" / "to" / "MyData.txt").write_text(TINY_SEQUENCES)
    assert "MyData: 30 users, 40 items" in _run(command, cwd).stdout


def run_with_my_yaml(command, cwd):
    _short_yaml(cwd)
    proc = _run(command, cwd)
    assert re.search(r"^test\s+[0-9.]+\s+[0-9.]+$", proc.stdout + proc.stderr, re.M)  # the summary's test row


def run_flags(flags, cwd):
    run_with_my_yaml(f".venv/bin/recbole-genni {flags} --dataset=ml-100k --config_files=my.yaml", cwd)


def run_runs_table(command, cwd):
    best = _checkpoint(cwd)
    table = _run(command, cwd).stdout
    assert best.stem in table and "SASRec" in table  # the run's row


def run_recommend(command, cwd):
    best = _checkpoint(cwd)
    _run(command.replace("saved/<id>.pth", str(best.relative_to(cwd))), cwd)
    rows = (cwd / "recs.tsv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 10  # a header, ten items for each of the two users


#: each command the pages show, as written, and how its test sets it up and checks it
RUNS = {
    ".venv/bin/python -m recbole_genni.data.convert path/to/MyData.txt --out dataset/": run_convert,
    '.venv/bin/recbole-genni --model=GRU4Rec --dataset=ml-100k --config_files="my.yaml" --neg_sampler=genni '
    "--neg_num=4 --neg_pool_size=200 --neg_temperature=0.5": run_with_my_yaml,
    ".venv/bin/recbole-genni-recommend saved/<id>.pth --users=196,186 --k=10 --output=recs.tsv": run_recommend,
    "--model=GRU4Rec --neg_sampler=genni --loss_type=SSM --neg_num=256 --neg_pool_size=1024": run_flags,
    "--model=SASRec --neg_sampler=none": run_flags,
    "python -m recbole_genni.runs log/": run_runs_table,
}


@pytest.mark.parametrize("command", sorted(RUNS))
def test_command_runs_as_written(command, tmp_path):
    assert any(shown == command for _, shown in commands()), f"`{command}` is no longer in the README or docs/"
    RUNS[command](command, tmp_path)

