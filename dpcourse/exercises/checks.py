"""Exercises whose answer is a value or a function: numeric, function and predicate checks.

Numbers and arrays are compared with ``numpy.allclose``: ``|answer - expected| <= atol +
rtol * |expected|`` element-wise, shapes equal. When an answer is wrong the learner gets
the first matching :class:`Mistake` (a known wrong turn with its own advice), otherwise a
description of how the answer differs (too large, wrong shape, NaN, ...).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .core import Exercise, Result, is_stub_function, materialise
from .feedback import describe

_NOT_COMPUTED = object()


@dataclass(frozen=True)
class Mistake:
    """A recognisable wrong answer and the advice it deserves.

    ``matches(answer, expected)`` gets the learner's answer (as a float array for numeric
    exercises, as returned for function exercises) and the expected value. ``message``
    may contain ``{answer}``, replaced by a short rendering of the answer.
    """

    matches: Callable[[Any, Any], bool]
    message: str

    def applies(self, answer: Any, expected: Any) -> bool:
        """``matches``, with a predicate that raises counting as no match."""
        try:
            return bool(self.matches(answer, expected))
        except Exception:  # a predicate written for numbers meeting a string, say
            return False

    def feedback(self, answer: Any) -> str:
        """``message`` with ``{answer}`` filled in."""
        return self.message.replace("{answer}", describe(answer))


def off_by_factor(factor: float, message: str, rtol: float = 1e-3) -> Mistake:
    """The mistake "answer ≈ factor × expected" (e.g. 10 for a forgotten division by 10)."""
    if not np.isfinite(factor) or factor == 0 or factor == 1:
        raise ValueError(f"factor must be finite and neither 0 nor 1, got {factor!r}.")
    return Mistake(
        lambda answer, expected: np.allclose(
            answer, factor * np.asarray(expected), rtol=rtol, atol=0
        ),
        message,
    )


def output_mistake(
    wrong: Callable[..., Any],
    cases: Callable[[], Sequence[tuple[Any, ...]]],
    message: str,
) -> Mistake:
    """The mistake "the answer is what the wrong implementation ``wrong`` returns on one of
    the ``cases``", for function exercises.

    A :class:`FunctionExercise` tries its mistakes on the first case the learner's function
    gets wrong; comparing with ``wrong``'s output on every case recognises the wrong turn
    whichever case that is.
    """

    def matches(answer: Any, expected: Any) -> bool:
        got = np.asarray(answer, dtype=float)
        for case in cases():
            reference = np.asarray(wrong(*copy.deepcopy(case)), dtype=float)
            if got.shape == reference.shape and np.allclose(got, reference, rtol=1e-5):
                return True
        return False

    return Mistake(matches, message)


def _is_numeric(value: Any) -> bool:
    return np.asarray(value).dtype.kind in "biuf"


def _as_float_array(value: Any) -> np.ndarray | None:
    """``value`` as a float array, or None if it is not numbers (text counts as not numbers)."""
    if isinstance(value, str | bytes):
        return None
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None


def difference(actual: Any, expected: Any, rtol: float, atol: float, subject: str) -> str | None:
    """How ``actual`` differs from ``expected`` as a sentence about ``subject``, or None if close.

    Numeric expectations use ``numpy.allclose(actual, expected, rtol, atol)`` with equal
    shapes; anything else uses ``==``.
    """
    if actual is None:
        return f"{subject} is None — did you forget to `return` or assign a value?"
    if not _is_numeric(expected):
        return None if actual == expected else f"{subject} {describe(actual)} is not right."
    got = _as_float_array(actual)
    if got is None:
        return (
            f"{subject} should be a number or an array of numbers, but it is a "
            f"{type(actual).__name__}: {describe(actual)}."
        )
    want = np.asarray(expected, dtype=float)
    if got.shape != want.shape:
        return f"{subject} has shape {got.shape} but should have shape {want.shape}."
    if np.isnan(got).any() and not np.isnan(want).any():
        return f"{subject} contains NaN (not a number); look for a 0/0 or a log of 0."
    if np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True):
        return None
    if got.ndim == 0:
        direction = "large" if got > want else "small"
        return f"{subject} {describe(float(got))} is too {direction}."
    wrong = ~np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    where = np.unravel_index(np.argmax(wrong), want.shape)
    return (
        f"{subject} differs from the expected array in {int(wrong.sum())} of {wrong.size} "
        f"entries; at index {tuple(int(i) for i in where)} it is {describe(float(got[where]))}."
    )


def _check_tolerances(rtol: float, atol: float) -> None:
    for parameter, value in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(value, int | float) and np.isfinite(value) and value >= 0):
            raise ValueError(f"{parameter} must be a finite number >= 0, got {value!r}.")


class NumericExercise(Exercise):
    """The answer is a number (or array) compared with ``expected()`` within ``rtol``/``atol``.

    ``expected`` is a zero-argument function, called once on the first check, so that a
    lesson module imports instantly even when the expected value needs the data set.
    With several ``answer_names`` it returns a tuple, one value per name. ``mistakes``
    are tried in order when the answer is wrong.
    """

    def __init__(
        self,
        *,
        expected: Callable[[], Any],
        rtol: float = 1e-5,
        atol: float = 1e-8,
        mistakes: Sequence[Mistake] = (),
        **common: Any,
    ) -> None:
        super().__init__(**common)
        if not callable(expected):
            raise ValueError(
                f"expected must be a zero-argument function returning the value, got {expected!r}."
            )
        _check_tolerances(rtol, atol)
        self._expected_fn = expected
        self._expected = _NOT_COMPUTED
        self.rtol, self.atol = rtol, atol
        self.mistakes = tuple(mistakes)

    def expected(self) -> Any:
        """The reference value (computed on first use, then cached)."""
        if self._expected is _NOT_COMPUTED:
            self._expected = self._expected_fn()
        return self._expected

    def _evaluate(self, *answers: Any) -> Result:
        expected = self.expected()
        results = []
        for name, answer, want in zip(
            self.answer_names, answers, expected if len(answers) > 1 else (expected,), strict=True
        ):
            subject = f"Your value for `{name}`" if len(answers) > 1 else "Your value"
            problem = difference(answer, want, self.rtol, self.atol, subject)
            if problem is None:
                continue
            mistake = next((m for m in self.mistakes if self._mistaken(m, answer, want)), None)
            results.append(mistake.feedback(answer) if mistake else problem)
        if results:
            return Result("incorrect", "\n".join(results))
        return Result("correct", self.explanation)

    @staticmethod
    def _mistaken(mistake: Mistake, answer: Any, expected: Any) -> bool:
        value = _as_float_array(answer)
        return value is not None and mistake.applies(value, expected)


class FunctionExercise(Exercise):
    """The answer is a function, run on ``cases`` and compared with ``reference``.

    ``cases`` lists the positional-argument tuples to try (or is a zero-argument
    function returning them). Each call gets its own deep copy of the arguments, so a
    function that modifies its input cannot affect the reference or the next case.
    Outputs are compared like :class:`NumericExercise` answers; the first failing case
    is reported with its input, the learner's output and the expected output.
    """

    def __init__(
        self,
        *,
        reference: Callable[..., Any],
        cases: Sequence[tuple[Any, ...]] | Callable[[], Sequence[tuple[Any, ...]]],
        rtol: float = 1e-5,
        atol: float = 1e-8,
        mistakes: Sequence[Mistake] = (),
        **common: Any,
    ) -> None:
        super().__init__(**common)
        if len(self.answer_names) != 1:
            raise ValueError(
                "answer_names of a FunctionExercise must name one function, "
                f"got {self.answer_names!r}."
            )
        if not callable(reference):
            raise ValueError(f"reference must be a function, got {reference!r}.")
        if not (callable(cases) or (isinstance(cases, Sequence) and cases)):
            raise ValueError(
                f"cases must be a non-empty list of argument tuples (or a function returning "
                f"one), got {cases!r}."
            )
        _check_tolerances(rtol, atol)
        self.reference = reference
        self._cases = cases
        self.rtol, self.atol = rtol, atol
        self.mistakes = tuple(mistakes)

    @property
    def cases(self) -> list[tuple[Any, ...]]:
        """The argument tuples the learner's function is tried on."""
        return [tuple(case) for case in materialise(self._cases)]

    def _unanswered(self, answer: Any) -> bool:
        return super()._unanswered(answer) or is_stub_function(answer)

    def _evaluate(self, *answers: Any) -> Result:
        (function,) = answers
        if not callable(function):
            return Result(
                "incorrect",
                f"Pass your function itself (without calling it); got a "
                f"{type(function).__name__}: {describe(function)}.",
            )
        label = getattr(function, "__name__", "your_function")
        for args in self.cases:
            call = f"{label}({', '.join(describe(a) for a in args)})"
            expected = self.reference(*copy.deepcopy(args))
            try:
                actual = function(*copy.deepcopy(args))
            except Exception as err:
                return Result(
                    "incorrect",
                    f"Your function raised {type(err).__name__}: {err}\nwhen called as {call}.",
                )
            problem = difference(actual, expected, self.rtol, self.atol, "The result")
            if problem is None:
                continue
            mistake = next((m for m in self.mistakes if m.applies(actual, expected)), None)
            advice = mistake.feedback(actual) if mistake else problem
            return Result(
                "incorrect",
                f"For {call}:\n{advice}\nExpected: {describe(expected)}\nGot: {describe(actual)}",
            )
        return Result("correct", self.explanation)


class PredicateExercise(Exercise):
    """Anything else: ``predicate(*answers)`` returns ``(ok, message)``.

    Use it for answers judged by a property rather than a value (e.g. "a noise
    multiplier that gives ε ≤ 1"). ``message`` explains a failure, or adds to the
    explanation on success.
    """

    def __init__(self, *, predicate: Callable[..., tuple[bool, str]], **common: Any) -> None:
        super().__init__(**common)
        if not callable(predicate):
            raise ValueError(
                f"predicate must be a function returning (ok, message), got {predicate!r}."
            )
        self.predicate = predicate

    def _evaluate(self, *answers: Any) -> Result:
        ok, message = self.predicate(*answers)
        if ok:
            return Result("correct", " ".join(t for t in (message, self.explanation) if t))
        return Result("incorrect", message)
