"""Shared fixtures and test-session settings."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def _isolated_progress_file(tmp_path, monkeypatch):
    """Exercise progress goes to a temporary file, never the learner's home directory."""
    monkeypatch.setenv("DPCOURSE_PROGRESS_FILE", str(tmp_path / "progress.json"))


@pytest.fixture(scope="session")
def kaggle_csv() -> Path:
    """300 rows in the public Credit Card Fraud Detection schema (random values)."""
    return FIXTURES / "creditcard_sample.csv"


def tracked_files() -> list[str]:
    """The repository's tracked files that exist in the work tree (a clean copy's contents)."""
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return [line for line in out.splitlines() if (ROOT / line).is_file()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


@contextlib.contextmanager
def running_lab(log_path: Path, root_dir: Path | None = None):
    """Run `make lab` (with this interpreter's environment) on a free port; yield
    (port, token) once it answers, and stop it afterwards. ``root_dir`` serves another
    folder than notebooks/ (browser tests use a copy, so autosave cannot touch the lessons).
    """
    port, token = free_port(), "course-test-token"
    env = {**os.environ, "JUPYTER_TOKEN": token}
    command = ["make", "-s", "lab", f"VENV={sys.prefix}", f"PORT={port}", "LAB_FLAGS=--no-browser"]
    if root_dir is not None:
        command.append(f"NOTEBOOK_DIR={root_dir}")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, start_new_session=True, stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(
                    f"make lab exited with {proc.returncode}: {log_path.read_text()[-2000:]}"
                )
            try:
                status, _ = fetch(f"http://127.0.0.1:{port}/api/status?token={token}")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(1)
        else:
            pytest.fail("JupyterLab did not answer within 180 s")
        yield port, token
    finally:
        _stop(proc)


@pytest.fixture
def lab_server(tmp_path):
    """`make lab` serving notebooks/."""
    with running_lab(tmp_path / "lab.log") as server:
        yield server


def _stop(proc: subprocess.Popen) -> None:
    """Stop the whole process group (make and the Jupyter server it started)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
