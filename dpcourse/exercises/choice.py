"""Multiple-choice questions, single checked ones and end-of-lesson quizzes.

Every option carries an explanation, shown when the learner picks it, so a wrong choice
is always answered with *why* it is wrong. Answers are option keys (``"b"``); questions
with several correct options take a list (``["a", "c"]``) or ``"a, c"``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .core import Exercise, Result, is_placeholder
from .feedback import Message, describe, show

_SEPARATORS = re.compile(r"[,\s]+")
_NUMBER = re.compile(r"[0-9]+")
_OPTION_KEY = re.compile(r"[^,\s]+")


def _key(option: Any) -> str:
    return str(option).strip().lower()


@dataclass(frozen=True, eq=False)
class MultipleChoice:
    """A question with options ``{key: text}``, the correct key(s), and why each option is
    right or wrong (``explanations`` must cover every option)."""

    prompt: str
    options: Mapping[str, str]
    correct: str | Collection[str]
    explanations: Mapping[str, str]

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValueError(f"prompt must be a non-empty string, got {self.prompt!r}.")
        keys = [_key(k) for k in self.options]
        if (
            len(keys) < 2
            or len(set(keys)) != len(keys)
            or not all(_OPTION_KEY.fullmatch(k) for k in keys)
        ):
            raise ValueError(
                "options must map at least two distinct keys (no spaces or commas) to texts, "
                f"got {list(self.options)!r}."
            )
        correct = [self.correct] if isinstance(self.correct, str) else list(self.correct)
        correct_keys = frozenset(_key(k) for k in correct)
        if not correct_keys or not correct_keys < set(keys):
            raise ValueError(
                f"correct must be one or more of the option keys {keys}, leaving at least one "
                f"wrong option, got {self.correct!r}."
            )
        explained = {_key(k) for k in self.explanations}
        if explained != set(keys):
            raise ValueError(
                "explanations must explain every option and nothing else; missing "
                f"{sorted(set(keys) - explained)}, unknown {sorted(explained - set(keys))}."
            )
        object.__setattr__(self, "options", {_key(k): v for k, v in self.options.items()})
        object.__setattr__(self, "explanations", {_key(k): v for k, v in self.explanations.items()})
        object.__setattr__(self, "correct", correct_keys)

    @property
    def multiple(self) -> bool:
        """Whether more than one option is correct ("choose all that apply")."""
        return len(self.correct) > 1

    @property
    def solution(self) -> str | list[str]:
        """The correct answer in the form a learner would write it."""
        return sorted(self.correct) if self.multiple else next(iter(self.correct))

    def text(self) -> str:
        """The question and its options, one per line."""
        lines = [self.prompt + (" (Choose all that apply.)" if self.multiple else "")]
        lines += [f"  {key}) {text}" for key, text in self.options.items()]
        return "\n".join(lines)

    def evaluate(self, answer: Any) -> Result:
        """Judge ``answer``, a key or a collection of keys; explain every wrong choice."""
        if isinstance(answer, str | int) and not isinstance(answer, bool):
            chosen = {k for k in _SEPARATORS.split(_key(answer)) if k}
        elif isinstance(answer, Collection) and not isinstance(answer, Mapping):
            chosen = {_key(k) for k in answer}
        else:
            chosen = set()
        allowed = ", ".join(self.options)
        if not chosen:
            return Result(
                "incorrect",
                f'Answer with the key of an option, such as "{next(iter(self.options))}"; '
                f"got {describe(answer)}.",
            )
        unknown = sorted(chosen - self.options.keys())
        if unknown:
            return Result(
                "incorrect", f"{', '.join(unknown)} is not an option here; choose from {allowed}."
            )
        if len(chosen) > 1 and not self.multiple:
            return Result("incorrect", f"Choose exactly one option ({allowed}).")
        if chosen == self.correct:
            return Result("correct", " ".join(self.explanations[k] for k in sorted(chosen)))
        lines = [
            f"({k}) is not right: {self.explanations[k]}" for k in sorted(chosen - self.correct)
        ]
        missed = len(self.correct - chosen)
        if self.multiple and missed:
            more = "option is" if missed == 1 else "options are"
            lines.append(f"{missed} more correct {more} still to find.")
        return Result("incorrect", "\n".join(lines))


class ChoiceExercise(Exercise):
    """A single checked multiple-choice question.

    ``solution_code`` (``answer_name = "b"``) and, unless given, ``wrong_answers`` (every
    wrong option) are derived from ``question``; ``prompt`` is the question's prompt.
    """

    def __init__(
        self,
        *,
        name: str,
        title: str,
        question: MultipleChoice,
        hints: Sequence[str],
        answer_name: str,
        wrong_answers: Sequence[Any] | None = None,
        lesson: str | int | None = None,
    ) -> None:
        if not isinstance(question, MultipleChoice):
            raise ValueError(f"question must be a MultipleChoice, got {question!r}.")
        self.question = question
        super().__init__(
            lesson=lesson,
            name=name,
            title=title,
            prompt=question.prompt,
            hints=hints,
            solution_code=f"{answer_name} = {question.solution!r}",
            answer_names=answer_name,
            wrong_answers=(
                sorted(question.options.keys() - question.correct)
                if wrong_answers is None
                else wrong_answers
            ),
        )

    def _prompt_text(self) -> str:
        return (
            f"{self.question.text()}\nPut the key of your choice in `{self.answer_names[0]}` "
            f'(e.g. `{self.answer_names[0]} = "a"`), then run '
            f"`ex.{self.name}.check({self.answer_names[0]})`."
        )

    def _evaluate(self, *answers: Any) -> Result:
        return self.question.evaluate(answers[0])


class Quiz(Exercise):
    """An end-of-lesson quiz: numbered :class:`MultipleChoice` questions, answered in one dict.

    ``quiz.ask()`` shows every question (``quiz.ask(2)`` one of them); ``quiz.check({1: "b",
    2: "a", 3: ["a", "c"]})`` explains each answer given, and passes once every question
    is answered correctly in the same dict. A dict with only some questions gives feedback
    on those. ``solution_code`` and ``wrong_answers`` (the solution with one question
    answered wrongly, for each question) are derived from the questions.
    """

    def __init__(
        self,
        *,
        title: str,
        questions: Sequence[MultipleChoice],
        name: str = "quiz",
        answer_name: str = "quiz_answers",
        hints: Sequence[str] = (
            "Each wrong choice is answered with the reason it is wrong; read it, then "
            "look back at the part of the lesson it refers to.",
        ),
        lesson: str | int | None = None,
    ) -> None:
        if not questions or not all(isinstance(q, MultipleChoice) for q in questions):
            raise ValueError(
                f"questions must be a non-empty list of MultipleChoice, got {questions!r}."
            )
        self.questions = tuple(questions)
        solution = {i: q.solution for i, q in enumerate(self.questions, 1)}
        numbers = ", ".join(f"{i}: ..." for i in solution)
        super().__init__(
            lesson=lesson,
            name=name,
            title=title,
            prompt=(
                f"Answer the {len(self.questions)} questions below with the key of your choice, "
                f"in a dict: `{answer_name} = {{{numbers}}}`."
            ),
            hints=hints,
            solution_code=f"{answer_name} = {solution!r}",
            answer_names=answer_name,
            wrong_answers=[
                {**solution, i: sorted(q.options.keys() - q.correct)[0]}
                for i, q in enumerate(self.questions, 1)
            ],
        )

    def __len__(self) -> int:
        return len(self.questions)

    def __getitem__(self, number: int) -> MultipleChoice:
        """Question ``number``, counting from 1 as the quiz shows them."""
        return self.questions[self._number(number) - 1]

    def ask(self, number: int | None = None) -> None:
        """Display every question, or only question ``number``."""
        if number is None:
            self.show()
        else:
            n = self._number(number)
            show(Message("question", f"{self.title}, question {n}", self[n].text()))

    def _number(self, number: Any) -> int:
        text = str(number).strip() if isinstance(number, str | int) else ""
        if (
            isinstance(number, bool)
            or not _NUMBER.fullmatch(text)
            or not 1 <= int(text) <= len(self)
        ):
            raise ValueError(
                f"number must be a question number from 1 to {len(self)}, got {number!r}."
            )
        return int(text)

    def _prompt_text(self) -> str:
        questions = "\n\n".join(f"{i}. {q.text()}" for i, q in enumerate(self.questions, 1))
        return (
            f"{self.prompt}\n\n{questions}\n\nThen run "
            f"`ex.{self.name}.check({self.answer_names[0]})`."
        )

    def _unanswered(self, answer: Any) -> bool:
        if isinstance(answer, Mapping):
            return all(is_placeholder(a) for a in answer.values())
        return super()._unanswered(answer)

    def _evaluate(self, *answers: Any) -> Result:
        (given,) = answers
        if not isinstance(given, Mapping):
            return Result(
                "incorrect",
                f"Answer with a dict from question number to option, such as "
                f'`{{1: "a", 2: "c"}}`; got a {type(given).__name__}.',
            )
        by_number: dict[int, Any] = {}
        for number, answer in given.items():
            try:
                by_number[self._number(number)] = answer
            except ValueError:
                return Result(
                    "incorrect",
                    f"There is no question {number!r}; the questions are 1 to {len(self)}.",
                )
        lines, right, wrong = [], 0, 0
        for n, question in enumerate(self.questions, 1):
            answer = by_number.get(n)
            if is_placeholder(answer):
                lines.append(f"Question {n}: not answered yet.")
                continue
            result = question.evaluate(answer)
            right += result.passed
            wrong += not result.passed
            mark = "✓ correct" if result.passed else "✗"
            lines.append(f"Question {n}: {mark} — {result.message}")
        summary = f"{right} of {len(self)} correct."
        status = "correct" if right == len(self) else "incorrect" if wrong else "incomplete"
        return Result(status, "\n".join([summary, *lines]))
