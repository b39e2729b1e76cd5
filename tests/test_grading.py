"""The nbgrader course: exported from the lessons, generated, submitted and autograded by
real nbgrader (0.9.6, from the lock) with the course's own checks as the graded tests."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from contextlib import redirect_stderr
from html import escape as html_escape
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook
from nbgrader.nbgraderformat import MetadataValidator

from dpcourse import classroom, course, exercises
from dpcourse.cli import main

#: The two lessons the autograde test runs (both fast: no model training), and per lesson
#: the exercise answered right, the one answered with a mistake its lesson module
#: declares, and the one left blank. Every other exercise stays blank too.
PLAN = {
    "00_welcome": {"right": "epsilon_bound", "mistake": "fraud_rate", "blank": "quiz"},
    "05_privacy_accounting": {
        "right": "calibrate_sigma",
        "mistake": "compute_run_epsilon",
        "blank": "halve_epsilon",
    },
}
LEARNER, KEY = "learner", "instructor_edition"


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> classroom.NbgraderExport:
    return classroom.export_nbgrader(tmp_path_factory.mktemp("course"))


def _learner_cells(lesson: course.Lesson) -> dict[str, str]:
    nb = nbformat.read(lesson.path, as_version=4)
    return {course.exercise_tag(c): c.source for c in nb.cells if course.exercise_tag(c)}


def _solution_region(source: str) -> str:
    lines = source.splitlines()
    begin, end = lines.index(classroom.BEGIN_SOLUTION), lines.index(classroom.END_SOLUTION)
    return "\n".join(lines[begin + 1 : end])


def _without_region(source: str) -> str:
    """The cell as nbgrader releases it: the region replaced by the (empty) code stub."""
    lines = source.splitlines()
    begin, end = lines.index(classroom.BEGIN_SOLUTION), lines.index(classroom.END_SOLUTION)
    return "\n".join([*lines[:begin], "", *lines[end + 1 :]])


# --------------------------------------------------------------------------- the export
def test_export_writes_the_config_and_one_assignment_per_lesson_with_exercises(export):
    with_exercises = set(exercises.lessons())
    expected = {lesson.path.stem for lesson in course.lessons() if lesson.number in with_exercises}
    assert set(export.notebooks) == expected and len(expected) >= 10
    for assignment, path in export.notebooks.items():
        assert path == export.out_dir / "source" / assignment / f"{assignment}.ipynb"
        assert export.points[assignment] == classroom.POINTS * len(exercises.load(assignment[:2]))
    assert export.config_written and export.config.is_file()
    compile(export.config.read_text(), str(export.config), "exec")


def test_every_exercise_is_an_answer_cell_then_a_read_only_graded_test_cell(export):
    for lesson in course.lessons():
        if lesson.path.stem not in export.notebooks:
            continue
        nb = nbformat.read(export.notebooks[lesson.path.stem], as_version=4)
        MetadataValidator().validate_nb(nb)  # nbgrader's own validator (schema 3)
        learner = _learner_cells(lesson)
        found = 0
        for i, cell in enumerate(nb.cells):
            tag = course.exercise_tag(cell)
            if tag is None:
                continue
            found += 1
            exercise = exercises.from_tag(tag)
            meta = cell.metadata["nbgrader"]
            assert meta["solution"] and not meta["grade"] and not meta["locked"], tag
            assert _solution_region(cell.source) == exercise.solution_code.strip("\n"), tag
            assert _without_region(cell.source) == learner[tag].replace(
                f"\nex.{exercise.name}.check(", f"\n\nex.{exercise.name}.check(", 1
            ), f"{tag}: the released cell must be the learner's cell"
            test = nb.cells[i + 1]
            tmeta = test.metadata["nbgrader"]
            assert tmeta["grade"] and tmeta["locked"] and not tmeta["solution"], tag
            assert tmeta["points"] == classroom.POINTS and tmeta["grade_id"] == exercise.name
            call = f'assert_correct("{exercise.key}", {", ".join(exercise.answer_names)})'
            assert call in test.source
            assert exercise.solution_code.strip() not in test.source
        assert found == len(exercises.load(lesson.number)), lesson.path.name


def test_the_source_notebook_runs_placeholder_then_solution_and_passes():
    """Lesson 00's answer cells without their check call, then each graded test."""
    nb = nbformat.read(course.lessons()[0].path, as_version=4)
    source = classroom.nbgrader_notebook(nb, "00")
    for cell in source.cells:
        tag = course.exercise_tag(cell)
        if tag is None:
            continue
        exercise = exercises.from_tag(tag)
        body = "\n".join(
            line for line in cell.source.splitlines() if ".check(" not in line
        )  # the check would also record a pass
        namespace: dict = {}
        exec(body, namespace)
        classroom.assert_correct(exercise.key, *(namespace[n] for n in exercise.answer_names))


