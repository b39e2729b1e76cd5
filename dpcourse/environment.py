"""Environment check for lesson 00: versions that must match, and the course data."""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata

from dpcourse import data

#: Versions the course is tested with (see FACTS.md: newer TensorFlow brings Keras 3,
#: which breaks TF Privacy's Keras optimizers).
EXPECTED = {
    "tensorflow": "2.15.",
    "tensorflow-privacy": "0.9.0",
    "dp-accounting": "0.4.3",
    "keras": "2.15.",
    "numpy": "1.",
}


@dataclass(frozen=True)
class EnvironmentReport:
    """What was found, and a list of problems (empty when everything is fine)."""

    python: str
    versions: dict[str, str]
    data_rows: int | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        lines = [f"Python {self.python}"]
        lines += [f"{name:<20} {version}" for name, version in self.versions.items()]
        lines.append(
            f"{'course data':<20} {self.data_rows} transactions"
            if self.data_rows
            else "course data missing"
        )
        lines += [f"PROBLEM: {p}" for p in self.problems] or ["Everything is ready."]
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython display
        printer.text(str(self))


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def check() -> EnvironmentReport:
    """Check Python 3.11, the pinned library versions and the presence of the data set."""
    problems = []
    python = platform.python_version()
    if sys.version_info[:2] != (3, 11):
        problems.append(f"Python {python}: the course needs 3.11 (TF Privacy supports <3.12).")
    versions = {name: _version(name) for name in EXPECTED}
    for name, prefix in EXPECTED.items():
        if not versions[name].startswith(prefix):
            problems.append(
                f"{name} {versions[name]}: expected {prefix}*; reinstall with `make lab` "
                "(it installs requirements.txt)."
            )
    try:
        rows = len(data.load_transactions())
    except (FileNotFoundError, ValueError) as err:
        rows = None
        problems.append(str(err))
    return EnvironmentReport(python, versions, rows, problems)
