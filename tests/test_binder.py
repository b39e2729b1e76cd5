"""What Binder does, without Docker.

1. repo2docker itself (`--no-build --debug` prints the Dockerfile it would build): its own
   conda server environment for Python 3.11 (JupyterLab, jupyterhub-singleuser, packaging
   newer than 22), then `pip install -r binder/requirements.txt` into that same
   environment, then `binder/postBuild`.
2. Those layers in a venv: the server environment's JupyterLab, jupyterhub-singleuser and
   packaging at repo2docker's locked versions, then our lock on top (packaging goes down to
   22.0 for TF Privacy, JupyterLab to the course's 4.4.10), then postBuild, then a lesson.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tracked_files
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
#: The packages of repo2docker's server environment that our lock changes or must live with,
#: as {conda-forge name: PyPI name} (jupyterhub-base is PyPI's jupyterhub).
SERVER_PACKAGES = {
    "jupyterlab": "jupyterlab",
    "jupyterhub-base": "jupyterhub",
    "packaging": "packaging",
}


def _repo2docker() -> Path:
    exe = Path(sys.prefix) / "bin" / "repo2docker"
    if not exe.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail("jupyter-repo2docker is not installed (it is in requirements-dev.txt)")
        pytest.skip(
            "jupyter-repo2docker is not installed (make test installs requirements-dev.txt)"
        )
    return exe


def server_environment() -> dict[str, str]:
    """repo2docker's locked conda server environment for Python 3.11: {name: version}."""
    from repo2docker.buildpacks import conda

    lock = Path(conda.__file__).parent / "environment.py-3.11-linux-64.lock"
    versions = {}
    for line in lock.read_text().splitlines():
        if line.startswith("https://"):
            name, version, _build = line.rsplit("/", 1)[1].split("#")[0].rsplit("-", 2)
            versions[name] = version
    return versions


def test_repo2docker_layers_our_lock_over_its_server_environment(tmp_path):
    exe = _repo2docker()
    repo = tmp_path / "repo"
    for name in tracked_files():
        if name.startswith("binder/"):
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, repo / name)
    done = subprocess.run(
        [str(exe), "--no-build", "--no-run", "--debug", str(repo)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dockerfile = done.stdout
    assert "Building conda environment for python=3.11" in done.stderr + done.stdout
    assert "environment-2epy-2d3-2e11-2dlinux-2d64-2elock" in dockerfile
    steps = [
        dockerfile.index("/tmp/install-base-env.bash' &&"),  # the server environment
        dockerfile.index('/bin/pip install --no-cache-dir -r "binder/requirements.txt"'),
        dockerfile.index("RUN ./binder/postBuild"),
    ]
    assert steps == sorted(steps), "server env, then our lock, then postBuild"
    assert "ENV KERNEL_PYTHON_PREFIX=${NB_PYTHON_PREFIX}" in dockerfile, "one environment"
    assert "jupyterhub-singleuser" in server_environment(), "Binder's hub talks to it"

    server, ours = server_environment(), _pins(ROOT / "binder" / "requirements.txt")
    assert all(name in server for name in SERVER_PACKAGES), sorted(server)
    assert Version(server["packaging"]) > Version(ours["packaging"]) == Version("22.0")
    assert ours["jupyterlab"] == "4.4.10"


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


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

    _repo2docker()
    server = server_environment()
    first = sh(
        "pip", "install", "--quiet", *(f"{p}=={server[c]}" for c, p in SERVER_PACKAGES.items())
    )
    assert first.returncode == 0, first.stderr[-3000:]
    install = sh("pip", "install", "--quiet", "-r", "binder/requirements.txt")
    assert install.returncode == 0, install.stderr[-3000:]
    versions = sh(
        "python",
        "-c",
        "import jupyterlab, packaging; print(jupyterlab.__version__, packaging.__version__)",
    )
    assert versions.stdout.split() == ["4.4.10", "22.0"], versions.stderr[-2000:]
    singleuser = sh("jupyterhub-singleuser", "--version")
    assert singleuser.returncode == 0, singleuser.stderr[-2000:]
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
