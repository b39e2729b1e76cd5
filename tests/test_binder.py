"""What Binder does, without Docker: a fresh venv from binder/ files alone, then postBuild,
then a lesson executed in that environment.

repo2docker installs `binder/requirements.txt` into a Python picked from
`binder/runtime.txt`, runs `binder/postBuild` from the repository root, then serves
JupyterLab. This test repeats those steps on a copy of the tracked files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if (ROOT / line).is_file()]


@pytest.mark.slow
def test_binder_environment_builds_and_runs_a_lesson(tmp_path):
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    assert runtime == f"python-{sys.version_info.major}.{sys.version_info.minor}"
    repo = tmp_path / "repo"
    for name in tracked_files():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    (repo / "data" / "transactions.csv.gz").unlink()  # postBuild must make it if missing

    venv = tmp_path / "binder-env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(venv)}
    env.pop("PYTHONPATH", None)

    def sh(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=1500)

    install = sh("pip", "install", "--quiet", "-r", "binder/requirements.txt")
    assert install.returncode == 0, install.stderr[-3000:]
    post = sh("bash", "binder/postBuild")
    assert post.returncode == 0, post.stderr[-3000:]

    assert (repo / "data" / "transactions.csv.gz").is_file()
    assert (venv / "share/jupyter/lab/settings/overrides.json").is_file()
    assert (venv / "share/jupyter/kernels/python3/kernel.json").is_file()
    check = sh("python", "-c", "import dpcourse, tensorflow_privacy; print(dpcourse.__file__)")
    assert check.returncode == 0 and str(repo) in check.stdout, check.stderr[-2000:]

    run = sh(
        "jupyter",
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        "--output",
        str(tmp_path / "out.ipynb"),
        "notebooks/00_welcome.ipynb",
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Everything is ready." in (tmp_path / "out.ipynb").read_text()
