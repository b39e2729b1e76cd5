"""The course as a whole: the lesson list, the instructor edition, executing and rendering.

- :func:`lessons` lists ``notebooks/NN_*.ipynb`` in learning order with their titles.
- :func:`instructor_notebook` turns a learner notebook into the instructor edition: every
  cell tagged ``exercise:NN.name`` gets that exercise's ``solution_code`` in place of its
  ``...`` placeholders (``dpcourse.exercises`` owns the replacement rule).
- :func:`execute_notebook` runs a notebook top to bottom in a fresh kernel, and measures
  its wall time and the kernel's peak resident memory.
- :func:`build_book` executes the instructor edition and renders it to static HTML with an
  index page in lesson order; exercise solutions are folded away in ``<details>``.

The command line exposes these as ``python -m dpcourse course {list,build-instructor,
build-book,run}``; ``make instructor`` and ``make book`` call them.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from dpcourse._files import write_atomic

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
TEMPLATES = Path(__file__).resolve().parent / "templates"
EXERCISE_TAG = re.compile(r"^exercise:(\d\d)\.(\w+)$")
#: Prints the kernel's peak resident memory in bytes. On Linux it reads VmHWM (the peak of
#: this process image): getrusage's ru_maxrss also counts the parent's memory copied at
#: fork, so a kernel started from a big process would report the parent's size.
_PEAK_RSS_PROBE = """\
import re as _re, resource as _r, sys as _s
try:
    with open("/proc/self/status") as _f:
        print(int(_re.search(r"VmHWM:\\s+(\\d+) kB", _f.read()).group(1)) * 1024)
except OSError:
    print(_r.getrusage(_r.RUSAGE_SELF).ru_maxrss * (1 if _s.platform == "darwin" else 1024))
"""


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


def write_notebook(nb: nbformat.NotebookNode, path: Path) -> Path:
    """Write ``nb`` to ``path`` as ``nbformat.write`` would, atomically (``write_atomic``)."""
    text = nbformat.writes(nb, version=4)
    return write_atomic(path, text if text.endswith("\n") else text + "\n")


def build_instructor_edition(out_dir: Path, directory: Path = NOTEBOOKS) -> list[Path]:
    """Write the instructor edition of every lesson into ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for lesson in lessons(directory):
        nb = instructor_notebook(nbformat.read(lesson.path, as_version=4))
        target = out_dir / lesson.path.name
        write_notebook(nb, target)
        written.append(target)
    return written


@dataclass(frozen=True)
class Execution:
    """An executed notebook with its wall time (s) and the kernel's peak RSS (bytes)."""

    notebook: nbformat.NotebookNode
    seconds: float
    peak_rss_bytes: int


def execute_notebook(
    path: Path, *, cwd: Path = NOTEBOOKS, timeout: int = 600, env: dict[str, str] | None = None
) -> Execution:
    """Run ``path`` top to bottom in a fresh ``python3`` kernel started in ``cwd``.

    Raises ``nbclient.exceptions.CellExecutionError`` on the first failing cell. The peak
    RSS is the kernel's ``getrusage`` maximum, read by one extra cell that is removed from
    the returned notebook (VmHWM on Linux). ``env`` adds environment variables for the kernel.
    """
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_PEAK_RSS_PROBE))
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    started = time.perf_counter()
    client.execute(env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - started
    probe = nb.cells.pop()
    peak = int(probe.outputs[0]["text"].strip())
    return Execution(nb, seconds, peak)


def _render(nb: nbformat.NotebookNode, title: str) -> str:
    """HTML for one executed lesson, solutions folded into ``<details>``."""
    from nbconvert import HTMLExporter

    for cell in nb.cells:
        cell.metadata["dpcourse_solution"] = exercise_tag(cell) is not None
    exporter = HTMLExporter(
        template_name="book", extra_template_basedirs=[str(TEMPLATES)], embed_images=True
    )
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    return re.sub(r'href="(\d\d_\w+)\.ipynb', r'href="\1.html', body)


def _index_page(entries: list[Lesson]) -> str:
    rows = "\n".join(
        f'<tr><td>{lesson.number}</td><td><a href="{lesson.html_name}">'
        f"{html.escape(lesson.title)}</a></td><td>{html.escape(lesson.estimated_time)}</td></tr>"
        for lesson in entries
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>dpcourse: differentially private machine learning</title>"
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto;}"
        "td,th{padding:.3em 1em;text-align:left}</style></head><body>"
        "<h1>dpcourse: differentially private machine learning, hands on</h1>"
        "<p>Every lesson below was executed when this site was built. Exercise "
        "solutions are folded: click <em>Show solution</em> to open one.</p>"
        "<table><thead><tr><th>#</th><th>Lesson</th><th>Time</th></tr></thead>"
        f"<tbody>\n{rows}\n</tbody></table></body></html>\n"
    )


