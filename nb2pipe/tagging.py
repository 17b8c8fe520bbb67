"""``nb2pipe tag``: write the tags inferred from headings into a notebook.

The one command allowed to modify a notebook.  It only adds ``task:NAME``
tags (never removes or reorders anything), writes atomically, and returns
what it changed so the CLI can say so.
"""

from __future__ import annotations

import ast
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .model import Diagnostic, Severity
from .read import read_notebook
from .tags import layout


@dataclass(frozen=True)
class TagChange:
    """One tag added to one cell (0-based index)."""

    cell: int
    tag: str


def infer(path: Path) -> tuple[list[TagChange], list[Diagnostic]]:
    """The ``task:`` tags an untagged notebook would get; none if already tagged."""
    notebook, found = read_notebook(path)
    if notebook is None or any(d.severity is Severity.ERROR for d in found):
        return [], found
    result, more = layout(notebook)
    if not result.inferred:
        return [], found + more
    cells = notebook.cells
    changes = [TagChange(s.cells[0], "setup" if _definitions_only(cells, s.cells)
                         else f"task:{s.name}") for s in result.tasks]
    return changes, found


def _definitions_only(cells, indices) -> bool:
    """Imports, defs and classes only: that is what a `setup` cell is for."""
    hoisted = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return all(isinstance(stmt, hoisted) for i in indices
               for stmt in ast.parse(cells[i].code).body)


def apply(path: Path, changes: list[TagChange]) -> None:
    """Add the tags to an .ipynb file (Jupyter's own JSON layout), atomically."""
    if path.suffix != ".ipynb":
        raise ValueError("nb2pipe tag writes .ipynb files only")
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    for change in changes:
        metadata = data["cells"][change.cell].setdefault("metadata", {})
        tags = metadata.setdefault("tags", [])
        if change.tag not in tags:
            tags.append(change.tag)
    text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    mode = stat.S_IMODE(path.stat().st_mode)
    handle, temporary = tempfile.mkstemp(prefix=".nb2pipe-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        os.chmod(temporary, mode)  # mkstemp makes 0600 files: keep the notebook's mode
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
