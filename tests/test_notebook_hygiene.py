"""Notebooks are committed clean: no outputs, a kernelspec, and a lesson structure."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ has no lessons"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_are_stripped(path):
    nb = json.loads(path.read_text())
    dirty = [
        i
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count"))
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; run `make strip`"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_empty_cells(path):
    cells = json.loads(path.read_text())["cells"]
    empty = [
        cell.get("id", i) for i, cell in enumerate(cells) if not "".join(cell["source"]).strip()
    ]
    assert not empty, f"{path.name}: empty cells {empty}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_kernelspec_is_set(path):
    """Without it JupyterLab opens a 'Select Kernel' dialog for every learner."""
    spec = json.loads(path.read_text())["metadata"].get("kernelspec", {})
    assert spec.get("name") == "python3", path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_structure(path):
    text = "\n".join(
        "".join(c["source"])
        for c in json.loads(path.read_text())["cells"]
        if c["cell_type"] == "markdown"
    ).lower()
    for heading in ("learning objectives", "estimated time", "prerequisites"):
        assert heading in text, f"{path.name} lacks '{heading}'"


#: A cell draws a figure when it calls a course plot, matplotlib, seaborn or ipywidgets'
#: interact (whose figure appears in a widget). The executed book checks the rest: every
#: <img> it renders has alt text (tests/test_course.py).
DRAWS_A_FIGURE = re.compile(
    r"\bplots\.(?!CLASS_NAMES\b|set_style\b)\w+\(|\bplt\.(?:subplots|figure)\(|\bsns\.\w+plot\("
    r"|\bsns\.heatmap\(|\binteract\(|\bax\.(?:plot|hist|bar|barh|scatter|step)\("
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_has_alt_text(path):
    """A one-sentence description in the cell's metadata ("alt"), which the book writes as
    the figure's alt text, for readers who cannot see it."""
    missing, bad = [], []
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] != "code" or not DRAWS_A_FIGURE.search("".join(cell["source"])):
            continue
        alt = cell.get("metadata", {}).get("alt")
        if alt is None:
            missing.append(cell.get("id", i))
        elif not (40 <= len(alt) <= 400 and alt.endswith(".")):
            bad.append(cell.get("id", i))
        elif alt.count(". ") > 0:
            bad.append(cell.get("id", i))
    assert not missing, f"{path.name}: figure cells without metadata 'alt': {missing}"
    assert not bad, f"{path.name}: alt text must be one sentence of 40-400 characters: {bad}"
