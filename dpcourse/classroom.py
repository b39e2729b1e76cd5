"""The course in a classroom: an nbgrader course, the class's progress, the nbgitpuller link.

- :func:`export_nbgrader` writes an nbgrader course directory from the lessons: one
  assignment per lesson with exercises. Each exercise's answer cell keeps the learner's
  ``...`` placeholder and its ``check`` call, and gains the exercise's ``solution_code``
  (what the instructor edition pastes) between ``### BEGIN SOLUTION`` and
  ``### END SOLUTION``; nbgrader removes that region when it generates the released
  notebook, so learners get the learner edition's cell (with an empty line where the
  solution was). After every answer cell
  comes a read-only graded test cell that runs the course's own check
  (:func:`assert_correct`) and raises when the answer does not pass it.
- :func:`class_progress` reads every learner's progress file (a glob of home directories,
  or a folder of collected files) into a learners × lessons table of exercises passed.
- :func:`nbgitpuller_link` builds the link that puts the course into each learner's home
  on a JupyterHub and opens lesson 00.

The command line exposes them as ``python -m dpcourse course export-nbgrader``,
``class-progress`` and ``nbgitpuller-link``.
"""

from __future__ import annotations

import ast
import contextlib
import csv
import glob
import io
import json
import os
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

import nbformat

from dpcourse import exercises
from dpcourse.course import NOTEBOOKS, exercise_tag, lessons
from dpcourse.exercises.tracking import read_progress

#: Points of every graded test cell, the quiz included: an assignment's total score is
#: then the number of its exercises passed, the same count as ``progress()`` and the
#: class view. Instructors can change a cell's points in the source notebook.
POINTS = 1
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
COURSE_ID = "dpcourse"
#: nbgrader's cell metadata format (nbgrader/nbgraderformat/v3.py in nbgrader 0.9.6).
NBGRADER_SCHEMA = 3

NBGRADER_CONFIG = f'''\
"""nbgrader configuration of the dpcourse course.

Written by `python -m dpcourse course export-nbgrader`; run every nbgrader command from
this folder. Re-exporting never overwrites this file, so your changes stay.
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (nbgrader defines get_config when it reads this file)

c.CourseDirectory.course_id = "{COURSE_ID}"

# Each answer cell keeps the learner's `...` placeholder above the solution region, so
# the region is replaced by an empty line: the released cell is the learner edition's.
c.ClearSolutions.code_stub = {{"python": ""}}

# A lesson's cells run in seconds, but a grading machine shared with a class can be
# slow; nbgrader's default of 30 s per cell would score a slow cell as failed.
c.Execute.timeout = 300

# Autograding runs every exercise's check, which records passes in a progress file:
# keep them out of the grader's own ~/.dpcourse/progress.json.
HERE = Path(__file__).resolve().parent
os.environ["DPCOURSE_PROGRESS_FILE"] = str(HERE / "autograde-progress.json")

# Releasing and collecting through nbgrader's exchange: a folder that exists, that every
# learner's server can read and write, and that the learners' nbgrader configuration
# names too. nbgrader 0.9.6's default:
# c.Exchange.root = "/usr/local/share/nbgrader/exchange"
'''


# --------------------------------------------------------------------------- grading
class ExerciseNotPassed(AssertionError):
    """An autograded answer does not pass the course's check (the message says why)."""


def assert_correct(key: str, *answers: Any) -> None:
    """What a graded test cell runs: raise unless ``answers`` pass exercise ``key``'s check.

    ``key`` is ``"<lesson>.<name>"`` (``"00.fraud_rate"``). The error message is the
    feedback the learner's own ``check`` shows ("Incorrect:" with the matched mistake,
    "Not attempted yet — ..."), never the solution. Nothing is recorded in a progress
    file, and warnings while checking are silenced: nbgrader scores a test cell that
    writes to stderr as failed.
    """
    exercise = exercises.from_tag(f"exercise:{key}")
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        result = exercise.evaluate(*answers)
    if not result.passed:
        raise ExerciseNotPassed(result.to_message().text())
    print(f"Exercise {key} passes the course's check.")


def _is_check_call(node: ast.stmt, name: str) -> bool:
    """Whether ``node`` is the statement ``<namespace>.<name>.check(...)``."""
    call = node.value if isinstance(node, ast.Expr) else None
    func = call.func if isinstance(call, ast.Call) else None
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "check"
        and isinstance(func.value, ast.Attribute)
        and func.value.attr == name
    )


