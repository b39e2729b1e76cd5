"""Tests for dpcourse.exercises: every registered exercise, then each kind, registry and progress.

The first block is parametrized over ``all_exercises()``, so exercises added by future
lesson modules are covered without new tests: the solution passes, every planted wrong
answer is rejected, unanswered placeholders count as "not attempted", and the
instructor edition's fill-in of a tagged cell produces a passing cell.
"""

from __future__ import annotations

import json
import re
import sys
import types
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from dpcourse.exercises import (
    ChoiceExercise,
    Exercise,
    FunctionExercise,
    Mistake,
    MultipleChoice,
    NumericExercise,
    PredicateExercise,
    ProgressWarning,
    Quiz,
    all_exercises,
    feedback,
    from_tag,
    lessons,
    load,
    off_by_factor,
    progress,
    progress_file,
    registry,
    reset_progress,
)
from dpcourse.exercises.core import is_stub_function
from dpcourse.exercises.tracking import passed_exercises

EXERCISES = list(all_exercises())
WRONG = [(e, i) for e in EXERCISES for i in range(len(e.wrong_answers))]
QUESTIONS = [
    (e.key, q)
    for e in EXERCISES
    for q in ([e.question] if isinstance(e, ChoiceExercise) else getattr(e, "questions", ()))
]


@pytest.fixture(autouse=True)
def progress_path(tmp_path, monkeypatch):
    """Every test writes progress to its own temporary file, never to the home directory."""
    path = tmp_path / "progress" / "progress.json"
    monkeypatch.setenv("DPCOURSE_PROGRESS_FILE", str(path))
    return path


def placeholder_cell(exercise: Exercise) -> str:
    """A student-edition answer cell for ``exercise``, as the package docstring prescribes."""
    names = exercise.answer_names
    if isinstance(exercise, FunctionExercise):
        stub = f"def {names[0]}(*args):\n    ...  # your code here\n"
    elif isinstance(exercise, Quiz):
        stub = f"{names[0]} = {{{', '.join(f'{i}: ...' for i in range(1, len(exercise) + 1))}}}\n"
    else:
        stub = "".join(f"{n} = ...  # your code here\n" for n in names)
    return f"# {exercise.title}\n{stub}ex.{exercise.name}.check({', '.join(names)})\n"


# --------------------------------------------------------------------------- every exercise


def test_there_are_registered_exercises():
    assert "00" in lessons()
    assert {e.key for e in EXERCISES} >= {"00.fraud_rate", "00.epsilon_bound", "00.quiz"}


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.key)
def test_solution_passes_and_is_recorded(exercise, capsys):
    answers = exercise.run_solution()
    assert bool(exercise.check(*answers)) is True
    assert "Correct!" in capsys.readouterr().out
    assert exercise.key in passed_exercises()


@pytest.mark.parametrize(("exercise", "index"), WRONG, ids=lambda v: getattr(v, "key", str(v)))
def test_planted_wrong_answer_is_rejected(exercise, index, capsys, progress_path):
    answers = exercise.wrong_answer_tuple(exercise.wrong_answers[index])
    assert exercise.evaluate(*answers).status == "incorrect"
    assert bool(exercise.check(*answers)) is False
    out = capsys.readouterr().out
    assert out.startswith("Incorrect:") and "Correct!" not in out
    assert not progress_path.exists()


