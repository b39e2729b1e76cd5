"""Strip outputs and execution counts from notebooks (run by `make strip`).

Usage: python tools/strip_notebooks.py [NOTEBOOK ...]   (default: notebooks/*.ipynb)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `make strip` runs it with any Python 3.11, not the venv's

from dpcourse._files import write_atomic  # noqa: E402  (standard library only)

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def strip(path: Path) -> bool:
    """Clear outputs, execution counts and volatile metadata; return True if changed."""
    before = path.read_text()
    nb = json.loads(before)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        cell.get("metadata", {}).pop("execution", None)
    nb["metadata"]["kernelspec"] = KERNELSPEC
    nb["metadata"].pop("widgets", None)
    after = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if after != before:
        write_atomic(path, after)
    return after != before


def main(argv: list[str]) -> None:
    paths = [Path(a) for a in argv] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    for path in paths:
        if strip(path):
            print(f"stripped {path}")


if __name__ == "__main__":
    main(sys.argv[1:])
