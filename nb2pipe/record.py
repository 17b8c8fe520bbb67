"""Execute a notebook once and capture the values that cross task boundaries.

This is the notebook half of the equivalence proof (SPEC §4): ``--record``
stores what the notebook held at every boundary so that generated
characterization tests and ``nb2pipe verify`` can compare the pipeline against
it.  The notebook runs in a fresh kernel of the *user's* environment (its
kernelspec, or a given interpreter), in its own folder, exactly as a person
would run it top to bottom.

How: the notebook is read into memory (the user's file is never written), a
small capture cell is injected after every boundary cell, and nbclient runs the
copy.  Capture cells run with ``store_history=False`` and do their work inside
an ``exec`` namespace of their own, so the notebook sees no new globals, no
shifted execution counts and no changed ``_``/``In``/``Out`` history.  Each
capture cell pickles the requested globals into ``dest/<boundary id>/`` and
writes a small JSON report that the host reads back.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

INSTALL_HINT = "install it into the kernel's environment: pip install ipykernel"

# Metadata key marking an injected cell; its value is the boundary id.
_CAPTURE_KEY = "nb2pipe_capture"
# Metadata key carrying the original index of a notebook cell in the copy.
_ORIGIN_KEY = "nb2pipe_origin"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")

# Runs inside the kernel, in a namespace of its own (never the user's).  It must
# work on any Python 3 a user's kernel may have, so it stays plain.
_KERNEL_CODE = r'''
def _capture(ns, names, out_dir, report_path):
    import json, os, pickle, sys, types
    try:
        import cloudpickle
    except Exception:
        cloudpickle = None

    class _ByValuePickler(pickle.Pickler):
        """Refuse references to __main__: they cannot be loaded elsewhere."""

        def reducer_override(self, obj):
            if isinstance(obj, (type, types.FunctionType)) and getattr(
                obj, "__module__", None
            ) == "__main__":
                raise pickle.PicklingError(
                    "%r is defined in the notebook and cannot be loaded elsewhere"
                    " (install cloudpickle in the kernel to capture it by value)"
                    % getattr(obj, "__qualname__", obj)
                )
            return NotImplemented

    def dump(value, path):
        try:
            with open(path, "wb") as f:
                _ByValuePickler(f, protocol=4).dump(value)
            return ""
        except Exception as e:
            reason = "%s: %s" % (type(e).__name__, e)
        if cloudpickle is not None:
            try:
                with open(path, "wb") as f:
                    cloudpickle.dump(value, f, protocol=4)
                return ""
            except Exception as e:
                reason += " (cloudpickle: %s: %s)" % (type(e).__name__, e)
        if os.path.exists(path):
            os.remove(path)
        return reason

    def public_type(value):
        """``pandas.DataFrame``, not ``pandas.core.frame.DataFrame``: the shortest
        module path that exports the type, or "" when none does."""
        cls = type(value)
        module, qualname = cls.__module__ or "", cls.__qualname__
        if module == "builtins":
            return qualname
        parts = module.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix.split(".")[-1].startswith("_") or prefix not in sys.modules:
                continue
            found = sys.modules[prefix]
            for attr in qualname.split("."):
                found = getattr(found, attr, None)
            if found is cls:
                return prefix + "." + qualname
        return ""

    def rng_states():
        """Each global random generator's state: [digest, fresh].  A task that
        changes the digest draws from the generator; one whose digest after the
        task differs between runs was never seeded (the analysis cannot see
        draws in local modules).  ``fresh``: nothing drawn since it was seeded,
        for a generator first imported inside a task."""
        import hashlib

        found = {}
        if "random" in sys.modules:
            state = sys.modules["random"].getstate()
            found["random"] = [hashlib.sha1(repr(state).encode()).hexdigest(),
                               state[1][-1] == 624 and state[2] is None]
        if "numpy" in sys.modules:
            try:  # numpy 2 imports numpy.random lazily: this may import it
                state = sys.modules["numpy"].random.get_state()
                digest = hashlib.sha1(state[1].tobytes() + repr(state[2:]).encode())
                # seeding leaves the position at 623 (SeedSequence) or 624
                found["numpy.random"] = [digest.hexdigest(),
                                         state[2] in (623, 624) and not state[3]]
            except Exception:
                pass
        return found

    hidden = {"In", "Out", "get_ipython", "exit", "quit", "open"}
    os.makedirs(out_dir, exist_ok=True)
    # where the notebook's own modules come from, for whoever loads the values
    paths = [os.path.abspath(p or ".") for p in sys.path]
    report = {"captured": {}, "missing": [], "unpicklable": {}, "sys_path": paths,
              "types": {}, "modules": {}, "rng": rng_states(),
              # which object each global holds now: a task that rebinds a name
              # the analysis did not see shows up as a changed id
              "ids": {k: id(v) for k, v in list(ns.items())
                      if not k.startswith("_") and k not in hidden}}
    for name in names:
        if name not in ns:
            report["missing"].append(name)
            continue
        report["types"][name] = public_type(ns[name])
        report["modules"][name] = type(ns[name]).__module__ or ""
        file_name = name + ".pkl"
        reason = dump(ns[name], os.path.join(out_dir, file_name))
        if reason:
            report["unpicklable"][name] = reason
        else:
            report["captured"][name] = file_name
    with open(report_path, "w") as f:
        json.dump(report, f)

_capture(_ns, _names, _out_dir, _report_path)
'''


@dataclass(frozen=True)
class Capture:
    """What one recording run produced.

    Boundaries after the failing cell never ran: they are absent from
    ``captured``, ``missing`` and ``unpicklable`` alike.
    """

    ok: bool
    values_dir: Path
    captured: dict[int, dict[str, str]] = field(default_factory=dict)
    missing: dict[int, tuple[str, ...]] = field(default_factory=dict)
    unpicklable: dict[int, dict[str, str]] = field(default_factory=dict)
    # per boundary: name -> public type path ("pandas.DataFrame", "" if none),
    # name -> the type's defining module, and every global's id()
    types: dict[int, dict[str, str]] = field(default_factory=dict)
    modules: dict[int, dict[str, str]] = field(default_factory=dict)
    ids: dict[int, dict[str, int]] = field(default_factory=dict)
    # per boundary: global generator ("random", "numpy.random") -> (state digest,
    # whether nothing was drawn since it was seeded)
    rng: dict[int, dict[str, tuple[str, bool]]] = field(default_factory=dict)
    error: str = ""
    failed_cell: int | None = None
    seconds: float = 0.0
    # The kernel's sys.path (absolute) at the last capture: loading values that
    # reference the notebook's own modules needs it.
    sys_path: tuple[str, ...] = ()


class _RunFailed(Exception):
    """Internal: the run stopped; carries the message and the original cell."""

    def __init__(self, message: str, cell: int | None = None) -> None:
        super().__init__(message)
        self.cell = cell


@contextlib.contextmanager
def importable(paths: Sequence[str]) -> Iterator[None]:
    """``paths`` first on ``sys.path`` for the duration: recorded values may
    reference the notebook's own modules (and products the generated package)."""
    saved = sys.path[:]
    sys.path[:0] = [p for p in paths if p not in sys.path]
    try:
        yield
    finally:
        sys.path[:] = saved