@pytest.mark.parametrize("placeholder", [..., None], ids=["ellipsis", "none"])
@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.key)
def test_unanswered_is_not_attempted(exercise, placeholder, capsys):
    answers = [placeholder] * len(exercise.answer_names)
    assert bool(exercise.check(*answers)) is False
    out = capsys.readouterr().out
    each = "the `...`" if len(exercise.answer_names) == 1 else "each `...`"
    assert f"Not attempted yet — replace {each} with your answer." in out
    assert f"ex.{exercise.name}.hint()" in out


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.key)
def test_exercise_is_complete_and_displays(exercise, capsys):
    assert exercise.hints and exercise.title and exercise.prompt
    assert exercise.tag == f"exercise:{exercise.lesson}.{exercise.name}"
    assert from_tag(exercise.tag) is exercise
    exercise.show()
    assert exercise.title in capsys.readouterr().out
    exercise.hint()
    assert exercise.hints[0] in capsys.readouterr().out
    exercise.solution()
    assert exercise.solution_code.strip() in capsys.readouterr().out


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.key)
def test_instructor_cell_replaces_the_placeholder_with_a_passing_solution(exercise, capsys):
    student = placeholder_cell(exercise)
    namespace = {"ex": load(exercise.lesson)}
    exec(student, dict(namespace))
    assert "Not attempted yet" in capsys.readouterr().out
    instructor = exercise.instructor_cell(student)
    assert instructor.startswith(f"# {exercise.title}\n")
    assert instructor.rstrip().endswith(
        f"ex.{exercise.name}.check({', '.join(exercise.answer_names)})"
    )
    exec(instructor, dict(namespace))
    assert "Correct!" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("key", "question"), QUESTIONS, ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_wrong_option_explains_itself(key, question):
    for option in question.options.keys() - question.correct:
        result = question.evaluate(option)
        assert result.status == "incorrect"
        assert question.explanations[option] in result.message


def test_lesson00_fraud_rate_mistakes_get_their_own_advice():
    exercise = load("00").fraud_rate
    messages = [exercise.evaluate(w).message for w in exercise.wrong_answers]
    advice = ["percentage", "legitimate", "a count", "percentage", "close", "a number"]
    assert len(messages) == len(advice)
    for message, words in zip(messages, advice, strict=True):
        assert words in message


# --------------------------------------------------------------------------- numeric


def noise_std_exercise(**overrides) -> NumericExercise:
    """std of the noise on the averaged gradient: noise_multiplier · C / batch size."""
    args = {
        "lesson": "99",
        "name": "noise_std",
        "title": "Noise on the mean",
        "prompt": "Compute the noise std on the averaged gradient.",
        "hints": ["Divide by the batch size."],
        "solution_code": "noise_std = 1.1 * 1.0 / 256",
        "answer_names": "noise_std",
        "expected": lambda: 1.1 * 1.0 / 256,
        "mistakes": [
            off_by_factor(
                256,
                "Your value {answer} is 256 times too large — did you forget to "
                "divide by the batch size?",
            )
        ],
        "wrong_answers": [1.1],
    }
    return NumericExercise(**{**args, **overrides})


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (
            1.1,
            "Your value 1.1 is 256 times too large — did you forget to divide by the batch size?",
        ),
        (0.5, "Your value 0.5 is too large."),
        (1e-5, "Your value 1e-05 is too small."),
        ([0.1, 0.2], "has shape (2,) but should have shape ()"),
        ("0.0043", "should be a number or an array of numbers, but it is a str"),
        (float("nan"), "contains NaN"),
    ],
)
def test_numeric_feedback_says_what_is_wrong(answer, words):
    result = noise_std_exercise().evaluate(answer)
    assert result.status == "incorrect"
    assert words in result.message


def test_numeric_tolerance_is_relative():
    exercise = noise_std_exercise(rtol=1e-3, atol=0.0)
    expected = 1.1 / 256
    assert exercise.evaluate(expected * (1 + 5e-4)).passed
    assert not exercise.evaluate(expected * (1 + 2e-3)).passed


def test_numeric_expected_is_computed_once_and_lazily():
    calls = []
    exercise = noise_std_exercise(expected=lambda: calls.append(1) or 0.25)
    assert calls == []
    exercise.evaluate(0.25)
    exercise.evaluate(0.3)
    assert calls == [1]


