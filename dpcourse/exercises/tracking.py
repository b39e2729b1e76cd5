"""The learner's progress: which exercises they have passed, kept in a small local JSON file.

The file lives at ``~/.dpcourse/progress.json`` unless the environment variable
``DPCOURSE_PROGRESS_FILE`` names another path. It is never sent anywhere. It holds::

    {"version": 1, "passed": [{"lesson": "02", "name": "clip",
                               "passed_at": "2025-01-31T10:15:00+00:00"}, ...]}

with one record per exercise, stamped with the first time it was passed (UTC). Reading
or writing problems (a read-only home directory on a shared JupyterHub, a full disk, a
damaged file) never stop an exercise from being checked: they raise a
:class:`ProgressWarning`, once, and nothing already recorded is lost:

- Every write replaces the file atomically (:func:`dpcourse._files.write_atomic`), so a
  full disk or a crash leaves the previous file whole.
- Each record is judged on its own: a record without ``lesson``, ``name`` or
  ``passed_at`` is dropped, the others are kept. A file that is not valid JSON (cut off,
  overwritten by an editor) is searched for every complete record it still holds.
- Before such a file is rewritten, it is kept aside, unchanged, as
  ``progress.json.damaged-<UTC time>``, and the warning names that copy. A file that
  cannot be read at all (permissions) is never written over.
- Several kernels of one learner may record at once: each read-modify-write holds an
  exclusive lock on the sidecar file ``progress.json.lock`` (``fcntl.flock``; ``msvcrt``
  on Windows), so no pass is lost.

:func:`read_progress` is the public reader for any progress file (the instructor's class
view reads many): it returns the records it can, and warns instead of raising;
:func:`load_progress` returns the same records with the file's status and neither warns
nor raises.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dpcourse._files import write_atomic

from .ids import lesson_id

ENV_VAR = "DPCOURSE_PROGRESS_FILE"
FILE_VERSION = 1
RECORD_KEYS = ("lesson", "name", "passed_at")

Record = dict[str, str]


class ProgressWarning(UserWarning):
    """The progress file could not be read or written; checking carries on without it."""


def progress_file() -> Path:
    """The progress file: ``$DPCOURSE_PROGRESS_FILE`` if set, else ``~/.dpcourse/progress.json``."""
    override = os.environ.get(ENV_VAR)
    return Path(override).expanduser() if override else Path.home() / ".dpcourse" / "progress.json"


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class ProgressContents:
    """What a progress file holds: its good records, and what was wrong with the rest.

    ``status`` is ``"ok"`` (a clean file), ``"missing"`` (no file: no records),
    ``"damaged"`` (``records`` are the ones recovered; ``problem`` says what was dropped)
    or ``"unreadable"`` (no records could be read: permissions, a directory, ...).
    """

    records: list[Record]
    status: str = "ok"
    problem: str | None = None

    @property
    def passed(self) -> dict[str, str]:
        """The records as ``{"<lesson>.<name>": passed_at}``."""
        return {f"{r['lesson']}.{r['name']}": r["passed_at"] for r in self.records}


def _is_record(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(value.get(k), str) for k in RECORD_KEYS)


def _salvage(text: str) -> list[object]:
    """Every JSON object that still decodes in a damaged file, in order."""
    decoder, found, position = json.JSONDecoder(), [], 0
    for match in re.finditer(r"\{", text):
        if match.start() < position:
            continue
        try:
            value, end = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if _is_record(value):
            found.append(value)
            position = end
    return found


def _unique(records: list[Record]) -> list[Record]:
    """The first record of each exercise, with only the known keys."""
    seen, kept = set(), []
    for record in records:
        key = (record["lesson"], record["name"])
        if key not in seen:
            seen.add(key)
            kept.append({k: record[k] for k in RECORD_KEYS})
    return kept


def load_progress(path: str | os.PathLike[str]) -> ProgressContents:
    """Read the progress file at ``path`` without raising or warning: the records it
    holds (recovered from a damaged file) and its status (see :class:`ProgressContents`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ProgressContents([], "missing")
    except (OSError, UnicodeDecodeError) as err:
        return ProgressContents([], "unreadable", f"it cannot be read ({err})")
    try:
        data = json.loads(text)
        candidates = data["passed"]
        if not isinstance(candidates, list):
            raise TypeError("'passed' is not a list")
    except (ValueError, KeyError, TypeError) as err:
        records = _unique(_salvage(text))
        return ProgressContents(records, "damaged", f"it is not a valid progress file ({err})")
    good = [r for r in candidates if _is_record(r)]
    if len(good) == len(candidates):
        return ProgressContents(_unique(good))
    bad = len(candidates) - len(good)
    problem = f"{bad} record(s) lack a lesson, name or passed_at and were dropped"
    return ProgressContents(_unique(good), "damaged", problem)


_warned: set[tuple[str, str]] = set()


def _warn_once(path: Path, message: str) -> None:
    """Warn with ``message`` unless this exact message was given for ``path`` already."""
    key = (str(path), message)
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, ProgressWarning, stacklevel=4)


