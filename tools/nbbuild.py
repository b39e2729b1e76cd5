"""Write a notebook from a list of cells: a small helper for authors (not used at run time).

    from nbbuild import md, code, write
    write("notebooks/00_welcome.ipynb", [md("# Title"), code("import dpcourse")])

Cells are stored without outputs and with the course kernelspec, as the hygiene tests
require. Code cells may carry tags (e.g. ``code("...", tags=["exercise:02.clip"])``).
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from dpcourse._files import write_atomic

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str, tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def write(path: str | Path, cells: list[nbformat.NotebookNode]) -> Path:
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = KERNELSPEC
    nb.metadata["language_info"] = {"name": "python"}
    stem = Path(path).stem.split("_")[0]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{stem}-{i:03d}"  # stable ids: rebuilding gives a clean diff
    path = Path(path)
    write_atomic(path, nbformat.writes(nb, version=4) + "\n")
    return path