def test_numeric_arrays_and_several_answers():
    exercise = noise_std_exercise(
        answer_names=("clipped", "scale"),
        expected=lambda: (np.array([[0.6, 0.8], [0.0, 1.0]]), 0.2),
        solution_code="clipped, scale = [[0.6, 0.8], [0.0, 1.0]], 0.2",
        mistakes=[],
    )
    assert exercise.evaluate(np.array([[0.6, 0.8], [0.0, 1.0]]), 0.2).passed
    result = exercise.evaluate(np.array([[3.0, 4.0], [0.0, 1.0]]), 0.2)
    assert (
        "Your value for `clipped` differs from the expected array in 2 of 4 entries"
        in result.message
    )
    assert "at index (0, 0) it is 3" in result.message
    assert "`scale`" not in result.message


def test_checker_catches_a_misbehaving_answer():
    class Weird:
        def __float__(self):
            raise RuntimeError("no float for you")

    result = noise_std_exercise().evaluate(Weird())
    assert result.status == "incorrect"
    assert "Checking your answer failed with RuntimeError: no float for you" in result.message


def test_wrong_number_of_answers_is_reported_not_raised(capsys):
    exercise = noise_std_exercise()
    assert bool(exercise.check(0.1, 0.2)) is False
    assert "takes 1 answer(s), `noise_std`, but was given 2" in capsys.readouterr().out


def test_mistake_predicate_that_raises_counts_as_no_match():
    exercise = noise_std_exercise(mistakes=[Mistake(lambda a, e: 1 / 0, "never shown")])
    result = exercise.evaluate(0.5)
    assert "never shown" not in result.message and "too large" in result.message


# --------------------------------------------------------------------------- function


def clip_rows(grads: np.ndarray, l2_norm_clip: float) -> np.ndarray:
    """Reference: each row g becomes g · min(1, C / ||g||)."""
    norms = np.linalg.norm(grads, axis=1, keepdims=True)
    return grads * np.minimum(1.0, l2_norm_clip / np.maximum(norms, 1e-12))


def clip_exercise() -> FunctionExercise:
    rng = np.random.default_rng(0)
    return FunctionExercise(
        lesson="99",
        name="clip",
        title="Clip each gradient",
        prompt="Write clip_gradients(grads, l2_norm_clip).",
        hints=["Compute one norm per row."],
        solution_code=(
            "import numpy as np\n"
            "\n"
            "def clip_gradients(grads, l2_norm_clip):\n"
            "    norms = np.linalg.norm(grads, axis=1, keepdims=True)\n"
            "    return grads * np.minimum(1.0, l2_norm_clip / np.maximum(norms, 1e-12))\n"
        ),
        answer_names="clip_gradients",
        reference=clip_rows,
        cases=[(np.array([[3.0, 4.0], [0.3, 0.4]]), 1.0), (rng.normal(size=(5, 3)) * 3, 2.0)],
        mistakes=[
            Mistake(
                lambda out, want: np.linalg.norm(out) <= 1.0 + 1e-9,
                "You clipped the whole batch as one vector; clip each row (each example).",
            )
        ],
        wrong_answers=[lambda g, c: g],
    )


def test_function_exercise_accepts_a_different_correct_implementation():
    def clip_gradients(grads, l2_norm_clip):
        out = np.array(grads, dtype=float)
        for row in out:
            norm = np.sqrt(row @ row)
            if norm > l2_norm_clip:
                row *= l2_norm_clip / norm
        return out

    assert clip_exercise().evaluate(clip_gradients).passed


def test_function_exercise_reports_the_failing_input_and_the_known_mistake():
    def clip_batch(grads, l2_norm_clip):
        return grads * min(1.0, l2_norm_clip / np.linalg.norm(grads))

    result = clip_exercise().evaluate(clip_batch)
    assert result.status == "incorrect"
    assert result.message.startswith("For clip_batch([[3. , 4. ],")
    assert "clip each row" in result.message
    assert "Expected: [[0.6, 0.8]," in result.message


def test_function_exercise_catches_learner_exceptions(capsys):
    def broken(grads, l2_norm_clip):
        raise ZeroDivisionError("division by zero")

    exercise = clip_exercise()
    assert bool(exercise.check(broken)) is False
    assert "Your function raised ZeroDivisionError: division by zero" in capsys.readouterr().out

    def forgot_return(grads, l2_norm_clip):
        clip_rows(grads, l2_norm_clip)

    assert "did you forget to `return`" in exercise.evaluate(forgot_return).message
    assert "Pass your function itself" in exercise.evaluate(np.zeros(2)).message