def test_an_answer_cell_without_the_check_call_is_refused():
    exercise = exercises.load("00").fraud_rate
    with pytest.raises(ValueError, match=r"no `ex\.fraud_rate\.check\(\.\.\.\)` call"):
        classroom.answer_source(exercise, "fraud_rate = ...")


def test_a_missing_or_repeated_exercise_cell_is_refused():
    nb = nbformat.read(course.lessons()[0].path, as_version=4)
    tagged = [c for c in nb.cells if course.exercise_tag(c) == "exercise:00.quiz"]
    nb.cells.append(nbformat.from_dict(dict(tagged[0])))
    with pytest.raises(ValueError, match="second answer cell"):
        classroom.nbgrader_notebook(nb, "00")
    nb.cells = [c for c in nb.cells if course.exercise_tag(c) != "exercise:00.quiz"]
    with pytest.raises(ValueError, match=r"no answer cell for 00\.quiz"):
        classroom.nbgrader_notebook(nb, "00")


def test_reexport_replaces_notebooks_and_keeps_the_instructors_config(tmp_path, capsys):
    assert main(["course", "export-nbgrader", "--out", str(tmp_path), "--json"]) == 0
    capsys.readouterr()
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()  # mine\n")
    notebook = tmp_path / "source" / "00_welcome" / "00_welcome.ipynb"
    notebook.write_text("stale")
    again = classroom.export_nbgrader(tmp_path)
    assert not again.config_written
    assert (tmp_path / "nbgrader_config.py").read_text() == "c = get_config()  # mine\n"
    assert nbformat.read(notebook, as_version=4).cells
    assert not list(tmp_path.rglob(".*-*")), "no temporary files left behind"


