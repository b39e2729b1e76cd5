"""The course as a whole: lesson list, instructor edition, the executed and rendered book.

The lesson list and the instructor edition of a notebook are in the package
(``dpcourse.course``); writing the editions, executing and rendering the book are the
authoring tools in ``tools/course_build.py``.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest

from dpcourse import course, exercises

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import course_build  # noqa: E402


def _learner_notebook() -> nbformat.NotebookNode:
    exercise = next(iter(exercises.load("00")))
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 99 · Test\n\n**Estimated time:** 5 minutes"),
        nbformat.v4.new_code_cell(
            "\n".join(f"{name} = ...  # your answer" for name in exercise.answer_names)
            + f"\nex.{exercise.name}.check({', '.join(exercise.answer_names)})"
        ),
    ]
    nb.cells[1].metadata["tags"] = [exercise.tag]
    return nb, exercise


def test_lessons_are_listed_in_order_with_titles():
    found = course.lessons()
    numbers = [lesson.number for lesson in found]
    assert numbers == sorted(numbers) and numbers[0] == "00"
    assert all(lesson.title and lesson.estimated_time for lesson in found)


def test_instructor_notebook_fills_the_solution_and_keeps_the_check():
    nb, exercise = _learner_notebook()
    filled = course.instructor_notebook(nb)
    source = filled.cells[1].source
    assert "..." not in source.split("\n")[0]
    assert exercise.solution_code.strip().splitlines()[0] in source
    assert f"ex.{exercise.name}.check(" in source
    assert "= ..." in nb.cells[1].source, "the learner notebook itself is unchanged"


def test_instructor_notebook_rejects_an_unknown_exercise():
    nb, _ = _learner_notebook()
    nb.cells[1].metadata["tags"] = ["exercise:00.no_such_exercise"]
    with pytest.raises(ValueError, match="no_such_exercise"):
        course.instructor_notebook(nb)


def test_every_exercise_tag_in_the_notebooks_is_known_and_every_exercise_is_used():
    tags = {
        course.exercise_tag(cell)
        for lesson in course.lessons()
        for cell in nbformat.read(lesson.path, as_version=4).cells
    } - {None}
    known = {e.tag for e in exercises.all_exercises()}
    assert tags <= known, tags - known
    in_notebooks = {lesson.number for lesson in course.lessons()}
    unused = {t for t in known if t.split(":")[1][:2] in in_notebooks} - tags
    assert not unused, f"exercises defined but never asked in a notebook: {sorted(unused)}"


def test_broken_links_are_found(tmp_path):
    (tmp_path / "index.html").write_text(
        '<a href="a.html">ok</a> <a href="b.html">missing</a> <a href="a.html#x">anchor</a>'
        ' <a href="a.html#nope">bad anchor</a> <a href="https://example.org">external</a>'
    )
    (tmp_path / "a.html").write_text('<h1 id="x">A</h1>')
    assert course_build.broken_links(tmp_path) == [
        "index.html -> b.html",
        "index.html -> a.html#nope",
    ]


@pytest.mark.slow
def test_book_builds_from_the_instructor_edition_and_every_exercise_passes(tmp_path):
    """`make book`: executes every lesson's instructor edition (any error fails), renders
    HTML with solutions folded, an index in lesson order, and no broken internal link."""
    report = course_build.build_book(tmp_path / "book")
    index = (tmp_path / "book" / "index.html").read_text()
    positions = [index.index(lesson.html_name) for lesson in course.lessons()]
    assert positions == sorted(positions)
    assert course_build.broken_links(tmp_path / "book") == []
    for lesson in course.lessons():
        page = (tmp_path / "book" / lesson.html_name).read_text()
        assert '<details class="dpcourse-solution">' in page
        assert "Traceback" not in page
        assert "Unable to register cuDNN" not in page, "the course kernel hides TF's C++ log"
        images = re.findall(r"<img\b[^>]*>", page)
        no_alt = [img[:80] for img in images if not re.search(r"""\balt=(["'])[^"']{20,}""", img)]
        assert images and not no_alt, f"{lesson.html_name}: figures without alt text: {no_alt}"
        assert 'href="index.html">Contents</a>' in page
        for anchor, _ in course_build.sections(page):
            assert f'href="{lesson.html_name}#{html.escape(anchor)}"' in index, "every section"
    passed = exercises.progress()
    total = passed["total"].sum()
    assert total > 0 and (passed["passed"] == passed["total"]).all(), passed
    assert set(report.executions) == {lesson.number for lesson in course.lessons()}
    for number, run in report.executions.items():
        figures = sum(
            1
            for cell in run.notebook.cells
            for out in cell.get("outputs", [])
            if "image/png" in out.get("data", {})
        )
        assert figures >= 2, f"lesson {number} shows {figures} figure(s); each needs at least 2"
    assert json.loads(json.dumps(report.executions["00"].seconds)) > 0


#: A 1×1 PNG, as a figure output.
_PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_a_rendered_page_has_alt_text_navigation_and_its_sections():
    nb = nbformat.v4.new_notebook()
    figure = nbformat.v4.new_code_cell("plot()")
    figure.metadata["alt"] = 'A line that "rises" from left to right.'
    figure.outputs = [nbformat.v4.new_output("display_data", data={"image/png": _PIXEL})]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# 05 · Title\n\n## 1 · First part"),
        figure,
        nbformat.v4.new_markdown_cell("## 2 · Second part"),
    ]
    nav = {"previous": {"href": "04_x.html", "title": "Four"}, "next": None}
    page = course_build._render(nb, "Title", nav)
    (image,) = re.findall(r"<img\b[^>]*>", page)
    assert re.search(r"""\balt=(["'])A line that (&quot;|")rises\2 from left to right\.\1""", image)
    assert len(re.findall(r'<a href="04_x.html" rel="prev">← Four</a>', page)) == 2, "top, bottom"
    assert 'rel="next"' not in page and page.count('href="index.html">Contents</a>') == 2
    assert [text for _, text in course_build.sections(page)] == [
        "1 · First part",
        "2 · Second part",
    ]


def test_index_lists_every_lesson_and_section_in_order(tmp_path):
    entries = course.lessons()[:2]
    toc = {entries[0].number: [("1-·-A", "1 · A")], entries[1].number: [("x", "B")]}
    index = course_build._index_page(entries, toc)
    assert index.index(entries[0].html_name) < index.index(entries[1].html_name)
    assert f'href="{entries[0].html_name}#1-·-A">1 · A</a>' in index
    navigation = course_build._navigation(entries)
    assert navigation[0]["previous"] is None and navigation[1]["next"] is None
    assert navigation[0]["next"]["href"] == entries[1].html_name


def test_section_seconds_adds_cell_times_per_section():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_markdown_cell("## 1 · First"),
        nbformat.v4.new_code_cell("a"),
        nbformat.v4.new_code_cell("b"),
        nbformat.v4.new_markdown_cell("## 2 · Second"),
        nbformat.v4.new_code_cell("c"),
    ]
    stamps = [("00:00:00", "00:00:01.5"), ("00:00:02", "00:00:04"), ("00:00:05", "00:00:05.25")]
    for cell, (start, end) in zip([nb.cells[2], nb.cells[3], nb.cells[5]], stamps, strict=True):
        cell.metadata["execution"] = {
            "iopub.execute_input": f"2026-01-01T{start}Z",
            "shell.execute_reply": f"2026-01-01T{end}Z",
        }
    assert course_build.section_seconds(nb) == [("1 · First", 3.5), ("2 · Second", 0.25)]


