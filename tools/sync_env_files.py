"""Write environment.yml and binder/requirements.txt from the runtime lock, requirements.txt.

Run by `make lock` after pip-compile; tests/test_environment_files.py fails if the three
files drift apart.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = (
    "# Generated from requirements.txt by `make lock` (tools/sync_env_files.py); do not edit.\n"
)


def locked_pins(lock: Path = ROOT / "requirements.txt") -> list[str]:
    """The `name==version` lines of the lock, in order, without comments."""
    pins = []
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pins.append(line)
    return pins


def environment_yml(pins: list[str]) -> str:
    """A conda environment with Python 3.11 and exactly the locked pip packages."""
    body = "".join(f"      - {pin}\n" for pin in pins)
    return (
        HEADER
        + "name: dpcourse\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11\n  - pip\n"
        + "  - pip:\n"
        + body
    )


def main() -> None:
    pins = locked_pins()
    (ROOT / "environment.yml").write_text(environment_yml(pins))
    (ROOT / "binder" / "requirements.txt").write_text(HEADER + "".join(f"{p}\n" for p in pins))


if __name__ == "__main__":
    main()
