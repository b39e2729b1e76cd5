"""The learner's progress: which exercises they have passed, kept in a small local JSON file.

The file lives at ``~/.dpcourse/progress.json`` unless the environment variable
``DPCOURSE_PROGRESS_FILE`` names another path. It is never sent anywhere. It holds::

    {"version": 1, "passed": [{"lesson": "02", "name": "clip",
                               "passed_at": "2025-01-31T10:15:00+00:00"}, ...]}

with one record per exercise, stamped with the first time it was passed (UTC). Reading
or writing problems (a read-only home directory on a shared JupyterHub, a damaged file)
never stop an exercise from being checked: they raise a :class:`ProgressWarning` and
progress is simply not saved.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path

from .ids import lesson_id

ENV_VAR = "DPCOURSE_PROGRESS_FILE"
FILE_VERSION = 1


class ProgressWarning(UserWarning):
    """The progress file could not be read or written; checking carries on without it."""


def progress_file() -> Path:
    """The progress file: ``$DPCOURSE_PROGRESS_FILE`` if set, else ``~/.dpcourse/progress.json``."""
    override = os.environ.get(ENV_VAR)
    return Path(override).expanduser() if override else Path.home() / ".dpcourse" / "progress.json"


def _load_records(path: Path) -> list[dict[str, str]]:
    """The pass records in the file at ``path``; raises ``OSError`` or ``ValueError`` (damaged)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    records = data.get("passed") if isinstance(data, dict) else None
    if not isinstance(records, list):
        raise ValueError("the file holds no 'passed' list")
    if not all(
        isinstance(r, dict) and {"lesson", "name", "passed_at"} <= r.keys() for r in records
    ):
        raise ValueError("a record lacks lesson, name or passed_at")
    return records


def _read_records() -> list[dict[str, str]]:
    """The stored pass records; an absent file is empty, an unreadable one warns and is empty."""
    path = progress_file()
    if not path.exists():
        return []
    try:
        return _load_records(path)
    except (OSError, ValueError) as err:
        warnings.warn(
            f"Could not read the progress file {path} ({err}); treating it as empty. "
            f"Delete it, or set {ENV_VAR} to another path, to start a fresh record.",
            ProgressWarning,
            stacklevel=3,
        )
        return []


def read_progress(path: str | Path) -> dict[str, str]:
    """The passed exercises in the progress file at ``path``: ``{"<lesson>.<name>": passed_at}``.

    The reader for someone else's file (the instructor's class view). Unlike the learner's
    own reading, it does not forgive: ``FileNotFoundError`` when the file is absent, another
    ``OSError`` when it cannot be read, ``ValueError`` saying what is wrong when it is damaged.
    """
    return {f"{r['lesson']}.{r['name']}": r["passed_at"] for r in _load_records(Path(path))}


def _write_records(records: list[dict[str, str]]) -> None:
    """Replace the file atomically (temporary file + rename); failures only warn."""
    path = progress_file()
    text = json.dumps({"version": FILE_VERSION, "passed": records}, indent=1)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=".progress-", delete=False
        ) as tmp:
            tmp.write(text)
        os.replace(tmp.name, path)
    except OSError as err:
        warnings.warn(
            f"Could not save your progress to {path} ({err}). Your answers are still "
            f"checked; set {ENV_VAR} to a writable path to keep a record.",
            ProgressWarning,
            stacklevel=3,
        )


def passed_exercises() -> dict[str, str]:
    """Every passed exercise as ``{"<lesson>.<name>": passed_at}`` (ISO 8601, UTC)."""
    return {f"{r['lesson']}.{r['name']}": r["passed_at"] for r in _read_records()}


def record_pass(lesson: str, name: str) -> None:
    """Record that exercise ``lesson.name`` was passed, keeping the first pass time."""
    records = _read_records()
    if any(r["lesson"] == lesson and r["name"] == name for r in records):
        return
    now = datetime.now(UTC).isoformat(timespec="seconds")
    _write_records([*records, {"lesson": lesson, "name": name, "passed_at": now}])


def reset_progress(lesson: str | int | None = None) -> None:
    """Forget every passed exercise, or only those of ``lesson`` (e.g. ``"02"`` or ``2``)."""
    if lesson is None:
        path = progress_file()
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            warnings.warn(
                f"Could not delete the progress file {path} ({err}).", ProgressWarning, stacklevel=2
            )
        return
    number = lesson_id(lesson)
    _write_records([r for r in _read_records() if r["lesson"] != number])
