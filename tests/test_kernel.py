"""The course kernel, started as JupyterLab starts it, imports the course without a word on
stderr (TensorFlow's C++ start-up log is what a learner would otherwise see in red).

JupyterLab looks the notebook's kernel name up with jupyter_client's KernelSpecManager and
starts it with a KernelManager; so does this test. What a learner sees in red is the
kernel's iopub ``stream`` messages named ``stderr``; what the kernel process writes to its
own stderr ends up in the terminal of ``make lab``. Both must stay empty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parent.parent
COURSE_KERNEL = json.loads((ROOT / "etc" / "kernel" / "kernel.json").read_text())


def _notebook_kernel_name() -> str:
    names = {
        nbformat.read(path, as_version=4).metadata["kernelspec"]["name"]
        for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    }
    assert len(names) == 1, f"the lessons name different kernels: {names}"
    return names.pop()


def test_the_lessons_kernel_is_the_course_kernel_in_this_environment():
    """`make` installs etc/kernel/kernel.json as the venv's kernel for the lessons' kernel
    name (ipykernel's own kernel.json, written when ipykernel installs, must not win)."""
    spec = KernelSpecManager().get_kernel_spec(_notebook_kernel_name())
    assert Path(spec.resource_dir).resolve().is_relative_to(Path(sys.prefix).resolve())
    assert spec.env == COURSE_KERNEL["env"]
    assert spec.argv == COURSE_KERNEL["argv"]


@pytest.mark.slow
def test_importing_the_course_in_the_course_kernel_prints_nothing_on_stderr(tmp_path):
    name = _notebook_kernel_name()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    km = KernelManager(kernel_name=name)
    process_stderr = tmp_path / "kernel.stderr"
    with open(process_stderr, "w") as err:
        km.start_kernel(env=env, cwd=str(ROOT / "notebooks"), stderr=err)
    streams: list[tuple[str, str]] = []

    def on_output(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            streams.append((msg["content"]["name"], msg["content"]["text"]))
        elif msg["msg_type"] == "error":
            streams.append(("stderr", "\n".join(msg["content"]["traceback"])))

    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=120)
        reply = kc.execute_interactive(
            "import tensorflow, tensorflow_privacy, dpcourse, dpcourse.training\n"
            "import os; print(os.environ.get('TF_CPP_MIN_LOG_LEVEL'))",
            output_hook=on_output,
            timeout=300,
        )
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok", streams
    assert [text for stream, text in streams if stream == "stderr"] == []
    assert process_stderr.read_text() == ""
    assert [text for stream, text in streams if stream == "stdout"] == [
        COURSE_KERNEL["env"]["TF_CPP_MIN_LOG_LEVEL"] + "\n"
    ]


def test_the_course_kernel_wins_over_a_users_own_python3_kernel(tmp_path):
    """A learner may have a ``python3`` kernel of another Python (without TensorFlow) in
    ~/.local/share/jupyter. Inside a virtual environment Jupyter searches the environment's
    kernels first (jupyter_core's JUPYTER_PREFER_ENV_PATH defaults to true in a venv), so
    JupyterLab started from .venv still picks the course kernel."""
    user_kernel = tmp_path / "user" / "kernels" / "python3"
    user_kernel.mkdir(parents=True)
    (user_kernel / "kernel.json").write_text(
        json.dumps(
            {
                "argv": ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (user)",
                "language": "python",
            }
        )
    )
    probe = (
        "from jupyter_client.kernelspec import KernelSpecManager as M\n"
        "spec = M().get_kernel_spec('python3')\n"
        "print(spec.display_name, spec.env)"
    )
    env = {**os.environ, "JUPYTER_DATA_DIR": str(tmp_path / "user")}
    for name in ("JUPYTER_PATH", "JUPYTER_PREFER_ENV_PATH"):
        env.pop(name, None)
    found = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert found == f"{COURSE_KERNEL['display_name']} {COURSE_KERNEL['env']}"
    env["JUPYTER_PREFER_ENV_PATH"] = "0"  # the test can fail: the user's kernel, when preferred
    shadowed = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert shadowed.startswith("Python 3 (user)")