def answer_source(exercise: exercises.Exercise, source: str) -> str:
    """The autograded answer cell: the learner's cell with the marked solution before ``check``.

    The learner's placeholder lines stay above the region, so the notebook released by
    nbgrader (which replaces the region with an empty line) holds the learner edition's
    cell, and the source notebook runs the placeholder, then the solution, then the check.
    """
    checks = [node for node in ast.parse(source).body if _is_check_call(node, exercise.name)]
    if not checks:
        raise ValueError(
            f"The cell tagged {exercise.tag} has no `ex.{exercise.name}.check(...)` call; "
            "the answer cell must end with the exercise's check."
        )
    lines = source.splitlines()
    at = checks[0].lineno - 1
    solution = exercise.solution_code.strip("\n").splitlines()
    return "\n".join([*lines[:at], BEGIN_SOLUTION, *solution, END_SOLUTION, *lines[at:]])


def graded_test_source(exercise: exercises.Exercise) -> str:
    """The read-only graded test cell of ``exercise``: the course's check, raising when wrong."""
    answers = ", ".join(exercise.answer_names)
    return (
        f"# Graded test ({POINTS} point, read-only): the course's check of exercise "
        f"{exercise.key}.\n"
        "from dpcourse.classroom import assert_correct\n"
        "\n"
        f'assert_correct("{exercise.key}", {answers})'
    )


def _nbgrader_metadata(grade_id: str, *, solution: bool, grade: bool) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "grade": grade,
        "grade_id": grade_id,
        "locked": grade,
        "schema_version": NBGRADER_SCHEMA,
        "solution": solution,
        "task": False,
    }
    if grade:
        meta["points"] = POINTS
    return meta


def nbgrader_notebook(nb: nbformat.NotebookNode, lesson: str) -> nbformat.NotebookNode:
    """The nbgrader source notebook of learner notebook ``nb`` (lesson ``lesson``).

    Every cell tagged ``exercise:NN.name`` becomes an autograded answer cell (grade id
    ``<name>_answer``) followed by a graded test cell (grade id ``<name>``, ``POINTS``
    points). Raises ``ValueError`` when a tag names no exercise of the lesson, an
    exercise has two answer cells, or one of the lesson's exercises has none.
    """
    out = nbformat.from_dict(json.loads(json.dumps(nb)))
    expected = {e.key for e in exercises.load(lesson)}
    seen: set[str] = set()
    cells = []
    for cell in out.cells:
        tag = exercise_tag(cell) if cell.cell_type == "code" else None
        if tag is None:
            cells.append(cell)
            continue
        exercise = exercises.from_tag(tag)
        if exercise.key not in expected or exercise.key in seen:
            raise ValueError(
                f"Lesson {lesson}'s notebook has a cell tagged {tag}, which is another "
                "lesson's exercise or a second answer cell for it; tag each exercise once."
            )
        seen.add(exercise.key)
        cell.source = answer_source(exercise, cell.source)
        cell.outputs, cell.execution_count = [], None
        cell.metadata["nbgrader"] = _nbgrader_metadata(
            f"{exercise.name}_answer", solution=True, grade=False
        )
        test = nbformat.v4.new_code_cell(graded_test_source(exercise))
        test.metadata["nbgrader"] = _nbgrader_metadata(exercise.name, solution=False, grade=True)
        cells += [cell, test]
    if seen != expected:
        raise ValueError(
            f"Lesson {lesson}'s notebook has no answer cell for "
            f"{', '.join(sorted(expected - seen))}; tag one code cell per exercise "
            "(see dpcourse/exercises/__init__.py)."
        )
    out.cells = cells
    return out


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}-", delete=False
    ) as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)


@dataclass(frozen=True)
class NbgraderExport:
    """What :func:`export_nbgrader` wrote: the course folder, its configuration (and whether
    it was written now or kept), and per assignment its source notebook and points."""

    out_dir: Path
    config: Path
    config_written: bool
    notebooks: dict[str, Path]
    points: dict[str, int]


