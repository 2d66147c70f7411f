"""The README's main-job numbers are what today's code prints: its short version runs here, as written."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the README's sentence giving the short main job and what it prints
SHORT_RUN = re.compile(r"`make run ARGS=--epochs=(\d+)` prints test HR@10 ([0-9]+\.[0-9]+), NDCG@10 ([0-9]+\.[0-9]+)")


def test_readme_short_main_job_prints_its_numbers(tmp_path):
    epochs, hit, ndcg = SHORT_RUN.search((ROOT / "README.md").read_text()).groups()
    proc = subprocess.run([sys.executable, str(ROOT / "run_recbole_genni.py"), "--model=GenNiSASRec",
                           "--dataset=ml-100k", f"--epochs={epochs}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = (proc.stdout + proc.stderr).splitlines()  # the summary goes to the log's stream, stderr
    header, test = (next(line for line in printed if line.strip().startswith(start)) for start in ("HIT@10", "test "))
    assert header.split() == ["HIT@10", "NDCG@10"]
    assert test.split()[1:] == [hit, ndcg]
