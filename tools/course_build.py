"""Authoring tools: the instructor edition, the executed and rendered book, lesson timings.

    python tools/course_build.py instructor --out instructor/edition   # make instructor
    python tools/course_build.py book --out _book                      # make book
    python tools/course_build.py run [--json]     # each lesson's time and peak memory
    python tools/course_build.py links _book      # internal links that lead nowhere

- :func:`build_instructor_edition` writes every lesson with its exercise solutions filled
  in (``dpcourse.course.instructor_notebook``, which the package keeps for the nbgrader
  export).
- :func:`execute_notebook` runs a notebook top to bottom in a fresh kernel, and measures
  its wall time and the kernel's peak resident memory.
- :func:`build_book` executes the instructor edition and renders it to static HTML with
  nbconvert: solutions folded into ``<details>``, each figure's ``alt`` text from its
  cell's metadata, previous/next links on every page and an index that lists every
  section of every lesson; then checks every internal link.

None of this runs in a learner's kernel, so it lives here rather than in ``dpcourse``.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat

from dpcourse.course import NOTEBOOKS, Lesson, exercise_tag, instructor_notebook, lessons

TEMPLATES = Path(__file__).resolve().parent / "templates"
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


def build_instructor_edition(out_dir: Path, directory: Path = NOTEBOOKS) -> list[Path]:
    """Write the instructor edition of every lesson into ``out_dir``; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for lesson in lessons(directory):
        nb = instructor_notebook(nbformat.read(lesson.path, as_version=4))
        target = out_dir / lesson.path.name
        nbformat.write(nb, target)
        written.append(target)
    return written


#: Longest single wait on a kernel channel, in seconds (the cell timeout still applies).
POLL_SLICE = 2.0


def _send_through_asyncio(channel: Any) -> None:
    """Send on ``channel`` through its asyncio socket, so a waiting reply is not lost.

    The cause of the book's stall: while nbclient waits for a cell's ``execute_reply``
    (one asyncio poll on the shell socket, woken by libzmq's edge-triggered file
    descriptor), an ``ipywidgets`` Output widget (lesson 03's ``interact``) makes nbclient
    send a ``comm_msg`` on that same socket. jupyter_client's ``Session.send`` sends
    through a blocking shadow of the socket, around pyzmq's asyncio layer; libzmq's send
    processes the socket's pending commands, which can consume the descriptor's edge for
    a reply that has just arrived, and nothing then asks the socket again. The reply sits
    there until the poll times out (the cell timeout, 600 s) and pyzmq polls once more:
    the build stalls for exactly the cell timeout and goes on. Sent through the asyncio
    socket, pyzmq re-checks for waiting receivers after every send.
    """
    session, socket = channel.session, channel.socket

    def send(msg: dict) -> None:
        socket.send_multipart(session.serialize(msg))

    channel.send = send


def _poll_in_slices(channel: Any) -> None:
    """Make ``channel.get_msg(timeout=T)`` wait in slices of :data:`POLL_SLICE` seconds.

    Every new poll first asks the socket whether a message is waiting, so a wake-up lost
    for any other reason costs at most one slice instead of the cell timeout; which
    messages are read, and the overall timeout, do not change.
    """
    from queue import Empty

    get_msg = channel.get_msg

    async def sliced_get_msg(timeout: float | None = None) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await get_msg(timeout=POLL_SLICE if left is None else min(left, POLL_SLICE))
            except Empty:
                if left is not None and left <= POLL_SLICE:
                    raise

    channel.get_msg = sliced_get_msg


