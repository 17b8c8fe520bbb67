"""The driver: the one place that knows the order of the stages.

    read -> tags -> analyse -> plan -> render -> write

``convert()`` and ``check()`` are the library API the CLI, the Jupyter
server extension and the batch runner call; they return ``Result`` values
and raise only for the fatal (``errors.Nb2pipeError``).
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from . import __version__, codes
from .analyse import Analysis, analyse
from .model import Diagnostic, Layout, Location, Notebook, Result, Severity
from .read import read_notebook
from .tags import layout as read_layout

NOTEBOOK_SUFFIXES = (".ipynb",)
TEXT_SUFFIXES = (".py", ".md", ".myst", ".mystnb")
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Front:
    """The outcome of the analysis stages for one notebook."""

    notebook: Notebook | None
    layout: Layout | None
    analysis: Analysis | None
    diagnostics: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return self.notebook is not None and not any(
            d.severity is Severity.ERROR for d in self.diagnostics)


def front(path: Path) -> Front:
    """read -> tags -> analyse for one notebook; stops at the first fatal stage."""
    notebook, found = read_notebook(path)
    if notebook is None or _errors(found):
        return Front(notebook, None, None, tuple(found))
    layout, more = read_layout(notebook)
    found += more
    if _errors(found) or not layout.tasks:
        return Front(notebook, layout, None, tuple(found))
    analysis, more = analyse(notebook, layout)
    found += more
    return Front(notebook, layout, analysis, tuple(found))


def _errors(found: list[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in found)


def discover(source: Path) -> list[Path]:
    """The notebooks a path stands for: the file itself, or a folder's notebooks."""
    if source.is_dir():
        found = [p for p in sorted(source.rglob("*.ipynb"))
                 if ".ipynb_checkpoints" not in p.parts and not any(
                     part.startswith(".") for part in p.relative_to(source).parts)]
        return found
    return [source]


def check(source: Path) -> list[Result]:
    """Lint tags and data flow of every notebook; writes nothing."""
    results = []
    for path in discover(source):
        result = front(path)
        tasks = tuple(s.name for s in result.layout.tasks) if result.layout else ()
        results.append(Result(str(path), _sorted(result.diagnostics), tasks=tasks))
    return results


@dataclass(frozen=True)
class RecordOptions:
    """How ``convert --record`` runs the notebook (see recording.py, fixtures.py)."""

    repeat: int = 2                 # runs, to find values that differ between runs
    timeout: int = 600              # seconds per cell
    cap: int = 20 * 1024 * 1024     # fixture bytes per notebook
    python: str | None = None       # the kernel's interpreter; default: the python3 kernel


def convert(source: Path, out: Path, *, force: bool = False,
            record: RecordOptions | None = None) -> Result:
    """Convert a notebook (or a folder of notebooks) into one project in ``out``.

    With ``record``, each notebook is also run (``repeat`` times) and its task
    boundaries become typed signatures, fixtures and characterization tests.
    Nothing is written unless every notebook converts (and runs) without errors.
    """
    from . import plan as planning
    from . import render, write

    paths = discover(source)
    if not paths:
        loc = Location(str(source))
        return Result(str(source), (codes.make("NB105", loc),), out=out)
    single = source.is_file()
    fronts = [front(p) for p in paths]
    found = [d for f in fronts for d in f.diagnostics]
    found += _name_clashes(fronts)
    if _errors(found) or not all(f.ok for f in fronts):
        return Result(str(source), _sorted(found), out=out)
    recorded: dict[str, tuple] = {}
    if record is not None:
        found += _record(fronts, record, recorded)
        if _errors(found):
            return Result(str(source), _sorted(found), out=out)
    plans = [planning.plan(f.notebook, f.analysis, out, single, *recorded.get(f.notebook.name,
                                                                               (None, None)))
             for f in fronts]
    files: dict[str, str | bytes] = {}
    for i, (p, f) in enumerate(zip(plans, fronts)):
        rendered = render.render_notebook(p)
        if p.package in recorded:
            plans[i], rendered, fixtures, more = _recompute(p, f, rendered, recorded[p.package],
                                                           record, out, single)
            recorded[p.package] = (recorded[p.package][0], fixtures)
            rendered.update(fixtures.files)
            found += more
        files.update(rendered)
    files.update(_project_files(plans, source, out, single))
    for path, line, message in render.lint(files):
        found.append(codes.make("NB505", Location(path), detail=f"code, line {line}: {message}"))
    try:
        with write.locked(out):  # one lock across the edit check and the write
            found += write.preflight(out, files, force)
            if _errors(found):
                return Result(str(source), _sorted(found), out=out)
            manifest = _manifest(plans, files, out, recorded)
            written = write.write(out, files, manifest)
    except write.Locked as error:
        return Result(str(source), _sorted([*found, error.diagnostic]), out=out)
    tasks = tuple(t.name for p in plans for t in p.tasks)
    # run times vary: they are reported, not written (converting twice gives the same bytes)
    seconds = {pkg: list(recording.seconds) for pkg, (recording, _) in recorded.items()}
    return Result(str(source), _sorted(found), files=tuple(written), out=out, tasks=tasks,
                  extra={"manifest": manifest, "record_seconds": seconds})


