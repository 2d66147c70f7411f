"""The package as a user installs it: a wheel in a fresh virtual environment, the ``recbole-genni`` command and
``python -m recbole_genni`` run from a directory outside the repository."""

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv holding the package's wheel (its dependencies, torch included, reused from this environment
    through a path entry, so nothing is downloaded); returns its ``bin`` folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp / "dist"), str(ROOT)], check=True, cwd=tmp)
    wheel, = (tmp / "dist").glob("recbole_genni-*.whl")
    venv.create(tmp / "venv", with_pip=False)
    python = tmp / "venv" / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # this environment's packages after the fresh one's own: the wheel's recbole_genni comes first
    Path(site, "reused.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return tmp / "venv" / "bin"


def _tiny_flags(base_config):
    keys = {**base_config, "load_col": None}
    return [f"--{key}={value}" for key, value in keys.items()]


@pytest.mark.slow
def test_installed_command_trains(installed, base_config, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    where = subprocess.run([str(installed / "python"), "-c", "import recbole_genni; print(recbole_genni.__file__)"],
                           capture_output=True, text=True, check=True, cwd=work).stdout
    assert str(installed.parent) in where  # the wheel's copy, not the checkout
    env = {**os.environ, "PYTHONPATH": ""}
    run = subprocess.run([str(installed / "recbole-genni"), "--model=GRU4Rec", "--dataset=tiny",
                          *_tiny_flags(base_config)], capture_output=True, text=True, cwd=work, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (work / "log" / "GRU4Rec").is_dir()  # RecBole's log beside the user, not in the package
    assert list(Path(base_config["checkpoint_dir"]).glob("GRU4Rec-*.pth"))  # it trained and saved
    module = subprocess.run([str(installed / "python"), "-m", "recbole_genni", "--help"], capture_output=True,
                            text=True, cwd=work, env=env)
    assert module.returncode == 0 and "--config_files" in module.stdout
