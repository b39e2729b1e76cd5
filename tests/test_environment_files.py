"""The lock, the conda environment and Binder's requirements must describe one set."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

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


def test_lock_satisfies_pyproject_ranges():
    pins = _pins(ROOT / "requirements.txt")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [
        r for extra in project["optional-dependencies"].values() for r in extra
    ]
    for text in declared:
        req = Requirement(text)
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"{name} is declared in pyproject.toml but not locked"
        assert req.specifier.contains(pins[name], prereleases=True), (name, pins[name])


def test_known_good_stack_is_locked():
    """The versions FACTS.md found to work together (Keras 2, packaging 22, JupyterLab 4.4)."""
    pins = _pins(ROOT / "requirements.txt")
    assert pins["tensorflow"] == "2.15.1"
    assert pins["tensorflow-privacy"] == "0.9.0"
    assert pins["keras"].startswith("2.15")
    assert pins["numpy"].startswith("1.")
    assert pins["jupyterlab"] == "4.4.10"
    assert "tensorflow-cpu" not in pins
