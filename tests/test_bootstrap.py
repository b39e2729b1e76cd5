"""`make` on a machine whose Python is not 3.11: uv provisions a Python 3.11 .venv.

A copy of the tracked files (a fresh clone, uncommitted edits included) runs
`make .venv/.installed PYTHON=<a 3.12 or 3.13 interpreter>`: the Makefile installs uv into
.uv-bootstrap/ with that interpreter, `uv venv --python 3.11` finds (or, with internet,
downloads) a 3.11, and pip installs the runtime lock. pip's cache is the user's, so this
takes minutes, not the first-time download.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tracked_files

ROOT = Path(__file__).resolve().parent.parent
CANDIDATES = ("python3.12", "python3.13", "python3.14")


def other_python() -> str | None:
    """An interpreter that is not Python 3.11: $DPCOURSE_OTHER_PYTHON, PATH, then pyenv."""
    found = [os.environ.get("DPCOURSE_OTHER_PYTHON")]
    found += [shutil.which(name) for name in CANDIDATES]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    found += sorted(str(p) for p in pyenv.glob("3.1[2-9]*/bin/python3"))
    for candidate in filter(None, found):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2] != (3, 11))"],
            capture_output=True,
            text=True,
        )
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return candidate
    return None


@pytest.mark.slow
def test_make_provisions_python_3_11_with_uv_when_python_is_3_12(tmp_path):
    python = other_python()
    if python is None:
        message = "no Python other than 3.11 on this machine (set DPCOURSE_OTHER_PYTHON)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    repo = tmp_path / "clone"
    for name in tracked_files():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if Path(p).resolve() != Path(sys.prefix) / "bin"
    )
    started = time.perf_counter()
    make = subprocess.run(
        ["make", ".venv/.installed", f"PYTHON={python}"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    seconds = time.perf_counter() - started
    assert make.returncode == 0, make.stdout[-2000:] + make.stderr[-3000:]
    assert "using uv to find or download one" in make.stdout
    assert (repo / ".uv-bootstrap" / "bin" / "uv").is_file()
    check = subprocess.run(
        [
            str(repo / ".venv" / "bin" / "python"),
            "-c",
            "import sys, tensorflow_privacy, dpcourse\n"
            "print(sys.version_info[:2], dpcourse.__file__)",
        ],
        cwd=tmp_path,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert check.returncode == 0, check.stderr[-2000:]
    assert check.stdout.startswith("(3, 11)") and str(repo) in check.stdout
    kernel = repo / ".venv" / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    assert json.loads(kernel.read_text()) == json.loads(
        (ROOT / "etc" / "kernel" / "kernel.json").read_text()
    ), "the course kernel spec is installed, not ipykernel's own"
    print(f"\nmake .venv/.installed PYTHON={python}: {seconds:.0f} s")