def test_function_stub_counts_as_not_attempted():
    def clip_gradients(grads, l2_norm_clip):
        """Clip each row."""
        ...  # your code here

    def clip_with_pass(grads, l2_norm_clip):
        pass

    exercise = clip_exercise()
    assert exercise.evaluate(clip_gradients).status == "not_attempted"
    assert exercise.evaluate(clip_with_pass).status == "not_attempted"
    assert not is_stub_function(lambda g, c: 0)
    assert not is_stub_function(clip_rows)


def test_function_exercise_solution_fills_in_the_stub(capsys):
    exercise = clip_exercise()
    cell = (
        "def clip_gradients(grads, l2_norm_clip):\n"
        '    """Clip each row to norm at most l2_norm_clip."""\n'
        "    ...  # your code here\n"
        "\n"
        "ex.clip.check(clip_gradients)"
    )
    namespace = {"ex": types.SimpleNamespace(clip=exercise)}
    exec(cell, dict(namespace))
    assert "Not attempted yet" in capsys.readouterr().out
    filled = exercise.instructor_cell(cell)
    assert filled == exercise.solution_code.strip() + "\n\nex.clip.check(clip_gradients)"
    exec(filled, dict(namespace))
    assert capsys.readouterr().out.startswith("Correct!")


def test_function_exercise_guards_its_cases_against_mutation():
    def clip_in_place(grads, l2_norm_clip):
        grads[:] = clip_rows(grads, l2_norm_clip)
        return grads

    exercise = clip_exercise()
    before = [c[0].copy() for c in exercise.cases]
    assert exercise.evaluate(clip_in_place).passed
    assert exercise.evaluate(clip_in_place).passed
    for case, original in zip(exercise.cases, before, strict=True):
        np.testing.assert_array_equal(case[0], original)


# --------------------------------------------------------------------------- choice and quiz


def question(correct="b") -> MultipleChoice:
    return MultipleChoice(
        prompt="Noise in TF Privacy is added to ...",
        options={"a": "each gradient", "b": "the sum of clipped gradients", "c": "the loss"},
        correct=correct,
        explanations={"a": "No: to the sum.", "b": "Yes.", "c": "No: to gradients."},
    )


def test_multiple_choice_normalises_and_explains():
    q = question()
    assert q.evaluate(" B ").passed
    assert q.evaluate("b").message == "Yes."
    assert "(c) is not right: No: to gradients." in q.evaluate("c").message
    assert "z is not an option here; choose from a, b, c." in q.evaluate("z").message
    assert "Choose exactly one option" in q.evaluate(["a", "b"]).message
    assert "Answer with the key of an option" in q.evaluate(3.5).message


def test_multiple_choice_with_several_correct_options():
    q = question(correct=["a", "b"])
    assert q.multiple and q.solution == ["a", "b"]
    assert q.evaluate("a, b").passed and q.evaluate({"B", "a"}).passed
    assert "1 more correct option is still to find" in q.evaluate("a").message
    partly = q.evaluate(["a", "c"]).message
    assert "(c) is not right" in partly and "1 more correct option" in partly
    assert "(Choose all that apply.)" in q.text()


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"explanations": {"a": "x", "b": "y"}}, "missing ['c']"),
        ({"correct": "d"}, "correct must be one or more of the option keys"),
        ({"correct": ["a", "b", "c"]}, "leaving at least one wrong option"),
        ({"options": {"a": "only"}, "explanations": {"a": "x"}, "correct": "a"}, "at least two"),
        ({"prompt": " "}, "prompt must be a non-empty string"),
        ({"options": {"a b": "1", "c": "2"}, "correct": "c"}, "no spaces or commas"),
    ],
)
def test_multiple_choice_validation(changes, words):
    args = {
        "prompt": "Q?",
        "options": {"a": "1", "b": "2", "c": "3"},
        "correct": "a",
        "explanations": {"a": "x", "b": "y", "c": "z"},
    }
    with pytest.raises(ValueError, match=re.escape(words)):
        MultipleChoice(**{**args, **changes})