def test_execute_notebook_measures_the_kernels_own_peak_memory(tmp_path):
    """Peak RSS is the kernel's: it sees a 200 MB allocation and not the (larger) memory of
    the process that started it, which getrusage's ru_maxrss would report after fork."""
    ballast = bytearray(600_000_000)  # make the parent process big (touch every page)
    ballast[::4096] = b"1" * len(ballast[::4096])
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = bytearray(200_000_000)\nx[::4096] = b'1' * len(x[::4096])")
    ]
    path = tmp_path / "alloc.ipynb"
    nbformat.write(nb, path)
    run = course_build.execute_notebook(path, cwd=tmp_path, timeout=120)
    assert 200e6 <= run.peak_rss_bytes < 550e6
    assert len(run.notebook.cells) == 1, "the probe cell is removed"
    del ballast


def _wait_for_a_reply(client_class: type, timeout: int) -> tuple[float, nbformat.NotebookNode]:
    """Run two cells with ``client_class``; while it waits for the second cell's reply, the
    reply arrives and, before the event loop looks at the shell socket, a comm message is
    sent on it. Return the seconds from the request to the reply, and the notebook."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("1 + 1"),
        nbformat.v4.new_code_cell("import time; time.sleep(0.5); 'done'"),  # replies at 0.5 s
    ]

    def send_while_the_reply_arrives() -> None:
        time.sleep(1.5)  # the loop is busy (processing output) when the reply arrives
        kc = client.kc
        kc.shell_channel.send(kc.session.msg("comm_msg", {"comm_id": "none", "data": {}}))

    waited = {}

    def reply_received(cell, cell_index, execute_reply):
        if cell_index == 1:
            waited["seconds"] = time.perf_counter() - waited["since"]

    def start_clock(cell, cell_index):
        if cell_index == 1:
            waited["since"] = time.perf_counter()
            asyncio.get_running_loop().call_later(0.05, send_while_the_reply_arrives)

    client = client_class(
        nb,
        timeout=timeout,
        kernel_name="python3",
        on_cell_complete=start_clock,
        on_cell_executed=reply_received,
    )
    client.execute()
    assert nb.cells[1].outputs[0]["data"]["text/plain"] == "'done'"
    return waited["seconds"], nb


#: The cell timeout of the stall test: stock nbclient waits exactly this long.
_STALL_TIMEOUT = 15


@pytest.fixture(scope="module")
def stock_nbclient_wait() -> float:
    """Stock nbclient's wait for the reply, measured once for both course-client cases
    (it does not depend on the course client's polling slice)."""
    from nbclient import NotebookClient

    return _wait_for_a_reply(NotebookClient, timeout=_STALL_TIMEOUT)[0]


@pytest.mark.slow
@pytest.mark.parametrize("poll_slice", [course_build.POLL_SLICE, 60.0], ids=["sliced", "unsliced"])
def test_a_send_while_waiting_for_a_reply_does_not_stall_the_book(
    monkeypatch, poll_slice, stock_nbclient_wait
):
    """The book build's stall, reproduced deterministically: nbclient is waiting for a
    cell's reply when the reply arrives and, before the event loop looks at the shell
    socket, a comm message is sent on it (as nbclient's Output widget does for lesson 03's
    ``interact``). Stock nbclient then gets the reply only when its poll times out: after
    exactly the cell timeout, and it goes on. The course client does not stall, with
    (``sliced``) or without (``unsliced``) its polling in slices."""
    monkeypatch.setattr(course_build, "POLL_SLICE", poll_slice)
    course_seconds, _ = _wait_for_a_reply(
        course_build._course_client_class(), timeout=_STALL_TIMEOUT
    )
    stock_seconds = stock_nbclient_wait
    assert stock_seconds >= _STALL_TIMEOUT, (
        "stock nbclient waits out the cell timeout, then goes on"
    )
    assert course_seconds < 5
    print(
        f"\nwait for the reply: stock {stock_seconds:.1f} s, course client {course_seconds:.1f} s"
    )


def test_cli_course_list_prints_the_lessons_and_nothing_authoring_remains(capsys):
    from dpcourse.cli import main

    assert main(["course", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert list(listed) == [lesson.number for lesson in course.lessons()]
    assert main(["course", "build-book"]) == 2, "the book is built by tools/course_build.py"
    assert "invalid choice" in capsys.readouterr().err