def read_progress(path: str | os.PathLike[str]) -> list[Record]:
    """The pass records in the progress file at ``path``; never raises.

    Returns ``[{"lesson": "02", "name": "clip", "passed_at": "..."}, ...]``, one per
    exercise, in file order. An absent file gives ``[]``; an unreadable or damaged one
    gives whatever complete records it still holds and a :class:`ProgressWarning`
    (once per file and problem). The file is only read, never changed.
    """
    path = Path(path)
    contents = load_progress(path)
    if contents.problem:
        _warn_once(
            path,
            f"Could not read the progress file {path} completely: {contents.problem}; "
            f"using the {len(contents.records)} record(s) it still holds.",
        )
    return contents.records


# --------------------------------------------------------------------------- writing


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` (created if needed) for the block."""
    lock_path = path.with_name(path.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # Windows
            import msvcrt

            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _keep_aside(path: Path, aside: Path) -> None:
    """Keep ``path``'s current content as ``aside`` (a hard link: needs no disk space;
    a copy where links are not supported). The original stays in place until the new
    file atomically replaces it."""
    try:
        os.link(path, aside)
    except OSError:
        shutil.copy2(path, aside)


def _not_saved(path: Path, reason: object) -> None:
    _warn_once(
        path,
        f"Could not save your progress to {path} ({reason}). Your answers are still "
        f"checked; set {ENV_VAR} to a writable path to keep a record.",
    )


def _update(change: str, edit: Callable[[list[Record]], list[Record] | None]) -> None:
    """Read, ``edit`` and write the progress file under its lock; problems only warn.

    ``edit(records)`` returns the new list, or None for "nothing to write". A damaged file
    is kept aside before it is replaced; an unreadable one is left alone.
    """
    path = progress_file()
    try:
        with _locked(path):
            contents = load_progress(path)
            if contents.status == "unreadable":
                _not_saved(path, contents.problem)
                return
            records = edit(contents.records)
            if records is None:
                return
            if contents.problem:
                stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
                aside = path.with_name(f"{path.name}.damaged-{stamp}")
                _keep_aside(path, aside)
                _warn_once(
                    path,
                    f"Progress file {path}: {contents.problem}. The original is kept as "
                    f"{aside}; {len(contents.records)} record(s) were recovered and "
                    f"{change}.",
                )
            text = json.dumps({"version": FILE_VERSION, "passed": records}, indent=1)
            write_atomic(path, text + "\n")
    except OSError as err:
        _not_saved(path, err)


def passed_exercises() -> dict[str, str]:
    """Every passed exercise as ``{"<lesson>.<name>": passed_at}`` (ISO 8601, UTC)."""
    return ProgressContents(read_progress(progress_file())).passed


def record_pass(lesson: str, name: str) -> None:
    """Record that exercise ``lesson.name`` was passed, keeping the first pass time."""

    def add(records: list[Record]) -> list[Record] | None:
        if any(r["lesson"] == lesson and r["name"] == name for r in records):
            return None
        now = datetime.now(UTC).isoformat(timespec="seconds")
        return [*records, {"lesson": lesson, "name": name, "passed_at": now}]

    _update("this pass was added", add)


def reset_progress(lesson: str | int | None = None) -> None:
    """Forget every passed exercise, or only those of ``lesson`` (e.g. ``"02"`` or ``2``)."""
    if lesson is None:
        path = progress_file()
        if not path.exists():
            return
        try:
            with _locked(path):
                path.unlink(missing_ok=True)
        except OSError as err:
            warnings.warn(
                f"Could not delete the progress file {path} ({err}).", ProgressWarning, stacklevel=2
            )
        return
    number = lesson_id(lesson)
    _update(
        f"lesson {number}'s records were removed",
        lambda records: [r for r in records if r["lesson"] != number],
    )