@dataclass(frozen=True)
class BookReport:
    """What :func:`build_book` did: pages written and per-lesson execution figures."""

    out_dir: Path
    pages: list[Path]
    executions: dict[str, Execution]


def build_book(out_dir: Path, directory: Path = NOTEBOOKS, timeout: int = 600) -> BookReport:
    """Execute the instructor edition of every lesson and render the course to HTML.

    Writes ``index.html`` (table of contents in lesson order) and one page per lesson;
    raises on any cell error, then checks every internal link (see :func:`broken_links`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = lessons(directory)
    edition = out_dir / "_instructor_edition"
    build_instructor_edition(edition, directory)
    pages, executions = [], {}
    for lesson in entries:
        run = execute_notebook(edition / lesson.path.name, cwd=directory, timeout=timeout)
        executions[lesson.number] = run
        page = out_dir / lesson.html_name
        write_atomic(page, _render(run.notebook, lesson.title))
        write_notebook(run.notebook, edition / lesson.path.name)
        pages.append(page)
    index = out_dir / "index.html"
    write_atomic(index, _index_page(entries))
    pages.insert(0, index)
    broken = broken_links(out_dir)
    if broken:
        raise ValueError("Broken internal links: " + "; ".join(broken))
    return BookReport(out_dir, pages, executions)


_LINK = re.compile(r'(?:href|src)="([^"]+)"')
_ID = re.compile(r'\bid="([^"]+)"')


def broken_links(site: Path) -> list[str]:
    """Internal links in ``site/*.html`` whose file (or ``#anchor`` id) does not exist."""
    site = Path(site)
    ids = {page.name: set(_ID.findall(page.read_text())) for page in site.glob("*.html")}
    broken = []
    for page in sorted(site.glob("*.html")):
        for link in _LINK.findall(page.read_text()):
            if re.match(r"^(?:[a-z]+:|//|data:)", link):
                continue
            target, _, anchor = html.unescape(link).partition("#")
            name = target or page.name
            if target and not (site / target).exists():
                broken.append(f"{page.name} -> {link}")
            elif anchor and name in ids and anchor not in ids[name]:
                broken.append(f"{page.name} -> {link}")
    return broken


def section_seconds(executed: nbformat.NotebookNode) -> list[tuple[str, float]]:
    """Execution seconds per ``## `` section of an executed notebook, in order.

    Uses the timestamps nbclient records on each cell (``metadata.execution``): a cell's
    time is ``shell.execute_reply`` − ``iopub.execute_input``. Cells before the first
    section count under the notebook title.
    """
    from datetime import datetime

    sections: list[tuple[str, float]] = [("(title)", 0.0)]
    for cell in executed.cells:
        if cell.cell_type == "markdown":
            heading = re.search(r"^##\s+(.+)$", cell.source, re.MULTILINE)
            if heading:
                sections.append((heading.group(1).strip(), 0.0))
            continue
        stamps = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in stamps and "shell.execute_reply" in stamps:
            start = datetime.fromisoformat(stamps["iopub.execute_input"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(stamps["shell.execute_reply"].replace("Z", "+00:00"))
            name, seconds = sections[-1]
            sections[-1] = (name, seconds + (end - start).total_seconds())
    return [s for s in sections if s[0] != "(title)" or s[1] > 0]