def export_nbgrader(out_dir: str | Path, directory: Path = NOTEBOOKS) -> NbgraderExport:
    """Write an nbgrader course to ``out_dir``: ``nbgrader_config.py`` and
    ``source/<NN_lesson>/<NN_lesson>.ipynb`` for every lesson with exercises.

    Source notebooks are replaced (re-export after a course update); an existing
    ``nbgrader_config.py`` is kept, so an instructor's settings survive.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"out must be a folder for the nbgrader course, but {out_dir} is a file.")
    with_exercises = set(exercises.lessons())
    notebooks, points = {}, {}
    for lesson in lessons(directory):
        if lesson.number not in with_exercises:
            continue
        source = nbgrader_notebook(nbformat.read(lesson.path, as_version=4), lesson.number)
        assignment = lesson.path.stem
        target = out_dir / "source" / assignment / lesson.path.name
        _write_atomically(target, nbformat.writes(source))
        notebooks[assignment] = target
        points[assignment] = sum(
            c.metadata["nbgrader"]["points"]
            for c in source.cells
            if c.metadata.get("nbgrader", {}).get("grade")
        )
    config = out_dir / "nbgrader_config.py"
    written = not config.exists()
    if written:
        _write_atomically(config, NBGRADER_CONFIG)
    return NbgraderExport(out_dir, config, written, notebooks, points)


# --------------------------------------------------------------------------- class view
Status = Literal["ok", "missing", "damaged", "unreadable"]
_NOTES = {
    "missing": "no progress file (nothing passed yet, or progress kept elsewhere)",
    "damaged": "damaged progress file",
    "unreadable": "cannot read the progress file",
}


@dataclass(frozen=True)
class LearnerProgress:
    """One learner's row: exercises passed per lesson (empty when the file could not be read)."""

    learner: str
    path: Path
    status: Status
    passed: dict[str, int] = field(default_factory=dict)
    problem: str = ""

    @property
    def total(self) -> int | None:
        return sum(self.passed.values()) if self.status in ("ok", "missing") else None

    @property
    def note(self) -> str:
        if self.status == "ok":
            return ""
        return f"{_NOTES[self.status]}: {self.problem}" if self.problem else _NOTES[self.status]


@dataclass(frozen=True)
class ClassProgress:
    """The class view: per lesson its exercise count, per learner the exercises passed."""

    lessons: dict[str, int]
    titles: dict[str, str]
    learners: list[LearnerProgress]

    def complete(self, lesson: str) -> int:
        """How many learners passed every exercise of ``lesson``."""
        return sum(learner.passed.get(lesson) == self.lessons[lesson] for learner in self.learners)

    def table(self) -> str:
        """A plain-text table: one row per learner, one column per lesson, a total, a note."""
        rows = [
            ["learner", *self.lessons, "total", "note"],
            ["(exercises)", *map(str, self.lessons.values()), str(sum(self.lessons.values())), ""],
        ]
        for learner in self.learners:
            known = learner.total is not None
            counts = [str(learner.passed[n]) if known else "?" for n in self.lessons]
            total = str(learner.total) if known else "?"
            rows.append([learner.learner, *counts, total, learner.note])
        rows.append(["(complete)", *(str(self.complete(n)) for n in self.lessons), "", ""])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        lines = [
            "  ".join(
                [row[0].ljust(widths[0])]
                + [cell.rjust(width) for cell, width in zip(row[1:-1], widths[1:], strict=True)]
                + [row[-1]]
            ).rstrip()
            for row in rows
        ]
        lines.append(
            f"{len(self.learners)} learners; (complete): learners who passed every exercise "
            "of the lesson; ?: progress file not readable."
        )
        return "\n".join(lines)

    def to_csv(self) -> str:
        """CSV with columns ``learner, status, <lessons...>, total, problem``."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["learner", "status", *self.lessons, "total", "problem"])
        for learner in self.learners:
            counts = [learner.passed.get(n, "") for n in self.lessons]
            total = "" if learner.total is None else learner.total
            writer.writerow([learner.learner, learner.status, *counts, total, learner.problem])
        return out.getvalue()

    def to_json(self) -> dict[str, Any]:
        """One JSON-ready object: ``lessons`` (title, exercises, complete) and ``learners``."""
        return {
            "lessons": {
                n: {"title": self.titles[n], "exercises": count, "complete": self.complete(n)}
                for n, count in self.lessons.items()
            },
            "learners": [
                {
                    "learner": learner.learner,
                    "file": str(learner.path),
                    "status": learner.status,
                    "passed": learner.passed if learner.total is not None else None,
                    "total": learner.total,
                    "problem": learner.problem,
                }
                for learner in self.learners
            ],
        }


def progress_files_in_homes(homes: str) -> dict[str, Path]:
    """``{learner: progress file}`` for every directory matching the glob ``homes``.

    The learner is the home directory's name; the file is where the course keeps it,
    ``<home>/.dpcourse/progress.json`` (the default of ``progress_file()``).
    """
    found = sorted(Path(p) for p in glob.glob(os.path.expanduser(homes)) if Path(p).is_dir())
    if not found:
        raise ValueError(
            f"homes matches no directory: {homes!r}; give a glob of the learners' home "
            "directories, such as '/home/*'."
        )
    names = [home.name for home in found]
    return {
        (home.name if names.count(home.name) == 1 else str(home)): home
        / ".dpcourse"
        / "progress.json"
        for home in found
    }


def collected_progress_files(directory: str | Path) -> dict[str, Path]:
    """``{learner: file}`` for every ``<learner>.json`` in ``directory`` (collected copies)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ValueError(
            f"dir must be a folder of collected progress files, <learner>.json each; "
            f"{directory} is not a folder."
        )
    files = sorted(folder.glob("*.json"))
    if not files:
        raise ValueError(f"dir {directory} holds no <learner>.json progress files.")
    return {path.stem: path for path in files}