def test_export_refuses_a_file_and_a_missing_out(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    for args in (["--out", str(target)], []):
        proc = subprocess.run(
            [sys.executable, "-m", "dpcourse", "course", "export-nbgrader", *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and "out" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- the graded test
def test_assert_correct_passes_the_right_answer_and_prints_no_stderr(capsys):
    exercise = exercises.load("00").epsilon_bound
    classroom.assert_correct(exercise.key, *exercise.run_solution())
    out, err = capsys.readouterr()
    assert "passes" in out and err == ""
    assert not Path(os.environ["DPCOURSE_PROGRESS_FILE"]).exists(), "graded tests record nothing"


def _recognised_mistake(exercise: exercises.Exercise) -> tuple[float, str]:
    """A planted wrong answer that one of the exercise's declared mistakes recognises,
    and that mistake's feedback."""
    for wrong in exercise.wrong_answers:
        if isinstance(wrong, str):
            continue
        declared = {m.feedback(wrong) for m in exercise.mistakes}
        message = exercise.evaluate(wrong).message
        if message in declared:
            return float(wrong), message
    raise AssertionError(f"{exercise.key} plants no answer that a declared mistake recognises")


def test_assert_correct_raises_with_the_feedback_and_never_the_solution():
    exercise = exercises.load("00").fraud_rate
    wrong, feedback = _recognised_mistake(exercise)
    with pytest.raises(classroom.ExerciseNotPassed) as caught:
        classroom.assert_correct(exercise.key, wrong)
    assert str(caught.value) == f"Incorrect: {feedback}"
    assert "load_transactions" not in str(caught.value)
    assert f"{exercise.expected():.4g}" not in str(caught.value)
    with pytest.raises(classroom.ExerciseNotPassed, match=r"^Not attempted yet"):
        classroom.assert_correct(exercise.key, ...)


def test_assert_correct_silences_warnings_while_checking(monkeypatch, capsys):
    """nbgrader scores a test cell with stderr output as failed: a warning raised by a
    check must not turn a right answer into 0 points."""
    exercise = exercises.load("00").epsilon_bound

    def noisy(*answers):
        import warnings

        warnings.warn("something the learner need not see", UserWarning, stacklevel=1)
        print("to stderr", file=sys.stderr)
        return exercises.Result("correct")

    monkeypatch.setattr(exercise, "evaluate", noisy)
    with redirect_stderr(io.StringIO()) as err:
        classroom.assert_correct(exercise.key, "b")
    assert err.getvalue() == "" and capsys.readouterr().err == ""


# --------------------------------------------------------------------------- real nbgrader
#: Wall seconds of each nbgrader command the fixture ran, for the test report.
TIMINGS: dict[str, float] = {}


def _nbgrader(course_dir: Path, *args: str) -> None:
    """Run the nbgrader command line of this environment in ``course_dir``; nbgrader calls
    `alembic` by name, so this environment's bin folder goes first on PATH."""
    started = time.perf_counter()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=course_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    TIMINGS[" ".join(args)] = time.perf_counter() - started


def _answer(source: str, name: str, value: float) -> str:
    """The cell with its placeholder ``name = ...`` replaced by ``name = value``."""
    answered, count = re.subn(rf"^{name} = \.\.\..*$", f"{name} = {value!r}", source, flags=re.M)
    assert count == 1, source
    return answered


def _submit(course_dir: Path, student: str, assignment: str, nb: nbformat.NotebookNode) -> None:
    folder = course_dir / "submitted" / student / assignment
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{assignment}.ipynb")


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Export, generate two assignments, submit the simulated learner's and the instructor
    edition's answers, autograde, and return the course folder, the scores per student,
    assignment and test cell, the mistakes' feedback, and the seconds it took."""
    started = time.perf_counter()
    course_dir = tmp_path_factory.mktemp("nbgrader_course")
    classroom.export_nbgrader(course_dir)
    feedback = {}
    for assignment, plan in PLAN.items():
        _nbgrader(course_dir, "generate_assignment", assignment)
        released = nbformat.read(
            course_dir / "release" / assignment / f"{assignment}.ipynb", as_version=4
        )
        _submit(course_dir, KEY, assignment, course.instructor_notebook(released))
        ex = exercises.load(assignment[:2])
        right, mistaken = ex[plan["right"]], ex[plan["mistake"]]
        wrong, feedback[assignment] = _recognised_mistake(mistaken)
        for cell in released.cells:
            if course.exercise_tag(cell) == right.tag:
                cell.source = right.instructor_cell(cell.source)
            elif course.exercise_tag(cell) == mistaken.tag:
                cell.source = _answer(cell.source, mistaken.answer_names[0], wrong)
        _submit(course_dir, LEARNER, assignment, released)
        _nbgrader(course_dir, "autograde", assignment)
    _nbgrader(course_dir, "generate_feedback", "00_welcome")
    scores = {}
    with Gradebook(f"sqlite:///{course_dir / 'gradebook.db'}", classroom.COURSE_ID) as gb:
        for assignment in PLAN:
            for student in (KEY, LEARNER):
                submission = gb.find_submission(assignment, student)
                cells = {g.name: g.score for nb in submission.notebooks for g in nb.grades}
                scores[student, assignment] = (submission.score, submission.max_score, cells)
    return course_dir, scores, feedback, time.perf_counter() - started


@pytest.mark.slow
def test_the_released_notebooks_hold_no_solution(graded):
    course_dir = graded[0]
    for assignment in PLAN:
        released = nbformat.read(
            course_dir / "release" / assignment / f"{assignment}.ipynb", as_version=4
        )
        text = "\n".join(c.source for c in released.cells)
        assert classroom.BEGIN_SOLUTION not in text
        for exercise in exercises.load(assignment[:2]):
            assert exercise.solution_code.strip() not in text, exercise.key
        tests = [c for c in released.cells if c.metadata.get("nbgrader", {}).get("grade")]
        assert tests and all(c.metadata["editable"] is False for c in tests)


@pytest.mark.slow
def test_autograde_scores_right_full_mistake_zero_blank_zero(graded):
    _, scores, _, seconds = graded
    for assignment, plan in PLAN.items():
        total, maximum, cells = scores[LEARNER, assignment]
        right, mistake, blank = plan["right"], plan["mistake"], plan["blank"]
        print(f"{assignment} {LEARNER}: {cells} = {total}/{maximum}")
        assert cells[right] == classroom.POINTS
        assert cells[mistake] == 0 and cells[blank] == 0
        assert total == classroom.POINTS, "every other exercise was left blank"
        assert maximum == classroom.POINTS * len(exercises.load(assignment[:2]))
    print(f"export + generate + submit + autograde + feedback: {seconds:.0f} s")
    print("per nbgrader command (s):", {k: round(v) for k, v in TIMINGS.items()})


@pytest.mark.slow
def test_the_instructor_edition_scores_full_marks(graded):
    _, scores, _, _ = graded
    for assignment in PLAN:
        total, maximum, cells = scores[KEY, assignment]
        print(f"{assignment} {KEY}: {cells} = {total}/{maximum}")
        assert total == maximum and set(cells.values()) == {classroom.POINTS}


@pytest.mark.slow
def test_the_learner_reads_the_matched_mistake_in_the_graded_notebook(graded):
    course_dir, _, feedback, _ = graded
    for assignment in PLAN:
        nb = nbformat.read(
            course_dir / "autograded" / LEARNER / assignment / f"{assignment}.ipynb",
            as_version=4,
        )
        errors = [
            o["evalue"]
            for c in nb.cells
            if c.cell_type == "code"
            for o in c.outputs
            if o["output_type"] == "error"
        ]
        assert f"Incorrect: {feedback[assignment]}" in errors
        assert any(e.startswith("Not attempted yet") for e in errors)
    html = (course_dir / "feedback" / LEARNER / "00_welcome" / "00_welcome.html").read_text()
    assert html_escape(feedback["00_welcome"], quote=False) in html  # in the feedback report
