"""The :class:`Exercise` base class: prompt, hints, solution, and a ``check`` that never raises.

Checking is split in two so that it can be tested without capturing output:
:meth:`Exercise.evaluate` is pure and returns a :class:`Result`; :meth:`Exercise.check`
evaluates, shows the feedback, records a pass in the progress file and returns a bool.
Subclasses implement only :meth:`Exercise._evaluate`, which sees attempted answers of the
right number; the base class handles unanswered placeholders, a wrong number of answers
and any exception while checking.
"""

from __future__ import annotations

import ast
import dis
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from .feedback import Message, show
from .ids import check_name, lesson_id
from .tracking import record_pass

Status = Literal["correct", "incorrect", "incomplete", "not_attempted"]
_LABELS: dict[str, tuple[str, str]] = {
    "correct": ("correct", "Correct!"),
    "incorrect": ("incorrect", "Incorrect:"),
    "incomplete": ("not_attempted", "Not finished yet:"),
    "not_attempted": ("not_attempted", "Not attempted yet —"),
}


@dataclass(frozen=True)
class Result:
    """The verdict on an answer: ``status`` and the message explaining it (may be empty)."""

    status: Status
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "correct"

    def to_message(self) -> Message:
        """The feedback to show: the status label ("Correct!", ...) followed by the message."""
        kind, label = _LABELS[self.status]
        return Message(kind, label, self.message)


class Verdict:
    """What ``check`` returns: truthy when the answer passed, and invisible in a notebook.

    The feedback has already been displayed, so a notebook cell ending in ``ex.x.check(a)``
    should not also print ``True``; IPython calls ``_ipython_display_`` instead of showing
    the repr.
    """

    __slots__ = ("passed",)

    def __init__(self, passed: bool) -> None:
        self.passed = bool(passed)

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return f"Verdict(passed={self.passed})"

    def _ipython_display_(self) -> None:
        """Show nothing: the feedback message is the display."""


def is_placeholder(value: Any) -> bool:
    """True for the notebook's unanswered placeholders: ``...`` (Ellipsis) and ``None``."""
    return value is ... or value is None


def is_stub_function(value: Any) -> bool:
    """True for a function whose body does nothing (``...``, ``pass``, only a docstring).

    Such a function compiles to "return None" and nothing else, which is what the
    bytecode is compared against (``RESUME``/``NOP`` instructions aside).
    """
    code = getattr(value, "__code__", None)
    if code is None:
        return False
    ops = [(i.opname, i.argval) for i in dis.get_instructions(code)]
    ops = [op for op in ops if op[0] not in {"RESUME", "NOP", "CACHE"}]
    return ops in ([("LOAD_CONST", None), ("RETURN_VALUE", None)], [("RETURN_CONST", None)])


def materialise(value: Sequence[Any] | Callable[[], Sequence[Any]]) -> list[Any]:
    """A list from a sequence, or from a zero-argument function returning one."""
    return list(value() if callable(value) else value)