def toy_quiz() -> Quiz:
    return Quiz(lesson="99", title="Toy quiz", questions=[question(), question(["a", "b"])])


def test_quiz_checks_a_dict_of_answers(capsys):
    quiz = toy_quiz()
    assert bool(quiz.check({1: "b", "2": ["a", "b"]})) is True
    assert "2 of 2 correct." in capsys.readouterr().out
    partial = quiz.evaluate({1: "b", 2: ...})
    assert partial.status == "incomplete" and "Question 2: not answered yet." in partial.message
    wrong = quiz.evaluate({1: "c", 2: ["a", "b"]})
    assert wrong.status == "incorrect" and "Question 1: ✗ — (c) is not right" in wrong.message
    assert "There is no question 3" in quiz.evaluate({3: "a"}).message
    assert "Answer with a dict" in quiz.evaluate("b").message
    assert quiz.evaluate({1: ..., 2: None}).status == "not_attempted"


def test_quiz_asks_its_questions(capsys):
    quiz = toy_quiz()
    assert len(quiz) == 2 and quiz[2] is quiz.questions[1]
    quiz.ask()
    out = capsys.readouterr().out
    assert "1. Noise in TF Privacy" in out and "2. Noise in TF Privacy" in out
    quiz.ask(2)
    assert "Toy quiz, question 2" in capsys.readouterr().out
    with pytest.raises(ValueError, match="number must be a question number from 1 to 2, got 3"):
        quiz.ask(3)


def test_quiz_derives_solution_and_wrong_answers():
    quiz = toy_quiz()
    assert quiz.run_solution() == ({1: "b", 2: ["a", "b"]},)
    assert quiz.wrong_answers == [{1: "a", 2: ["a", "b"]}, {1: "b", 2: "c"}]


# --------------------------------------------------------------------------- predicate


def test_predicate_exercise():
    exercise = PredicateExercise(
        lesson="99",
        name="small_epsilon",
        title="Pick ε",
        prompt="Pick an ε below 1.",
        hints=["Below 1."],
        solution_code="eps = 0.5",
        answer_names="eps",
        predicate=lambda eps: (eps < 1, f"ε = {eps} is {'below' if eps < 1 else 'not below'} 1."),
        wrong_answers=[2.0],
        explanation="Small ε, strong guarantee.",
    )
    assert exercise.evaluate(0.5).message == "ε = 0.5 is below 1. Small ε, strong guarantee."
    assert exercise.evaluate(2.0).message == "ε = 2.0 is not below 1."
    assert "TypeError" in exercise.evaluate("x").message