def load_module(path: Path, name: str) -> ModuleType:
    """The module in ``path`` under ``name``, without touching ``sys.modules``:
    a project's serializers are loaded by file, not by package import, so that
    a generated package of the same name elsewhere on the path cannot shadow them."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def run_and_capture(
    notebook: Path,
    boundaries: Sequence[tuple[int, Sequence[str]]],
    dest: Path,
    *,
    timeout: int = 600,
    kernel_name: str = "python3",
    skip_cells: Collection[int] = (),
    python: str | None = None,
) -> Capture:
    """Run ``notebook`` in a fresh kernel, pickling globals at each boundary.

    ``boundaries[i] = (cell, names)`` pickles each of ``names`` that exists
    after original cell ``cell`` (0-based; -1: before the first cell) into
    ``dest/<i>/<name>.pkl``.
    ``skip_cells`` are original cell indices left unexecuted.  ``timeout`` is
    per cell, in seconds.  ``python`` starts the kernel with that interpreter
    instead of the ``kernel_name`` kernelspec.  Never raises for problems of
    the notebook or its environment: they come back in ``Capture.error``; a
    boundary outside the notebook or a name that is not an identifier is a
    caller's mistake and raises ``ValueError``.

    Call it from synchronous code: nbclient drives its own event loop.
    """
    # Absolute: the kernel runs in the notebook's folder, not in ours.
    notebook, dest = Path(notebook), Path(dest).absolute()
    start = time.monotonic()
    try:
        nb = _read(notebook)
    except Exception as e:  # noqa: BLE001 - malformed JSON, unknown format, I/O
        return Capture(
            ok=False,
            values_dir=dest,
            error=f"cannot read {notebook}: {type(e).__name__}: {e}",
        )
    _check_boundaries(boundaries, len(nb.cells))
    work = Path(tempfile.mkdtemp(prefix="nb2pipe-record-"))
    try:
        reports = work / "reports"
        reports.mkdir()
        _prepare_dest(dest, len(boundaries))
        copy = _instrument(nb, boundaries, set(skip_cells), dest, reports)
        error, failed = "", None
        try:
            _execute(copy, notebook.parent, timeout, kernel_name, python, work)
        except _RunFailed as e:
            error, failed = str(e), e.cell
        return _collect(dest, reports, len(boundaries), error, failed, start)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _read(path: Path):
    """Read an ``.ipynb`` with nbformat, any other extension with jupytext."""
    if path.suffix == ".ipynb":
        import nbformat

        return nbformat.read(path, as_version=4)
    import jupytext

    return jupytext.read(path)


def _check_boundaries(
    boundaries: Sequence[tuple[int, Sequence[str]]], n_cells: int
) -> None:
    for cell, names in boundaries:
        if not -1 <= cell < n_cells:
            raise ValueError(f"boundary cell {cell} is not in -1..{n_cells - 1}")
        bad = [n for n in names if not str(n).isidentifier()]
        if bad:
            raise ValueError(f"boundary names must be identifiers: {bad}")


def _prepare_dest(dest: Path, count: int) -> None:
    """Empty ``dest/<i>`` so that no stale value from an earlier run remains."""
    for i in range(count):
        shutil.rmtree(dest / str(i), ignore_errors=True)
    dest.mkdir(parents=True, exist_ok=True)


def _instrument(nb, boundaries, skip: set[int], dest: Path, reports: Path):
    """A copy of ``nb`` without skipped cells and with capture cells injected."""
    import nbformat

    by_cell: dict[int, list[int]] = {}
    for bid, (cell, _names) in enumerate(boundaries):
        by_cell.setdefault(cell, []).append(bid)
    copy = nbformat.v4.new_notebook(metadata=dict(nb.metadata))
    for index, cell in [(-1, None), *enumerate(nb.cells)]:
        if cell is not None and index not in skip and cell.cell_type == "code":
            kept = nbformat.v4.new_code_cell(cell.source, metadata=dict(cell.metadata))
            kept.metadata[_ORIGIN_KEY] = index
            copy.cells.append(kept)
        for bid in by_cell.get(index, ()):
            source = _capture_source(
                list(boundaries[bid][1]), dest / str(bid), reports / f"{bid}.json"
            )
            injected = nbformat.v4.new_code_cell(source)
            injected.metadata[_CAPTURE_KEY] = bid
            injected.metadata[_ORIGIN_KEY] = index
            copy.cells.append(injected)
    return copy


def _capture_source(names: list[str], out_dir: Path, report: Path) -> str:
    """One line of kernel code that leaves nothing behind in the user's globals."""
    env = (
        f"{{'_ns': __import__('builtins').globals(), '_names': {names!r}, "
        f"'_out_dir': {str(out_dir)!r}, '_report_path': {str(report)!r}}}"
    )
    return f"__import__('builtins').exec({_KERNEL_CODE!r}, {env})\n"