def _record(fronts: list[Front], options: RecordOptions,
            recorded: dict[str, tuple]) -> list[Diagnostic]:
    """read -> tags -> analyse -> **record -> fixtures**, for each notebook; fills
    ``recorded[package] = (recording, fixtures)`` while the run's values exist."""
    import tempfile

    from . import fixtures as fixture_stage
    from . import recording as recording_stage

    found: list[Diagnostic] = []
    with tempfile.TemporaryDirectory(prefix="nb2pipe-record-") as workspace:
        for f in fronts:
            assert f.notebook is not None and f.analysis is not None
            recording, more = recording_stage.record(
                f.notebook, f.analysis, Path(workspace) / f.notebook.name,
                repeat=options.repeat, timeout=options.timeout, python=options.python)
            found += more
            if recording is None:
                return found
            fixtures, more = fixture_stage.build(recording, f.notebook, f.analysis,
                                                 f.notebook.name, options.cap)
            found += more
            recorded[f.notebook.name] = (recording, fixtures)
    return found


def _recompute(plan, front: Front, rendered: dict, recorded: tuple, options: RecordOptions,
               out: Path, single: bool) -> tuple:
    """Tasks tested on row samples get their outputs from the rendered function
    (``fixtures.recompute``).  A task that fails there loses its test, so the
    notebook is planned and rendered again without it.

    Returns (plan, rendered files, fixtures, diagnostics).
    """
    from . import fixtures as fixture_stage
    from . import plan as planning
    from . import render

    recording, fixtures = recorded
    updated, found = fixture_stage.recompute(fixtures, plan, rendered, options.python,
                                             options.timeout)
    if updated.tested != fixtures.tested:
        plan = planning.plan(front.notebook, front.analysis, out, single, recording, updated)
        rendered = render.render_notebook(plan)
    return plan, rendered, updated, found


def _name_clashes(fronts: list[Front]) -> list[Diagnostic]:
    seen: dict[str, Path] = {}
    found = []
    for f in fronts:
        if f.notebook is None:
            continue
        other = seen.setdefault(f.notebook.name, f.notebook.path)
        if other != f.notebook.path:
            found.append(codes.make("NB504", Location(f.notebook.display),
                                    detail=f"{other} and {f.notebook.path} would both become "
                                           f"package {f.notebook.name!r}"))
    return found


def _project_files(plans, source: Path, out: Path, single: bool) -> dict[str, str]:
    """README, requirements and the conftest that puts the project on sys.path."""
    from . import render

    modules: set[str] = set()
    extra = set(render.RUNTIME)
    for p in plans:
        for text in [p.helpers_imports, *(t.imports for t in p.tasks)]:
            for line in text:
                modules.add(line.split()[1].split(".")[0])
        formats = {prod.format for t in p.tasks for prod in t.products}
        extra |= {"pyarrow"} if "parquet" in formats else set()
        extra |= {"joblib"} if "joblib" in formats else set()
        extra |= set(p.requirements)
    modules -= {p.package for p in plans}
    rel = Path(os.path.relpath(source.resolve(), out.resolve())).as_posix()
    build = "ploomber build" if single else "\n".join(
        f"ploomber build -e {p.pipeline_file}" for p in plans)
    layout = "\n".join(f"- `{p.pipeline_file}`: package `{p.package}/`, tasks "
                       + ", ".join(f"`{t.name}`" for t in p.tasks) for p in plans)
    sources = ", ".join(f"`{p.notebook.display}`" for p in plans)
    title = plans[0].package if single else out.name
    return {
        "README.md": render.readme(title, sources, layout, build,
                                   f"nb2pipe convert {shlex.quote(rel)} -o ."),
        "requirements.txt": render.requirements(modules, extra),
        "conftest.py": render.root_conftest(),
    }


def _manifest(plans, files: dict[str, str | bytes], out: Path,
              recorded: dict[str, tuple]) -> dict:
    """The machine-readable record of the conversion (docs/project-layout.md)."""
    from .write import digest

    notebooks = []
    for p in plans:
        entry = {
            "source": Path(os.path.relpath(p.notebook.path.resolve(), out.resolve())).as_posix(),
            "content_hash": p.notebook.content_hash,
            "package": p.package,
            "pipeline": p.pipeline_file,
            "tasks": [{
                "name": t.name,
                "cells": list(t.cells),
                "upstream": list(t.upstream),
                "products": [{"variable": x.variable, "path": x.path, "format": x.format}
                             for x in t.products],
            } for t in p.tasks],
        }
        if p.package in recorded:
            entry["recording"] = _recording_entry(*recorded[p.package])
        notebooks.append(entry)
    manifest: dict = {"format_version": MANIFEST_VERSION, "nb2pipe_version": __version__}
    if len(notebooks) == 1:
        # SPEC §3's flat form for the common case of one notebook per project
        only = notebooks[0]
        manifest.update(source=only["source"], content_hash=only["content_hash"],
                        tasks=only["tasks"])
    manifest["notebooks"] = notebooks
    manifest["files"] = {path: digest(text) for path, text in sorted(files.items())}
    return manifest


def _recording_entry(recording, fixtures) -> dict:
    """How each recorded value was stored (strategy per value; docs/recording.md)."""
    return {
        "runs": len(recording.seconds),
        "data": fixtures.data_dir,
        "bytes": fixtures.total,
        "tested": list(fixtures.tested),
        "values": [{"task": f.task, "side": f.side, "variable": f.variable, "type": f.type,
                    "stable": f.stable, "repeatable": f.repeatable,
                    "strategy": f.strategy, "path": f.path,
                    "format": f.format, "bytes": f.bytes, **({"note": f.note} if f.note else {})}
                   for f in fixtures.items],
    }


def _sorted(found: list[Diagnostic] | tuple[Diagnostic, ...]) -> tuple[Diagnostic, ...]:
    """Errors first, then by place, for stable output."""
    return tuple(sorted(found, key=lambda d: (-d.severity, d.location.path,
                                              d.location.cell or 0, d.location.line or 0,
                                              d.location.col or 0, d.code)))
