"""The two locks, the conda environment and Binder's requirements must describe one set.

requirements.txt is the runtime lock (the package and its `lab` and `grading` extras: what
a learner, Binder and a hub image install); requirements-dev.txt is the runtime lock plus
the `dev` extra (tests, lint, browser driver, pip-tools), with the same version of every
package the two share.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from sync_env_files import environment_yml, locked_pins  # noqa: E402


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip().removeprefix("- ").strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_lock_pins_every_line():
    pins = locked_pins()
    assert len(pins) > 50
    assert all("==" in p for p in pins), [p for p in pins if "==" not in p]


def test_environment_yml_is_generated_from_the_lock():
    assert (ROOT / "environment.yml").read_text() == environment_yml(locked_pins())
    assert "python=3.11" in (ROOT / "environment.yml").read_text()


def test_binder_requirements_equal_the_lock():
    assert _pins(ROOT / "binder" / "requirements.txt") == _pins(ROOT / "requirements.txt")
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"


RUNTIME_LOCK = ROOT / "requirements.txt"
DEV_LOCK = ROOT / "requirements-dev.txt"
#: Development tools that must not reach a learner's image.
DEV_ONLY = (
    "pytest",
    "pytest-xdist",
    "nbval",
    "ruff",
    "playwright",
    "pip-tools",
    "coverage",
    "jupyter-repo2docker",
)


def _declared(*extras: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + [
        r for extra in extras for r in project["optional-dependencies"][extra]
    ]


@pytest.mark.parametrize(
    ("lock", "extras"),
    [(RUNTIME_LOCK, ("lab", "grading")), (DEV_LOCK, ("lab", "grading", "dev"))],
    ids=["runtime", "dev"],
)
def test_lock_satisfies_pyproject_ranges(lock, extras):
    pins = _pins(lock)
    for text in _declared(*extras):
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is declared in pyproject.toml but not locked"
        assert req.specifier.contains(pins[name], prereleases=True), (name, pins[name])


def test_pyproject_extras_are_lab_grading_hub_and_dev():
    """`lab`, `grading` (nbgrader, for a class on a hub) and `hub` (the room's JupyterHub)
    are runtime; `dev` is not."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert set(project["optional-dependencies"]) == {"lab", "grading", "hub", "dev"}


def test_runtime_lock_carries_no_development_tools():
    pins = _pins(RUNTIME_LOCK)
    assert not [name for name in DEV_ONLY if name in pins]


def test_dev_lock_is_the_runtime_lock_plus_the_tools():
    runtime, dev = _pins(RUNTIME_LOCK), _pins(DEV_LOCK)
    assert {name: dev.get(name) for name in runtime} == runtime, "shared packages differ"
    assert all(name in dev for name in DEV_ONLY)
    assert len(dev) > len(runtime)


def test_every_reference_names_the_locks():
    """The Makefile installs the runtime lock for `make lab` and the dev lock for `make
    test`; `make lock` writes both."""
    makefile = (ROOT / "Makefile").read_text()
    assert "RUNTIME_LOCK := requirements.txt" in makefile
    assert "DEV_LOCK     := requirements-dev.txt" in makefile
    assert "test: $(DEV_STAMP)" in makefile and "lab: $(STAMP)" in makefile
    assert makefile.count("--output-file $(RUNTIME_LOCK)") == 1
    assert makefile.count("--output-file $(DEV_LOCK)") == 1


def test_known_good_stack_is_locked():
    """The versions FACTS.md found to work together (Keras 2, packaging 22, JupyterLab 4.4)."""
    pins = _pins(ROOT / "requirements.txt")
    assert pins["tensorflow"] == "2.15.1"
    assert pins["tensorflow-privacy"] == "0.9.0"
    assert pins["keras"].startswith("2.15")
    assert pins["numpy"].startswith("1.")
    assert pins["jupyterlab"] == "4.4.10"
    assert "tensorflow-cpu" not in pins