def _course_client_class() -> type:
    from nbclient import NotebookClient

    class CourseClient(NotebookClient):
        """nbclient's NotebookClient without lost wake-ups: shell messages are sent through
        the asyncio socket, and the shell and iopub waits poll in slices."""

        async def async_start_new_kernel_client(self) -> Any:
            kc = await super().async_start_new_kernel_client()
            _send_through_asyncio(kc.shell_channel)
            _poll_in_slices(kc.shell_channel)
            _poll_in_slices(kc.iopub_channel)
            return kc

    return CourseClient


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
    RSS is the kernel's, read by one extra cell that is removed from the returned notebook
    (VmHWM on Linux). ``env`` adds environment variables for the kernel.
    """
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(_PEAK_RSS_PROBE))
    client = _course_client_class()(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    started = time.perf_counter()
    client.execute(env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - started
    probe = nb.cells.pop()
    peak = int(probe.outputs[0]["text"].strip())
    return Execution(nb, seconds, peak)


_SECTION = re.compile(r'<h2 id="([^"]+)"[^>]*>(.*?)</h2>', re.DOTALL)


def sections(page: str) -> list[tuple[str, str]]:
    """The ``(id, text)`` of every ``<h2>`` section heading of a rendered page, in order."""
    found = []
    for anchor, inner in _SECTION.findall(page):
        text = re.sub(r"<[^>]+>", "", re.sub(r'<a class="anchor-link".*?</a>', "", inner))
        found.append((html.unescape(anchor), html.unescape(text).strip()))
    return found


def _render(nb: nbformat.NotebookNode, title: str, nav: dict[str, dict | None]) -> str:
    """HTML for one executed lesson: solutions folded, alt text, previous/next links."""
    from nbconvert import HTMLExporter

    for cell in nb.cells:
        cell.metadata["dpcourse_solution"] = exercise_tag(cell) is not None
    exporter = HTMLExporter(
        template_name="book", extra_template_basedirs=[str(TEMPLATES)], embed_images=True
    )
    resources = {"metadata": {"name": title}, "dpcourse_nav": nav}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    return re.sub(r'href="(\d\d_\w+)\.ipynb', r'href="\1.html', body)


def _navigation(entries: list[Lesson]) -> list[dict[str, dict | None]]:
    """For each lesson, its previous and next lesson as ``{"href", "title"}`` (or None)."""

    def link(i: int) -> dict | None:
        if 0 <= i < len(entries):
            return {"href": entries[i].html_name, "title": entries[i].title}
        return None

    return [{"previous": link(i - 1), "next": link(i + 1)} for i in range(len(entries))]


def _index_page(entries: list[Lesson], toc: dict[str, list[tuple[str, str]]]) -> str:
    """The table of contents: every lesson, its time, and a link to each of its sections."""
    items = []
    for lesson in entries:
        subsections = "".join(
            f'<li><a href="{lesson.html_name}#{html.escape(anchor)}">{html.escape(text)}</a></li>'
            for anchor, text in toc.get(lesson.number, [])
        )
        items.append(
            f'<li><a href="{lesson.html_name}">{html.escape(lesson.title)}</a>'
            f' <span class="time">({html.escape(lesson.estimated_time)})</span>'
            f"<ol>{subsections}</ol></li>"
        )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>dpcourse: differentially private machine learning</title>"
        "<style>body{font-family:sans-serif;max-width:50em;margin:2em auto;}"
        "ol.lessons>li{margin:.8em 0} ol ol{list-style:none;padding-left:1.2em}"
        ".time{color:#555}</style></head><body>"
        "<h1>dpcourse: differentially private machine learning, hands on</h1>"
        "<p>Every lesson below was executed when this site was built. Exercise "
        "solutions are folded: click <em>Show solution</em> to open one.</p>"
        '<nav aria-label="Contents"><h2>Contents</h2><ol class="lessons">\n'
        + "\n".join(items)
        + "\n</ol></nav></body></html>\n"
    )


@dataclass(frozen=True)
class BookReport:
    """What :func:`build_book` did: pages written and per-lesson execution figures."""

    out_dir: Path
    pages: list[Path]
    executions: dict[str, Execution]


def build_book(out_dir: Path, directory: Path = NOTEBOOKS, timeout: int = 600) -> BookReport:
    """Execute the instructor edition of every lesson and render the course to HTML.

    Writes ``index.html`` (every lesson and section, in order) and one page per lesson with
    previous/next links; raises on any cell error, then checks every internal link (see
    :func:`broken_links`).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = lessons(directory)
    edition = out_dir / "_instructor_edition"
    build_instructor_edition(edition, directory)
    pages, executions, toc = [], {}, {}
    for lesson, nav in zip(entries, _navigation(entries), strict=True):
        run = execute_notebook(edition / lesson.path.name, cwd=directory, timeout=timeout)
        executions[lesson.number] = run
        page = out_dir / lesson.html_name
        text = _render(run.notebook, lesson.title, nav)
        page.write_text(text)
        toc[lesson.number] = sections(text)
        nbformat.write(run.notebook, edition / lesson.path.name)
        pages.append(page)
    index = out_dir / "index.html"
    index.write_text(_index_page(entries, toc))
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
    ids = {
        page.name: {html.unescape(i) for i in _ID.findall(page.read_text())}
        for page in site.glob("*.html")
    }
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
    found: list[tuple[str, float]] = [("(title)", 0.0)]
    for cell in executed.cells:
        if cell.cell_type == "markdown":
            heading = re.search(r"^##\s+(.+)$", cell.source, re.MULTILINE)
            if heading:
                found.append((heading.group(1).strip(), 0.0))
            continue
        stamps = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in stamps and "shell.execute_reply" in stamps:
            start = datetime.fromisoformat(stamps["iopub.execute_input"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(stamps["shell.execute_reply"].replace("Z", "+00:00"))
            name, seconds = found[-1]
            found[-1] = (name, seconds + (end - start).total_seconds())
    return [s for s in found if s[0] != "(title)" or s[1] > 0]


def _time_lessons(quiet: bool) -> dict[str, dict]:
    results = {}
    for lesson in lessons():
        run = execute_notebook(lesson.path)
        results[lesson.number] = {
            "seconds": round(run.seconds, 1),
            "peak_rss_mib": round(run.peak_rss_bytes / 2**20),
            "sections": {name: round(t, 1) for name, t in section_seconds(run.notebook)},
        }
        if not quiet:
            print(f"{lesson.path.name}: {results[lesson.number]}", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/course_build.py", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("instructor", help="write the instructor edition").add_argument(
        "--out", type=Path, default=Path("instructor/edition")
    )
    sub.add_parser("book", help="execute and render the course").add_argument(
        "--out", type=Path, default=Path("_book")
    )
    sub.add_parser("run", help="time every lesson").add_argument("--json", action="store_true")
    sub.add_parser("links", help="list broken internal links").add_argument("site", type=Path)
    args = parser.parse_args(argv)
    if args.action == "instructor":
        for path in build_instructor_edition(args.out):
            print(path)
    elif args.action == "book":
        report = build_book(args.out)
        for number, run in report.executions.items():
            print(f"lesson {number}: {run.seconds:.1f} s, {run.peak_rss_bytes / 2**20:.0f} MiB")
        print(report.out_dir / "index.html")
    elif args.action == "run":
        results = _time_lessons(quiet=args.json)
        if args.json:
            print(json.dumps(results))
    else:
        broken = broken_links(args.site)
        print("\n".join(broken) or "no broken links")
        return 1 if broken else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
