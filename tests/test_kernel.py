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