# --------------------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"lesson": "2a"}, "lesson must be a lesson number such as '02' or 2, got '2a'"),
        ({"lesson": 100}, "got 100"),
        ({"name": "class"}, "name must be a Python identifier that is not a keyword"),
        ({"hints": "one hint"}, "hints must be a non-empty list of strings"),
        ({"hints": []}, "hints must be a non-empty list"),
        ({"solution_code": "noise_std = ("}, "solution_code of 99.noise_std is not valid Python"),
        ({"answer_names": ("a", "a")}, "answer_names must be one or more distinct"),
        ({"rtol": -1.0}, "rtol must be a finite number >= 0, got -1.0"),
        ({"expected": 0.1}, "expected must be a zero-argument function"),
        ({"wrong_answers": 0.1}, "wrong_answers must be a list"),
        ({"wrong_answers": "0.1"}, "wrong_answers must be a list"),
        ({"answer_names": "1st"}, "answer_names must be a Python identifier"),
    ],
)
def test_construction_errors_name_the_parameter(changes, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        noise_std_exercise(**changes)


def test_lazy_wrong_answers_must_not_be_empty():
    assert noise_std_exercise(wrong_answers=lambda: [2.0]).wrong_answers == [2.0]
    with pytest.raises(ValueError, match=re.escape("wrong_answers of 99.noise_std is empty")):
        _ = noise_std_exercise(wrong_answers=[]).wrong_answers


def test_off_by_factor_rejects_a_useless_factor():
    with pytest.raises(ValueError, match="factor must be finite and neither 0 nor 1, got 1"):
        off_by_factor(1, "x")


def test_hints_step_through_and_validate(capsys):
    exercise = noise_std_exercise(hints=["First.", "Second."])
    exercise.hint()
    assert "Hint 1 of 2: First.\n(Call `ex.noise_std.hint(2)` for another hint.)" in (
        capsys.readouterr().out
    )
    exercise.hint(2)
    assert capsys.readouterr().out.strip() == "Hint 2 of 2: Second."
    with pytest.raises(ValueError, match="n must be a hint number from 1 to 2, got 3"):
        exercise.hint(3)


def test_run_solution_requires_every_answer_name():
    exercise = noise_std_exercise(solution_code="something_else = 1")
    with pytest.raises(ValueError, match="does not define noise_std"):
        exercise.run_solution()


def test_instructor_cell_keeps_other_lines_and_needs_a_placeholder():
    exercise = noise_std_exercise()
    cell = "ex = load('99')\nnoise_std = ...  # your code here\nex.noise_std.check(noise_std)"
    assert exercise.instructor_cell(cell) == (
        "ex = load('99')\nnoise_std = 1.1 * 1.0 / 256\nex.noise_std.check(noise_std)"
    )
    with pytest.raises(
        ValueError, match=re.escape("The cell tagged exercise:99.noise_std has no placeholder")
    ):
        exercise.instructor_cell("noise_std = 0.1\nex.noise_std.check(noise_std)")


# --------------------------------------------------------------------------- display


def test_html_and_text_carry_the_same_words():
    message = feedback.Message("incorrect", "Incorrect:", "Use `x < C`, not x > C.")
    assert message.text() == "Incorrect: Use `x < C`, not x > C."
    html = message.html()
    assert feedback.COLORS["incorrect"] in html
    assert "<code>x &lt; C</code>, not x &gt; C." in html
    bundle = message._repr_mimebundle_()
    assert bundle == {"text/plain": message.text(), "text/html": html}


def _luminance(colour: str) -> float:
    """WCAG 2.x relative luminance of a #rrggbb colour."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2.x contrast ratio (L1 + 0.05) / (L2 + 0.05), from 1 to 21."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


#: The backgrounds an output sits on: JupyterLab's light theme (--jp-layout-color0/1 white)
#: and dark theme (--jp-layout-color0 #111, --jp-layout-color1 #212121).
THEME_BACKGROUNDS = ("#ffffff", "#111111", "#212121")


def test_contrast_ratio_matches_wcag_reference_values():
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # WCAG's example


@pytest.mark.parametrize("kind", sorted(feedback.COLORS))
def test_feedback_labels_meet_wcag_aa_on_light_and_dark_themes(kind):
    """The label is white text on its own colour, so the text's contrast does not depend on
    the theme; the old labels (coloured text on the page) fell to 2.0-3.7:1 on dark."""
    html = feedback.Message(kind, "Label:", "body").html()
    background, text = feedback.COLORS[kind], feedback.LABEL_TEXT_COLOR
    assert f"background-color:{background};color:{text}" in html
    assert contrast_ratio(text, background) >= 4.5


def test_no_single_text_colour_meets_aa_on_both_themes():
    """Why the labels carry their own background: text coloured for the light theme
    (≥ 4.5:1 on white) is too dark for the dark theme, for every colour."""
    for colour in feedback.COLORS.values():
        on_white = contrast_ratio(colour, THEME_BACKGROUNDS[0])
        on_dark = min(contrast_ratio(colour, page) for page in THEME_BACKGROUNDS[1:])
        assert not (on_white >= 4.5 and on_dark >= 4.5), colour


def test_in_a_notebook_check_displays_html(monkeypatch, capsys):
    shown = []
    monkeypatch.setattr("IPython.get_ipython", lambda: types.SimpleNamespace(kernel=object()))
    monkeypatch.setattr("IPython.display.display", shown.append)
    assert feedback.in_notebook()
    assert bool(noise_std_exercise().check(1.1 / 256)) is True
    assert capsys.readouterr().out == ""
    (message,) = shown
    html = message._repr_mimebundle_()["text/html"]
    assert "Correct!" in html and feedback.COLORS["correct"] in html


def test_outside_a_notebook_plain_text_is_printed():
    assert not feedback.in_notebook()


# --------------------------------------------------------------------------- registry


def test_load_accepts_lesson_numbers_in_several_forms():
    ex = load("00")
    assert [e.name for e in load(0)] == [e.name for e in load("0")] == [e.name for e in ex]
    assert ex.lesson == "00" and ex.title == "Welcome to dpcourse" and len(ex) == len(list(ex))
    assert ex["quiz"] is ex.quiz
    assert {"fraud_rate", "epsilon_bound", "quiz"} <= set(dir(ex))
    assert "ex.fraud_rate: How rare is fraud?" in repr(ex)


def test_load_errors_are_clear():
    with pytest.raises(
        ValueError, match="lesson '98' has no exercises; lessons with exercises: 00"
    ):
        load("98")
    with pytest.raises(ValueError, match="lesson must be a lesson number"):
        load("two")
    with pytest.raises(AttributeError, match="Lesson 00 has no exercise 'clip'; its exercises: "):
        _ = load("00").clip
    with pytest.raises(KeyError, match="no exercise 'clip'"):
        _ = load("00")["clip"]
    with pytest.raises(ValueError, match=re.escape("tag must look like 'exercise:02.clip'")):
        from_tag("02.clip")
    with pytest.raises(ValueError, match="names no exercise"):
        from_tag("exercise:00.clip")


def fake_lesson(monkeypatch, exercises) -> None:
    """Make ``load("98")`` find a lesson module holding ``exercises``."""
    module = types.ModuleType("dpcourse.exercises.lesson98")
    module.__file__ = "lesson98.py"
    module.EXERCISES = exercises
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(registry, "lessons", lambda: ["00", "98"])


@pytest.mark.parametrize(
    ("exercises", "words"),
    [
        ("twice", "Exercise name 'noise_std' in lesson98.py is used twice or is reserved"),
        ("title", "Exercise name 'title' in lesson98.py is used twice or is reserved"),
        ("other", "is listed in lesson98.py but says lesson '99'"),
        ("plain", "EXERCISES in lesson98.py must hold Exercise objects"),
        ("empty", "lesson98.py must define EXERCISES, a non-empty list"),
    ],
)
def test_lesson_module_is_validated(monkeypatch, exercises, words):
    good = noise_std_exercise(lesson="98")
    listed = {
        "twice": [good, noise_std_exercise(lesson="98")],
        "title": [noise_std_exercise(lesson="98", name="title")],
        "other": [noise_std_exercise()],
        "plain": [good, "not an exercise"],
        "empty": [],
    }[exercises]
    fake_lesson(monkeypatch, listed)
    with pytest.raises(ValueError, match=re.escape(words)):
        load(98)


def test_all_exercises_covers_every_lesson_module(monkeypatch):
    fake_lesson(monkeypatch, [noise_std_exercise(lesson="98")])
    keys = [e.key for e in all_exercises()]
    assert keys[-1] == "98.noise_std" and "00.quiz" in keys
    assert load("98").title == "lesson 98"  # no notebook 98: the number stands in


def test_load_stamps_the_lesson_on_exercises_that_do_not_name_it(monkeypatch):
    unbound = noise_std_exercise(lesson=None)
    assert unbound.lesson is None and unbound.key == "??.noise_std"
    fake_lesson(monkeypatch, [unbound])
    assert load("98").noise_std is unbound
    assert unbound.lesson == "98" and unbound.tag == "exercise:98.noise_std"
    with pytest.raises(ValueError, match="belongs to lesson '98', not to '97'"):
        unbound.bind("97")


def test_lesson_titles_are_the_notebooks_headings():
    from dpcourse import course

    headings = {lesson.number: lesson.title for lesson in course.lessons()}
    for number in lessons():
        assert f"{number} · {load(number).title}" == headings[number]
        assert all(e.lesson == number for e in load(number))  # stamped, never repeated


# --------------------------------------------------------------------------- progress


def test_progress_file_default_and_override(monkeypatch, tmp_path, progress_path):
    assert progress_file() == progress_path
    monkeypatch.delenv("DPCOURSE_PROGRESS_FILE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert progress_file() == tmp_path / ".dpcourse" / "progress.json"


def test_progress_counts_passed_exercises_per_lesson(progress_path):
    ex = load("00")
    empty = progress()
    assert list(empty.columns) == ["title", "passed", "total", "percent"]
    assert empty.loc["00", "passed"] == 0 and empty.loc["00", "total"] == len(ex)
    assert ex.epsilon_bound.check(*ex.epsilon_bound.run_solution())
    table = progress()
    assert table.loc["00", "passed"] == 1
    assert table.loc["00", "percent"] == round(100 / len(ex))
    (record,) = json.loads(progress_path.read_text())["passed"]
    assert record["lesson"] == "00" and record["name"] == "epsilon_bound"
    assert datetime.fromisoformat(record["passed_at"]).tzinfo is not None


def test_progress_keeps_the_first_pass_and_ignores_unknown_records(progress_path):
    first = {"lesson": "00", "name": "epsilon_bound", "passed_at": "2020-01-01T00:00:00+00:00"}
    gone = {"lesson": "00", "name": "removed_exercise", "passed_at": "2020-01-01T00:00:00+00:00"}
    progress_path.parent.mkdir(parents=True)
    progress_path.write_text(json.dumps({"version": 1, "passed": [first, gone]}))
    ex = load("00")
    assert ex.epsilon_bound.check(*ex.epsilon_bound.run_solution())
    assert passed_exercises()["00.epsilon_bound"] == first["passed_at"]
    assert progress().loc["00", "passed"] == 1


def test_reset_progress_all_or_one_lesson(progress_path):
    other = {"lesson": "05", "name": "sigma", "passed_at": "2020-01-01T00:00:00+00:00"}
    progress_path.parent.mkdir(parents=True)
    progress_path.write_text(json.dumps({"version": 1, "passed": [other]}))
    ex = load("00")
    ex.epsilon_bound.check(*ex.epsilon_bound.run_solution())
    reset_progress(0)
    assert set(passed_exercises()) == {"05.sigma"}
    reset_progress()
    assert not progress_path.exists()
    with pytest.raises(ValueError, match="lesson must be a lesson number"):
        reset_progress("all")


def test_unwritable_progress_file_warns_but_checking_works(monkeypatch, tmp_path):
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("")
    monkeypatch.setenv("DPCOURSE_PROGRESS_FILE", str(blocker / "progress.json"))
    ex = load("00")
    with pytest.warns(ProgressWarning, match="Could not save your progress"):
        assert bool(ex.epsilon_bound.check(*ex.epsilon_bound.run_solution())) is True


@pytest.mark.parametrize("content", ["{not json", '{"passed": [1, 2]}', "[]"])
def test_damaged_progress_file_warns_and_counts_as_empty(progress_path, content):
    progress_path.parent.mkdir(parents=True)
    progress_path.write_text(content)
    with pytest.warns(ProgressWarning, match="Could not read the progress file"):
        table = progress()
    assert isinstance(table, pd.DataFrame) and table["passed"].sum() == 0


def test_check_returns_a_verdict_that_is_silent_in_a_notebook():
    from dpcourse.exercises.core import Verdict

    assert bool(Verdict(True)) is True and bool(Verdict(False)) is False
    assert Verdict(True)._ipython_display_() is None
    assert repr(Verdict(False)) == "Verdict(passed=False)"