def _non_empty_text(value: Any, parameter: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{parameter} must be a non-empty string, got {value!r}.")
    return value


class Exercise(ABC):
    """One checked exercise of a lesson; see the package docstring for the conventions.

    Parameters (keyword only)
    -------------------------
    lesson: the lesson number, ``"02"`` (``2`` and ``"2"`` are accepted). Leave it out in a
        lesson module: the registry stamps it (:meth:`bind`).
    name: the attribute name in the lesson namespace, ``ex.<name>``.
    title, prompt: shown by :meth:`show`; ``prompt`` says which variable(s) to fill in.
    hints: one or more hints, shown in order by :meth:`hint`.
    solution_code: self-contained Python source that assigns every name in
        ``answer_names`` (it imports what it needs); shown by :meth:`solution` and
        pasted into the instructor edition.
    answer_names: the notebook variable(s) passed to :meth:`check`, in order (a single
        string for one answer).
    wrong_answers: planted wrong answers that :meth:`check` must reject, for the tests:
        a list, or a zero-argument function returning one (to keep importing the lesson
        fast when building them needs data). With one answer name each entry is the
        answer itself; with several, a tuple with one value per answer name.
    explanation: extra text shown after "Correct!".
    """

    def __init__(
        self,
        *,
        name: str,
        title: str,
        prompt: str,
        hints: Sequence[str],
        solution_code: str,
        answer_names: str | Sequence[str],
        wrong_answers: Sequence[Any] | Callable[[], Sequence[Any]],
        explanation: str = "",
        lesson: str | int | None = None,
    ) -> None:
        self.lesson = None if lesson is None else lesson_id(lesson)
        self.name = check_name(name)
        self.title = _non_empty_text(title, "title")
        self.prompt = _non_empty_text(prompt, "prompt")
        if isinstance(hints, str) or not hints:
            raise ValueError(f"hints must be a non-empty list of strings, got {hints!r}.")
        self.hints = [_non_empty_text(h, "every hint") for h in hints]
        names = (answer_names,) if isinstance(answer_names, str) else tuple(answer_names)
        if not names or len(set(names)) != len(names):
            raise ValueError(
                f"answer_names must be one or more distinct variable names, got {answer_names!r}."
            )
        self.answer_names = tuple(check_name(n, "answer_names") for n in names)
        self.solution_code = _non_empty_text(solution_code, "solution_code")
        try:
            compile(solution_code, f"<solution of {self.key}>", "exec")
        except SyntaxError as err:
            raise ValueError(f"solution_code of {self.key} is not valid Python: {err}") from err
        if isinstance(wrong_answers, str) or not (
            callable(wrong_answers) or isinstance(wrong_answers, Sequence)
        ):
            raise ValueError(
                "wrong_answers must be a list or a zero-argument function returning a list, "
                f"got {type(wrong_answers).__name__}."
            )
        self._wrong_answers = wrong_answers
        if not isinstance(explanation, str):
            raise ValueError(f"explanation must be a string, got {explanation!r}.")
        self.explanation = explanation

    # ----------------------------------------------------------------- identity
    def bind(self, lesson: str | int) -> None:
        """Make this exercise one of ``lesson``'s; an exercise belongs to one lesson only."""
        number = lesson_id(lesson)
        if self.lesson not in (None, number):
            raise ValueError(f"{self!r} belongs to lesson {self.lesson!r}, not to {number!r}.")
        self.lesson = number

    @property
    def key(self) -> str:
        """``"<lesson>.<name>"``, e.g. ``"02.clip"`` (``"??.clip"`` before :meth:`bind`)."""
        return f"{self.lesson or '??'}.{self.name}"

    @property
    def tag(self) -> str:
        """The notebook cell tag of the answer cell, e.g. ``"exercise:02.clip"``."""
        return f"exercise:{self.key}"

    @property
    def wrong_answers(self) -> list[Any]:
        """The planted wrong answers (built on first use if given as a function)."""
        answers = materialise(self._wrong_answers)
        if not answers:
            raise ValueError(f"wrong_answers of {self.key} is empty; plant at least one.")
        return answers

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key}: {self.title}>"

    # ----------------------------------------------------------------- learner-facing
    def show(self) -> None:
        """Display the title and the prompt."""
        show(Message("question", self.title, self._prompt_text()))

    def hint(self, n: int = 1) -> None:
        """Display hint number ``n`` (1-based) and say whether there is a further one."""
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(self.hints):
            raise ValueError(f"n must be a hint number from 1 to {len(self.hints)}, got {n!r}.")
        more = (
            f"\n(Call `ex.{self.name}.hint({n + 1})` for another hint.)"
            if n < len(self.hints)
            else ""
        )
        show(Message("hint", f"Hint {n} of {len(self.hints)}:", self.hints[n - 1] + more))

    def solution(self) -> None:
        """Display the solution code (and the explanation, if any)."""
        show(Message("solution", "Solution:", self.explanation, code=self.solution_code))

    def evaluate(self, *answers: Any) -> Result:
        """Judge ``answers`` without displaying or recording anything; never raises."""
        names = ", ".join(f"`{n}`" for n in self.answer_names)
        if len(answers) != len(self.answer_names):
            return Result(
                "incorrect",
                f"`ex.{self.name}.check` takes {len(self.answer_names)} answer(s), {names}, "
                f"but was given {len(answers)}.",
            )
        if any(self._unanswered(a) for a in answers):
            each = "each `...`" if len(answers) > 1 else "the `...`"
            return Result(
                "not_attempted",
                f"replace {each} with your answer. Call `ex.{self.name}.hint()` for a hint.",
            )
        try:
            return self._evaluate(*answers)
        except Exception as err:  # the learner's object misbehaved; report, never raise
            return Result(
                "incorrect",
                f"Checking your answer failed with {type(err).__name__}: {err}. Is it the kind "
                "of object the exercise asks for? (If it is, please report this course bug.)",
            )

    def check(self, *answers: Any) -> Verdict:
        """Show feedback on ``answers``; on success record the pass. Truthy when correct."""
        result = self.evaluate(*answers)
        show(result.to_message())
        if result.passed and self.lesson is not None:
            record_pass(self.lesson, self.name)
        return Verdict(result.passed)

    # ----------------------------------------------------------------- authors and tests
    def run_solution(self) -> tuple[Any, ...]:
        """Execute ``solution_code`` in a fresh namespace; return the answers it defines."""
        namespace: dict[str, Any] = {"__name__": f"dpcourse_solution_{self.lesson}_{self.name}"}
        exec(compile(self.solution_code, f"<solution of {self.key}>", "exec"), namespace)
        missing = [n for n in self.answer_names if n not in namespace]
        if missing:
            raise ValueError(f"solution_code of {self.key} does not define {', '.join(missing)}.")
        return tuple(namespace[n] for n in self.answer_names)

    def wrong_answer_tuple(self, wrong: Any) -> tuple[Any, ...]:
        """The arguments for ``check`` from one ``wrong_answers`` entry."""
        return (wrong,) if len(self.answer_names) == 1 else tuple(wrong)

    def instructor_cell(self, source: str) -> str:
        """The source of this exercise's tagged answer cell with the solution filled in.

        Placeholders are top-level statements that assign a value containing ``...``
        to an answer name (``my_clipped = ...``, ``answers = {1: ..., 2: ...}``) or
        define a function named like an answer whose body has a ``...`` line. They are
        removed and ``solution_code`` goes where the first one was; every other line
        (the ``check`` call, comments) stays.
        """
        spans = [
            (node.lineno, node.end_lineno or node.lineno)
            for node in ast.parse(source).body
            if self._is_placeholder_statement(node)
        ]
        if not spans:
            raise ValueError(
                f"The cell tagged {self.tag} has no placeholder for "
                f"{', '.join(self.answer_names)}; expected e.g. `{self.answer_names[0]} = ...`."
            )
        lines = source.splitlines()
        inside = {i for start, end in spans for i in range(start - 1, end)}
        first = spans[0][0] - 1
        before = [line for i, line in enumerate(lines[:first]) if i not in inside]
        after = [line for i, line in enumerate(lines[first:], first) if i not in inside]
        return "\n".join([*before, self.solution_code.strip("\n"), *after])

    def _is_placeholder_statement(self, node: ast.stmt) -> bool:
        if isinstance(node, ast.FunctionDef):
            return node.name in self.answer_names and any(
                isinstance(s, ast.Expr)
                and isinstance(s.value, ast.Constant)
                and s.value.value is ...
                for s in node.body
            )
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            named = any(isinstance(t, ast.Name) and t.id in self.answer_names for t in targets)
            return named and any(
                isinstance(n, ast.Constant) and n.value is ... for n in ast.walk(node.value)
            )
        return False

    # ----------------------------------------------------------------- for subclasses
    def _prompt_text(self) -> str:
        variables = ", ".join(self.answer_names)
        return (
            f"{self.prompt}\nPut your answer in `{variables}`, then run "
            f"`ex.{self.name}.check({variables})`."
        )

    def _unanswered(self, answer: Any) -> bool:
        """Whether ``answer`` is still the notebook's placeholder."""
        return is_placeholder(answer)

    @abstractmethod
    def _evaluate(self, *answers: Any) -> Result:
        """Judge attempted answers (right number, none a placeholder). May raise."""
