"""The course as a whole: the lesson list and the instructor edition of a notebook.

- :func:`lessons` lists ``notebooks/NN_*.ipynb`` in learning order with their titles.
- :func:`instructor_notebook` turns a learner notebook into the instructor edition: every
  cell tagged ``exercise:NN.name`` gets that exercise's ``solution_code`` in place of its
  ``...`` placeholders (``dpcourse.exercises`` owns the replacement rule).

``python -m dpcourse course list`` prints the lessons. The authoring tools that write files
from these (the instructor edition, the rendered book, its link check, lesson timings) live
in ``tools/course_build.py`` behind ``make instructor`` and ``make book``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXERCISE_TAG = re.compile(r"^exercise:(\d\d)\.(\w+)$")


@dataclass(frozen=True)
class Lesson:
    """One notebook of the course: its number, file, title and stated time."""

    number: str
    path: Path
    title: str
    estimated_time: str

    @property
    def html_name(self) -> str:
        return self.path.with_suffix(".html").name


def _markdown(nb: nbformat.NotebookNode) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def lessons(directory: Path = NOTEBOOKS) -> list[Lesson]:
    """The lessons in ``directory`` (``NN_*.ipynb``), sorted by number."""
    found = []
    for path in sorted(Path(directory).glob("[0-9][0-9]_*.ipynb")):
        text = _markdown(nbformat.read(path, as_version=4))
        title = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
        minutes = re.search(r"\*\*Estimated time:?\*\*:?\s*([^·\n*]+)", text)
        found.append(
            Lesson(
                number=path.name[:2],
                path=path,
                title=title.group(1).strip() if title else path.stem,
                estimated_time=minutes.group(1).strip().rstrip(".") if minutes else "",
            )
        )
    return found


def exercise_tag(cell: nbformat.NotebookNode) -> str | None:
    """The cell's ``exercise:NN.name`` tag, or None."""
    for tag in cell.get("metadata", {}).get("tags", []):
        if EXERCISE_TAG.match(tag):
            return tag
    return None


def instructor_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of learner notebook ``nb`` with every exercise cell's solution filled in.

    Raises ``ValueError`` if a tag names an exercise that ``dpcourse.exercises`` does not
    define, so a renamed exercise cannot silently leave a blank in the instructor edition.
    """
    from dpcourse import exercises

    out = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in out.cells:
        tag = exercise_tag(cell) if cell.cell_type == "code" else None
        if tag is None:
            continue
        try:
            exercise = exercises.from_tag(tag)
        except (KeyError, ValueError) as err:
            raise ValueError(f"Cell tag {tag!r} names no known exercise: {err}") from None
        cell.source = exercise.instructor_cell(cell.source)
    return out
