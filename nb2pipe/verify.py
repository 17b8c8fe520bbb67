"""``nb2pipe verify OUT``: does the generated pipeline still compute what the
notebook computes?

For every notebook recorded in the project's manifest: run the notebook in a
fresh kernel, build the pipeline (in a temporary copy next to the project,
so that its relative paths still resolve, unless ``in_place``), and compare
each product with the notebook's value at the end of its task.  The verdicts
are data (``equivalence.Report``); the CLI prints them.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .equivalence import Report, check
from .errors import Nb2pipeError
from .write import MANIFEST, digest, read_manifest


@dataclass(frozen=True)
class Verified:
    """One notebook's verdict, and whether it changed since the conversion."""

    notebook: str
    report: Report
    notebook_changed: bool


def verify(out: Path, *, in_place: bool = False, python: str | None = None,
           timeout: int = 600, live: bool = False) -> list[Verified]:
    """Verify every notebook of the project in ``out``.

    Products recorded by ``convert --record`` are compared with the recording;
    the rest (all of them with ``live``) with a fresh run of the notebook.
    """
    manifest = read_manifest(out)
    if manifest is None:
        raise Nb2pipeError(f"{out}: no {MANIFEST}; is this a folder nb2pipe converted into?")
    results = []
    for entry in manifest["notebooks"]:
        notebook = (out / entry["source"]).resolve()
        if not notebook.is_file():
            raise Nb2pipeError(f"{out}: the source notebook {entry['source']} is gone")
        changed = digest(notebook.read_bytes()) != entry["content_hash"]
        report = _in_copy(out, notebook, python, timeout, live) if not in_place else \
            check(notebook, out, python=python, timeout=timeout, live=live)
        results.append(Verified(entry["source"], report, changed))
    return results


def _in_copy(out: Path, notebook: Path, python: str | None, timeout: int,
             live: bool) -> Report:
    """Build in a sibling copy: same depth as ``out``, so relative workdirs resolve."""
    sibling = Path(tempfile.mkdtemp(prefix=f".{out.name}.verify-", dir=out.resolve().parent))
    try:
        shutil.copytree(out, sibling, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("products", "__pycache__"))
        return check(notebook, sibling, python=python, timeout=timeout, live=live)
    finally:
        shutil.rmtree(sibling, ignore_errors=True)
