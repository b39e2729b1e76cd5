"""How exercise feedback looks: one message, shown as HTML in a notebook and as text elsewhere.

A :class:`Message` has a label ("Correct!", "Incorrect:", "Hint 1 of 2:", ...), a body
written in plain text where `backticks` mark code, and optionally a block of code. The
plain-text and HTML renderings contain the same words, so tests (and terminal users)
see exactly what a notebook user reads.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Kind = Literal["correct", "incorrect", "not_attempted", "hint", "solution", "question"]

#: Label background per kind of message. The label is white text on this colour, so it
#: reads the same on JupyterLab's light and dark themes (no single text colour reaches
#: WCAG AA's 4.5:1 on both white and the dark theme's #111 to #212121); white on each of
#: these has a contrast ratio of at least 4.5:1 (tests/test_exercises.py computes it).
COLORS: dict[str, str] = {
    "correct": "#2e7d32",
    "incorrect": "#c62828",
    "not_attempted": "#8a5200",
    "hint": "#1565c0",
    "solution": "#6a1b9a",
    "question": "#37474f",
}
LABEL_TEXT_COLOR = "#ffffff"
_INLINE_CODE = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class Message:
    """A piece of feedback: ``label`` (coloured in HTML), ``body`` text, optional ``code``.

    Verdicts and hints read as one paragraph ("Correct! Well done."); questions and
    solutions put the label on its own line, then the code, then the body.
    """

    kind: Kind
    label: str
    body: str = ""
    code: str | None = None

    @property
    def _block(self) -> bool:
        return self.kind in ("question", "solution")

    def text(self) -> str:
        """The plain-text rendering."""
        if not self._block:
            return f"{self.label} {self.body}".rstrip()
        parts = [self.label, (self.code or "").rstrip(), self.body]
        return "\n".join(p for p in parts if p)

    def html(self) -> str:
        """The HTML rendering: the same words, the label in colour, code in ``<pre>``."""
        label = (
            f'<span style="background-color:{COLORS[self.kind]};color:{LABEL_TEXT_COLOR};'
            f'font-weight:bold;padding:0 0.3em;border-radius:3px">{html.escape(self.label)}</span>'
        )
        body = _INLINE_CODE.sub(r"<code>\1</code>", html.escape(self.body, quote=False))
        body = body.replace("\n", "<br>")
        if not self._block:
            return f'<div class="dpcourse-feedback">{label} {body}</div>'
        code = f"<pre><code>{html.escape(self.code.rstrip())}</code></pre>" if self.code else "<br>"
        return f'<div class="dpcourse-feedback">{label}{code}{body}</div>'

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """Both renderings, so Jupyter shows the HTML and text exports keep the words."""
        return {"text/plain": self.text(), "text/html": self.html()}


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython shell that has a kernel attached)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def show(message: Message) -> None:
    """Display ``message``: rich HTML in a notebook, plain text on stdout otherwise."""
    if in_notebook():
        from IPython.display import display

        display(message)
    else:
        print(message.text())


def describe(value: Any) -> str:
    """A short, readable rendering of a learner's value for feedback messages.

    Numbers get 4 significant digits (``0.012``), arrays their values (abbreviated when
    large) and shape, anything else a ``repr`` cut to 80 characters.
    """
    if isinstance(value, bool | np.bool_):
        return repr(bool(value))
    if isinstance(value, int | float | np.integer | np.floating):
        return f"{float(value):.4g}" if isinstance(value, float | np.floating) else str(value)
    if isinstance(value, np.ndarray):
        with np.printoptions(precision=4, threshold=12, edgeitems=2, suppress=True):
            values = np.array2string(value, separator=", ")
        return f"{values} (shape {value.shape})"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
