"""`make lab` really serves JupyterLab: on localhost, with the token required."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import fetch

ROOT = Path(__file__).resolve().parent.parent


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
