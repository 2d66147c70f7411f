"""The command line: RecBole's ``--key=value`` conventions, its help and its one-line refusals."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_unknown_model_exits_nonzero():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run_recbole_genni.py"), "--model=NoSuchModel"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error: unknown model 'NoSuchModel'") and "GRU4Rec" in lines[-1]


def test_help_lists_keys(capsys):
    from recbole_genni.cli import main

    with pytest.raises(SystemExit) as exit_code:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_code.value.code == 0
    for line in ("  Negative sampling", "    --neg_sampler=genni  (str) uniform | popularity",
                 "    --neg_num=1  (int) K", "    --train_time_budget=~  (int, float or None)",
                 "    --eval_mask_history=True"):
        assert line in out
    own = out[out.index("GenNiSASRec's own defaults"):]  # its recipe, after the package's defaults
    for line in ("    --loss_type=SSM  (str)", "    --neg_num=256  (int)", "    --neg_pool_size=all",
                 "    --neg_exclude=target"):
        assert line in own


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "1"], "error: --epochs: a config key on the command line takes its value after '=': --epochs=VALUE."),
    (["stray"], "error: stray: not an option; config keys on the command line are --key=value."),
    (["--epochs=1", "--epochs=2"], "error: --epochs: given twice ('1' and '2'); give it once."),
    (["--neg_pool_size=a=b"], "error: --neg_pool_size: RecBole's command line drops a value holding '='"),
])
def test_skipped_keys_refused(argv, message, capsys):
    from recbole_genni import cli

    assert cli.main(["--model=GenNiSASRec", "--dataset", "tiny", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