def class_progress(files: Mapping[str, Path]) -> ClassProgress:
    """Read every learner's progress file (``{learner: path}``) into the class view.

    Only exercises that still exist count, as in ``progress()``. A missing file counts as
    nothing passed (status ``missing``); a damaged or unreadable one is reported with its
    reason and no counts, never guessed.
    """
    namespaces = {n: exercises.load(n) for n in exercises.lessons()}
    keys = {n: {e.key for e in ns} for n, ns in namespaces.items()}
    rows = []
    for learner, path in files.items():
        status: Status = "ok"
        problem, passed = "", {}
        try:
            done = read_progress(path)
        except FileNotFoundError:
            status, done = "missing", {}
        except ValueError as err:
            status, problem = "damaged", str(err)
        except OSError as err:
            status, problem = "unreadable", err.strerror or str(err)
        if status in ("ok", "missing"):
            passed = {n: len(keys[n] & done.keys()) for n in namespaces}
        rows.append(LearnerProgress(learner, Path(path), status, passed, problem))
    return ClassProgress(
        lessons={n: len(ns) for n, ns in namespaces.items()},
        titles={n: ns.title for n, ns in namespaces.items()},
        learners=rows,
    )


# --------------------------------------------------------------------------- distribution
def nbgitpuller_link(repo: str, branch: str = "main", hub: str = "", targetpath: str = "") -> str:
    """The nbgitpuller link that clones (or updates) the course and opens lesson 00.

    ``{hub}/hub/user-redirect/git-pull?repo=…&branch=…&targetpath=…&urlpath=…``, every
    value URL-encoded. The course goes to ``~/<targetpath>`` (default: the repository's
    name) and JupyterLab opens ``lab/tree/<targetpath>/notebooks/00_welcome.ipynb``.
    Without ``hub`` the link starts at ``/hub/``: append it to the hub's address.
    """
    name = targetpath or repo.strip().rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    if targetpath and (targetpath.startswith(("/", ".")) or any(c.isspace() for c in targetpath)):
        raise ValueError(
            f"targetpath must be a folder name in the learner's home, such as dpcourse, "
            f"got {targetpath!r}."
        )
    if not repo.strip() or not name or any(ch.isspace() for ch in repo.strip()):
        raise ValueError(
            f"repo must be the course's git URL, such as https://github.com/org/dpcourse, "
            f"got {repo!r}."
        )
    if not branch.strip() or any(ch.isspace() for ch in branch):
        raise ValueError(f"branch must be a git branch name such as main, got {branch!r}.")
    if hub and not hub.startswith(("https://", "http://")):
        raise ValueError(
            f"hub must be the hub's address, such as https://hub.example.org, got {hub!r}."
        )
    first = lessons()[0].path.relative_to(NOTEBOOKS.parent).as_posix()
    query = urlencode(
        {
            "repo": repo.strip(),
            "branch": branch,
            "targetpath": name,
            "urlpath": f"lab/tree/{name}/{first}",
        },
        safe="",
    )
    return f"{hub.rstrip('/')}/hub/user-redirect/git-pull?{query}"
