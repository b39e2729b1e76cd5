"""`make lab` really serves JupyterLab: on localhost, with the token required."""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parent.parent


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


@pytest.fixture
def lab_server():
    """Start `make lab` (with this interpreter's environment) on a free port; stop it after."""
    port, token = free_port(), "course-test-token"
    env = {**os.environ, "JUPYTER_TOKEN": token}
    command = ["make", "-s", "lab", f"VENV={sys.prefix}", f"PORT={port}", "LAB_FLAGS=--no-browser"]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"make lab exited with {proc.returncode}: {proc.stderr.read()[-2000:]}")
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


def _stop(proc: subprocess.Popen) -> None:
    """Stop the whole process group (make and the Jupyter server it started)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_make_lab_serves_jupyterlab_with_a_token(lab_server):
    port, token = lab_server
    status, body = fetch(f"http://127.0.0.1:{port}/lab?token={token}")
    assert status == 200 and "JupyterLab" in body
    status, body = fetch(f"http://127.0.0.1:{port}/api/contents?token={token}")
    assert status == 200 and "00_welcome.ipynb" in body, "the lab must open on notebooks/"
    status, _ = fetch(f"http://127.0.0.1:{port}/api/contents")
    assert status == 403, "the server must require its token"


def test_lab_config_is_localhost_only():
    text = (ROOT / "etc" / "jupyter_server_config.py").read_text()
    assert 'c.ServerApp.ip = "127.0.0.1"' in text
    assert "token = ''" not in text and 'token = ""' not in text
