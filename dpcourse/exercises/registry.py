"""Finding the exercises: one module ``lessonNN.py`` per lesson, loaded by number.

A lesson module registers its exercises by listing them in ``EXERCISES``; :func:`load`
stamps each with the lesson number of the module (as learntools' ``bind_exercises`` binds
a lesson's exercises to it), so no exercise repeats it. The lesson's title is the heading
of its notebook, from the course's lesson list (``dpcourse.course.lessons``).
:func:`load` imports the module and returns a :class:`LessonExercises` namespace
(``ex.clip``); :func:`all_exercises` walks every lesson module in the package, which is
how the tests cover future lessons automatically.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from .core import Exercise
from .ids import lesson_id
from .tracking import passed_exercises

PACKAGE = __name__.rpartition(".")[0]
_LESSON_MODULE = re.compile(r"lesson([0-9]{2})")


class LessonExercises:
    """The exercises of one lesson as attributes: ``ex = load("02"); ex.clip.check(...)``."""

    def __init__(self, lesson: str, title: str, exercises: tuple[Exercise, ...]) -> None:
        self._lesson = lesson
        self._title = title
        self._exercises = {e.name: e for e in exercises}

    @property
    def lesson(self) -> str:
        return self._lesson

    @property
    def title(self) -> str:
        return self._title

    def _missing(self, name: str) -> str:
        lesson, known = self.__dict__.get("_lesson"), ", ".join(self.__dict__.get("_exercises", {}))
        return f"Lesson {lesson} has no exercise {name!r}; its exercises: {known}."

    def __getattr__(self, name: str) -> Exercise:
        exercises = self.__dict__.get("_exercises", {})
        if name in exercises:
            return exercises[name]
        raise AttributeError(self._missing(name))

    def __getitem__(self, name: str) -> Exercise:
        if name in self._exercises:
            return self._exercises[name]
        raise KeyError(self._missing(name))

    def __dir__(self) -> list[str]:
        return [*super().__dir__(), *self._exercises]

    def __iter__(self) -> Iterator[Exercise]:
        return iter(self._exercises.values())

    def __len__(self) -> int:
        return len(self._exercises)

    def __repr__(self) -> str:
        listing = "\n".join(f"  ex.{e.name}: {e.title}" for e in self)
        return f"Lesson {self.lesson} ({self.title}), {len(self)} exercises:\n{listing}"


@functools.cache
def _notebook_titles() -> dict[str, str]:
    """Lesson number → title, from each notebook's heading ``# NN · Title``."""
    from dpcourse.course import lessons as course_lessons  # reads notebooks/NN_*.ipynb

    return {
        lesson.number: re.sub(rf"^{lesson.number}\s*·\s*", "", lesson.title)
        for lesson in course_lessons()
    }


def lessons() -> list[str]:
    """The lesson numbers that have an exercise module, in order (e.g. ``["00", "02"]``)."""
    package = importlib.import_module(PACKAGE)
    found = (_LESSON_MODULE.fullmatch(m.name) for m in pkgutil.iter_modules(package.__path__))
    return sorted(m.group(1) for m in found if m)


def load(lesson: str | int) -> LessonExercises:
    """The exercises of ``lesson`` (``"02"``, ``"2"`` or ``2``) as a namespace.

    Stamps the lesson number on the module's ``EXERCISES`` (an exercise given another
    lesson is an error) and checks that their names are distinct and do not hide the
    namespace's own attributes. The title is the notebook's (``"lesson NN"`` where the
    notebooks are not installed).
    """
    number = lesson_id(lesson)
    available = lessons()
    if number not in available:
        raise ValueError(
            f"lesson {lesson!r} has no exercises; lessons with exercises: {', '.join(available)}."
        )
    module = importlib.import_module(f"{PACKAGE}.lesson{number}")
    exercises = tuple(getattr(module, "EXERCISES", ()))
    where = Path(module.__file__ or module.__name__).name
    if not exercises:
        raise ValueError(f"{where} must define EXERCISES, a non-empty list of its exercises.")
    reserved = set(dir(LessonExercises))
    names: set[str] = set()
    for exercise in exercises:
        if not isinstance(exercise, Exercise):
            raise ValueError(f"EXERCISES in {where} must hold Exercise objects, got {exercise!r}.")
        if exercise.lesson not in (None, number):
            raise ValueError(
                f"{exercise!r} is listed in {where} but says lesson {exercise.lesson!r}."
            )
        exercise.bind(number)
        if exercise.name in names or exercise.name in reserved:
            raise ValueError(
                f"Exercise name {exercise.name!r} in {where} is used twice or is reserved "
                f"({', '.join(sorted(n for n in reserved if not n.startswith('_')))})."
            )
        names.add(exercise.name)
    return LessonExercises(number, _notebook_titles().get(number, f"lesson {number}"), exercises)


def all_exercises() -> Iterator[Exercise]:
    """Every registered exercise of every lesson, lesson by lesson."""
    for number in lessons():
        yield from load(number)


def from_tag(tag: str) -> Exercise:
    """The exercise named by a notebook cell tag such as ``"exercise:02.clip"``."""
    match = re.fullmatch(r"exercise:([0-9]{2})\.(\w+)", tag) if isinstance(tag, str) else None
    if match is None:
        raise ValueError(f"tag must look like 'exercise:02.clip', got {tag!r}.")
    try:
        return load(match.group(1))[match.group(2)]
    except KeyError as err:
        raise ValueError(f"tag {tag!r} names no exercise: {err.args[0]}") from None


def progress() -> pd.DataFrame:
    """Exercises passed per lesson: columns ``title, passed, total, percent``, indexed by lesson.

    Only exercises that still exist count; a notebook shows the frame as a table.
    """
    done = passed_exercises()
    rows = []
    for number in lessons():
        namespace = load(number)
        passed = sum(e.key in done for e in namespace)
        rows.append(
            {
                "lesson": number,
                "title": namespace.title,
                "passed": passed,
                "total": len(namespace),
                "percent": round(100 * passed / len(namespace)),
            }
        )
    columns = ["lesson", "title", "passed", "total", "percent"]
    return pd.DataFrame(rows, columns=columns).set_index("lesson")
