"""Does the generated pipeline reproduce the notebook?  Measure it.

Runs the notebook once in a fresh kernel (``record.run_and_capture``),
capturing every product variable at the end of its task's last cell; builds
the generated pipeline with ``ploomber build``; then compares each product
with the notebook's value (``compare.compare``).  The end-to-end tests and
``benchmarks/corpus.py`` use it; ``nb2pipe verify`` will build on it.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .compare import compare
from .record import importable, load_module, run_and_capture
from .write import read_manifest

# Verdicts that do not count against the pipeline.
OK = frozenset({"same", "unstable", "unpicklable"})
PLOOMBER = "import sys; from ploomber_cli.cli import cmd_router; sys.exit(cmd_router())"


@dataclass(frozen=True)
class Row:
    """One product's verdict."""

    task: str
    variable: str
    verdict: str      # "same", "differs", "unstable", "missing-in-notebook", "unpicklable"
    reason: str = ""
    against: str = "notebook"   # a fresh run of the notebook, or the recording


@dataclass(frozen=True)
class Report:
    """The outcome for one notebook."""

    ran: bool
    built: bool
    rows: tuple[Row, ...]
    error: str = ""

    @property
    def same(self) -> bool:
        """Every product equals the notebook's value (unstable ones excepted)."""
        return self.ran and self.built and all(r.verdict in OK for r in self.rows)

    @property
    def first_divergence(self) -> Row | None:
        return next((r for r in self.rows if r.verdict not in OK), None)


def build(out: Path, pipeline: str, python: str | None = None, timeout: int = 1800):
    """``ploomber build`` of one generated pipeline; returns the finished process."""
    command = [python or sys.executable, "-c", PLOOMBER, "build", "-e", pipeline, "--force"]
    return subprocess.run(command, cwd=out, capture_output=True, text=True, timeout=timeout,
                          env=_env())


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}


def check(notebook: Path, out: Path, *, python: str | None = None,
          timeout: int = 600, live: bool = False) -> Report:
    """Build the pipeline and compare every product with the notebook's value.

    Products with a fixture from ``convert --record`` are compared with it (the
    notebook need not run again); the others, or all with ``live``, with a
    fresh run of the notebook.
    """
    manifest = read_manifest(out)
    entry = next(n for n in manifest["notebooks"]
                 if (out / n["source"]).resolve() == notebook.resolve())
    tasks = entry["tasks"]
    recorded = {} if live else _fixtures(entry)
    boundaries = [(max(t["cells"]), [p["variable"] for p in t["products"]
                                     if (t["name"], p["variable"]) not in recorded])
                  for t in tasks]
    with tempfile.TemporaryDirectory(prefix="nb2pipe-capture-") as tmp:
        capture = None
        if any(names for _, names in boundaries):
            capture = run_and_capture(notebook, boundaries, Path(tmp), timeout=timeout,
                                      python=python)
            if not capture.ok:
                return Report(False, False, (), capture.error)
        done = build(out, entry["pipeline"], python)
        if done.returncode != 0:
            return Report(True, False, (), (done.stderr or done.stdout)[-3000:])
        package = entry["package"]
        io = load_module(out / package / "serializers.py", f"_nb2pipe_io_{package}")
        rows = []
        for i, task in enumerate(tasks):
            for product in task["products"]:
                fixture = recorded.get((task["name"], product["variable"]))
                if fixture is not None:
                    rows.append(_recorded_row(task["name"], product, fixture, out, io, entry))
                else:
                    rows.append(_row(i, task["name"], product, capture, out, io))
        if capture is not None and any(r.verdict == "differs" and r.against == "notebook"
                                       for r in rows):
            rows = _against_second_run(notebook, boundaries, tasks, capture, rows, timeout,
                                       python)
        return Report(True, True, tuple(rows))


def _fixtures(entry: dict) -> dict[tuple[str, str], dict]:
    """(task, variable) -> how its recorded output is stored, where one is."""
    recording = entry.get("recording") or {}
    return {(v["task"], v["variable"]): {**v, "data": recording["data"]}
            for v in recording.get("values", ())
            if v["side"] == "output" and v["strategy"] != "none"}


def _recorded_row(task: str, product: dict, fixture: dict, out: Path, io, entry) -> Row:
    """A product against its recorded fixture: the value, or its fingerprint."""
    from .compare import fingerprint, loosen

    name = product["variable"]
    stored = out / fixture["data"] / fixture["path"]
    if not stored.is_file():
        return Row(task, name, "missing-in-notebook", f"{stored} is gone", "recording")
    # randomness upstream: the pipeline draws its own values, only the form can match
    loose = fixture["strategy"] == "loose" or not fixture.get("repeatable", True)
    with importable([str(out.resolve())]):
        actual = io.load(out / product["path"])
        if fixture["strategy"] == "full":
            expected = io.load(stored)
        else:
            expected = json.loads(stored.read_text(encoding="utf-8"))["fingerprint"]
        if loose:
            expected = fingerprint(expected, content=False) \
                if fixture["strategy"] == "full" else loosen(expected)
            reason = compare(expected, fingerprint(actual, content=False))
        elif fixture["strategy"] == "full":
            reason = compare(expected, actual)
        else:
            reason = compare(expected, fingerprint(actual))
    if reason is None and loose:
        return Row(task, name, "unstable", "differs between runs of the notebook: type, "
                   "columns and dtypes match the recording", "recording")
    return Row(task, name, "same" if reason is None else "differs", reason or "", "recording")


def _against_second_run(notebook: Path, boundaries, tasks, first, rows: list[Row],
                        timeout: int, python: str | None) -> list[Row]:
    """Values that differ between two runs of the notebook itself are not the
    pipeline's fault: mark them ``unstable`` (unseeded randomness, clocks)."""
    with tempfile.TemporaryDirectory(prefix="nb2pipe-capture-") as tmp:
        second = run_and_capture(notebook, boundaries, Path(tmp), timeout=timeout, python=python)
        if not second.ok:
            return rows
        index = {t["name"]: i for i, t in enumerate(tasks)}
        marked = []
        for row in rows:
            if row.verdict == "differs" and row.against == "notebook":
                i = index[row.task]
                a = _captured(first, i, row.variable)
                b = _captured(second, i, row.variable)
                if a is not _MISSING and b is not _MISSING and compare(a, b) is not None:
                    row = Row(row.task, row.variable, "unstable",
                              "differs between two runs of the notebook itself")
            marked.append(row)
        return marked


_MISSING = object()


def _captured(capture, i: int, name: str):
    stored = capture.captured.get(i, {}).get(name)
    if stored is None:
        return _MISSING
    with _kernel_path(capture), open(capture.values_dir / str(i) / stored, "rb") as handle:
        return pickle.load(handle)


def _kernel_path(capture, out: Path | None = None):
    """Import as the kernel and the build did: the kernel's sys.path, and the
    generated package for values that reference its helpers."""
    extra = [str(out.resolve())] if out is not None else []
    return importable([*extra, *capture.sys_path])


def _row(i: int, task: str, product: dict, capture, out: Path, io) -> Row:
    name = product["variable"]
    if name in capture.unpicklable.get(i, {}):
        return Row(task, name, "unpicklable", capture.unpicklable[i][name])
    expected = _captured(capture, i, name)
    if expected is _MISSING:
        return Row(task, name, "missing-in-notebook")
    with _kernel_path(capture, out):
        actual = io.load(out / product["path"])
    reason = compare(expected, actual)
    return Row(task, name, "same" if reason is None else "differs", reason or "")