def _execute(
    nb, cwd: Path, timeout: int, kernel_name: str, python: str | None, work: Path
) -> None:
    """Run the instrumented copy; raise ``_RunFailed`` saying what stopped it."""
    if python is not None:
        _check_python(python)
    client = _client_class()(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        allow_errors=False,
        resources={"metadata": {"path": str(cwd.resolve())}},
    )
    client.nb2pipe_python = python
    client.nb2pipe_work = work
    log_path = work / "kernel.log"
    env = {**os.environ, "MPLBACKEND": "Agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    with open(log_path, "wb") as log:
        try:
            client.execute(env=env, stdout=log, stderr=log)
        except Exception as exc:  # noqa: BLE001 - every failure becomes data
            raise _explain(exc, nb, client, log_path, timeout) from None


def _check_python(python: str) -> None:
    """Fail early, and clearly, when the interpreter cannot run a kernel."""
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('ipykernel') is None)"
    try:
        done = subprocess.run([python, "-c", probe], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise _RunFailed(f"cannot run the kernel interpreter {python}: {e}") from None
    if done.returncode != 0:
        raise _RunFailed(f"ipykernel is not installed for {python}: {INSTALL_HINT}")


def _client_class():
    """NotebookClient that runs capture cells without touching the history."""
    from nbclient import NotebookClient

    class RecordingClient(NotebookClient):
        nb2pipe_running: int | None = None
        nb2pipe_python: str | None = None
        nb2pipe_work: Path | None = None

        def create_kernel_manager(self):
            if self.nb2pipe_python is None:
                return super().create_kernel_manager()
            self.km = _interpreter_kernel_manager(
                self.nb2pipe_python, self.nb2pipe_work, self.config
            )
            return self.km

        async def async_execute_cell(
            self, cell, cell_index, execution_count=None, store_history=True
        ):
            self.nb2pipe_running = cell_index
            injected = _CAPTURE_KEY in cell.metadata
            try:
                return await super().async_execute_cell(
                    cell,
                    cell_index,
                    execution_count=None if injected else execution_count,
                    store_history=store_history and not injected,
                )
            except BaseException:
                self.shutdown_kernel = "immediate"  # a stuck kernel need not wind down
                raise

    return RecordingClient


def _interpreter_kernel_manager(python: str, work: Path, config):
    """A kernel manager whose only kernelspec starts ``python``'s ipykernel."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager

    name = "nb2pipe-python"
    spec_dir = work / "kernels" / name
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({python})",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    ksm = KernelSpecManager(
        kernel_dirs=[str(spec_dir.parent)], ensure_native_kernel=False
    )
    return AsyncKernelManager(kernel_name=name, kernel_spec_manager=ksm, config=config)


def _explain(exc: Exception, nb, client, log_path: Path, timeout: int) -> _RunFailed:
    """Turn whatever nbclient raised into one message and an original cell."""
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import (
        CellExecutionError,
        CellTimeoutError,
        DeadKernelError,
    )

    running = client.nb2pipe_running
    cell = nb.cells[running] if running is not None else None
    origin = cell.metadata.get(_ORIGIN_KEY) if cell is not None else None
    where = _where(cell, origin)
    if isinstance(exc, NoSuchKernel):
        return _RunFailed(
            f"no such kernel: {exc.name!r}; {INSTALL_HINT} and register it "
            "(python -m ipykernel install --user)"
        )
    if isinstance(exc, CellTimeoutError):
        return _RunFailed(f"{where} timed out after {timeout} s\n{_head(cell)}", origin)
    if isinstance(exc, CellExecutionError):
        summary = f"{exc.ename}: {exc.evalue}"
        return _RunFailed(
            f"{where} failed: {summary}\n{_strip(_traceback(cell))}", origin
        )
    if isinstance(exc, DeadKernelError):
        return _RunFailed(
            f"the kernel died while running {where}\n{_log_tail(log_path)}", origin
        )
    if running is None:  # the kernel never started
        tail = _log_tail(log_path)
        hint = INSTALL_HINT if "ipykernel" in tail or "No module named" in tail else ""
        return _RunFailed(
            f"the kernel did not start: {type(exc).__name__}: {exc}\n{hint}\n{tail}".strip()
        )
    return _RunFailed(
        f"{where} stopped: {type(exc).__name__}: {_strip(str(exc))}", origin
    )


def _where(cell, origin: int | None) -> str:
    if cell is None or origin is None:
        return "the notebook"
    if _CAPTURE_KEY in cell.metadata:
        return f"the value capture after cell {origin}"
    return f"cell {origin}"


def _traceback(cell) -> str:
    """The kernel's traceback as the error output of ``cell`` carries it."""
    for output in cell.get("outputs", ()) if cell is not None else ():
        if output.get("output_type") == "error":
            return "\n".join(output.get("traceback", ()))
    return ""


def _head(cell, lines: int = 5) -> str:
    source = (cell.source if cell is not None else "").strip().splitlines()
    more = ["..."] if len(source) > lines else []
    return "\n".join(["cell source:", *source[:lines], *more])


def _strip(text: str) -> str:
    return _ANSI.sub("", text)


def _log_tail(path: Path, size: int = 2000) -> str:
    try:
        text = path.read_bytes()[-size:].decode("utf-8", "replace")
    except OSError:
        return ""
    return _strip(text).strip()


def _collect(
    dest: Path, reports: Path, count: int, error: str, failed: int | None, start: float
) -> Capture:
    """Read back the reports that the capture cells wrote."""
    captured: dict[int, dict[str, str]] = {}
    missing: dict[int, tuple[str, ...]] = {}
    unpicklable: dict[int, dict[str, str]] = {}
    types: dict[int, dict[str, str]] = {}
    modules: dict[int, dict[str, str]] = {}
    ids: dict[int, dict[str, int]] = {}
    rng: dict[int, dict[str, tuple[str, bool]]] = {}
    sys_path: tuple[str, ...] = ()
    for bid in range(count):
        path = reports / f"{bid}.json"
        if not path.exists():
            continue
        report = json.loads(path.read_text())
        captured[bid] = dict(report["captured"])
        missing[bid] = tuple(report["missing"])
        unpicklable[bid] = dict(report["unpicklable"])
        types[bid] = dict(report["types"])
        modules[bid] = dict(report["modules"])
        ids[bid] = dict(report["ids"])
        rng[bid] = {k: (v[0], bool(v[1])) for k, v in report.get("rng", {}).items()}
        sys_path = tuple(report.get("sys_path", sys_path))
    return Capture(
        ok=not error,
        values_dir=dest,
        captured=captured,
        missing=missing,
        unpicklable=unpicklable,
        types=types,
        modules=modules,
        ids=ids,
        rng=rng,
        error=error,
        failed_cell=failed,
        seconds=round(time.monotonic() - start, 3),
        sys_path=sys_path,
    )
