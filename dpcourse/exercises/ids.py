"""Identifiers: lesson numbers (``"02"``) and exercise names (``"clip"``)."""

from __future__ import annotations

import keyword
import re

_LESSON = re.compile(r"[0-9]{1,2}")


def lesson_id(lesson: str | int) -> str:
    """The two-digit form of a lesson number: ``2``, ``"2"`` and ``"02"`` all give ``"02"``."""
    text = (
        str(lesson).strip()
        if isinstance(lesson, str | int) and not isinstance(lesson, bool)
        else ""
    )
    if not _LESSON.fullmatch(text):
        raise ValueError(
            f"lesson must be a lesson number such as '02' or 2, got {lesson!r}; "
            "allowed: 0 to 99 as an int or a string of one or two digits."
        )
    return f"{int(text):02d}"


def check_name(name: str, parameter: str = "name") -> str:
    """Return ``name`` if it can be an attribute or a variable: a non-keyword identifier."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(
            f"{parameter} must be a Python identifier that is not a keyword, got {name!r}."
        )
    return name
