"""Stage 3c (``convert --record``): recorded values -> test fixtures.

Each task's characterization test loads the values the notebook held when the
task started, calls the task function and compares what it returns with the
values the notebook held when the task ended.  This stage decides, for every
recorded value, how it is stored under ``tests/data/<package>/`` (the
*strategy*, recorded in the manifest):

- ``full``: the value itself, in the product format for its observed type;
- ``fingerprint``: an output too large for the size cap: its type, shape,
  columns, dtypes and a content summary (``compare.fingerprint``);
- ``loose``: an output that differs between two runs of the notebook, or any
  output of a task that showed randomness of its own: only its type, shape,
  columns and dtypes are compared (never a flaky test);
- ``none``: not stored (could not be captured, or no test uses it).

A task gets a test only when every input is stored in full and at least one
output can be compared: a fixture whose test cannot fail is never written.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import codes
from .analyse import Analysis
from .compare import fingerprint
from .model import Diagnostic, Location, Notebook
from .recording import Observed, Recording

DEFAULT_CAP = 20 * 1024 * 1024
FINGERPRINT_SUFFIX = ".fingerprint.json"
_SERIALIZERS = Path(__file__).parent / "templates" / "serializers.py"


@dataclass(frozen=True)
class Fixture:
    """How one recorded value is stored (one row of the manifest's recording)."""

    task: str
    side: str
    variable: str
    type: str
    strategy: str     # "full", "fingerprint", "loose" or "none"
    path: str = ""    # relative to the package's data folder; "" when not stored
    format: str = ""
    bytes: int = 0
    stable: bool = True
    note: str = ""
    repeatable: bool = True   # False: `verify` compares the built product loosely


@dataclass(frozen=True)
class Fixtures:
    """Every value's fixture, the files to write and the tasks that get a test."""

    data_dir: str                      # tests/data/<package>, relative to out/
    items: tuple[Fixture, ...]
    tested: tuple[str, ...]
    files: dict[str, bytes | str] = field(default_factory=dict, hash=False, compare=False)

    def of(self, task: str, side: str) -> tuple[Fixture, ...]:
        return tuple(f for f in self.items if f.task == task and f.side == side)

    @property
    def total(self) -> int:
        return sum(len(data) for data in self.files.values())


@dataclass
class _Candidate:
    value: Observed
    data: bytes
    format: str
    path: str


def build(recording: Recording, notebook: Notebook, analysis: Analysis, package: str,
          cap: int = DEFAULT_CAP) -> tuple[Fixtures, list[Diagnostic]]:
    """Decide every value's strategy within ``cap`` bytes and produce the files."""
    data_dir = f"tests/data/{package}"
    io = _serializers()
    found: list[Diagnostic] = []
    full: dict[tuple[str, str, str], _Candidate] = {}
    for value in recording.values:
        if value.file is not None and (value.side == "input" or value.exact):
            candidate = _serialize(recording, value, io)
            if candidate is not None:
                full[(value.task, value.side, value.name)] = candidate
    kept = _within_cap(full, cap)
    items: list[Fixture] = []
    files: dict[str, bytes | str] = {}
    tested = []
    for flow in analysis.tasks:
        inputs = recording.of(flow.name, "input")
        outputs = recording.of(flow.name, "output")
        rows = [_input_row(v, full, kept) for v in inputs]
        rows += [_output_row(recording, v, full, kept, files) for v in outputs]
        why = _untestable(flow.name, inputs, outputs, kept, full)
        if why and outputs:
            found.append(codes.make("NB607", Location(notebook.display,
                                                      flow.section.cells[0] + 1),
                                    detail=flow.name, other=why))
        if why or not outputs:
            rows = [_unused(r) for r in rows]
        else:
            tested.append(flow.name)
        items += rows
    needed = {r.path for r in items if r.strategy != "none"}
    for key, candidate in full.items():
        if key in kept and candidate.path in needed:
            files[candidate.path] = candidate.data
    files = {f"{data_dir}/{path}": data for path, data in sorted(files.items())
             if path in needed}
    return Fixtures(data_dir, tuple(items), tuple(tested), files), found


def _serializers():
    """The generated projects' own serializers: fixtures are saved the way
    products are, and loaded by the same ``serializers.load``."""
    spec = importlib.util.spec_from_file_location("_nb2pipe_fixture_io", _SERIALIZERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _serialize(recording: Recording, value: Observed, io) -> _Candidate | None:
    """The value in its product format (pickle when that is not exact)."""
    from .plan import SERIALIZERS

    fmt, ext = SERIALIZERS.get(value.kind, SERIALIZERS[None])
    try:
        loaded = recording.load(value)
        with tempfile.TemporaryDirectory(prefix="nb2pipe-fixture-") as tmp:
            path = Path(tmp) / f"value.{ext}"
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                io.save(loaded, path, fmt)
            data = path.read_bytes()
    except Exception:  # noqa: BLE001 - neither its format nor pickle can hold it
        return None
    if any("saved with pickle" in str(w.message) for w in caught):
        fmt, ext = "pickle", "pkl"  # the planned format would not give it back exactly
    return _Candidate(value, data, fmt, f"{value.task}/{value.side}s/{value.name}.{ext}")


def _within_cap(full: dict[tuple[str, str, str], _Candidate], cap: int) -> set:
    """Smallest values first; identical bytes (an output that is the next
    task's input) are stored once and counted once."""
    kept, total, stored = set(), 0, {}
    for key, candidate in sorted(full.items(), key=lambda kv: len(kv[1].data)):
        digest = hashlib.sha256(candidate.data).hexdigest()
        if digest in stored:
            candidate.path = stored[digest]
            kept.add(key)
            continue
        if total + len(candidate.data) <= cap:
            total += len(candidate.data)
            stored[digest] = candidate.path
            kept.add(key)
    return kept


def _untestable(task: str, inputs, outputs, kept: set, full: dict) -> str:
    """Why the task cannot get a characterization test ("" when it can)."""
    for value in inputs:
        if (task, "input", value.name) not in kept:
            if value.file is None:
                return f"input `{value.name}` could not be recorded ({value.problem[:120]})"
            if (task, "input", value.name) not in full:
                return f"input `{value.name}` cannot be saved as a fixture"
            size = len(full[(task, "input", value.name)].data)
            return f"input `{value.name}` takes {size / 1e6:.1f} MB, over the fixture cap"
    if not any(v.file is not None for v in outputs):
        return "none of its outputs could be recorded"
    return ""


def _input_row(value: Observed, full: dict, kept: set) -> Fixture:
    key = (value.task, value.side, value.name)
    if key in kept:
        return _stored(value, full[key])
    return _row(value, "none", note=value.problem[:200] or "not stored")


def _output_row(recording: Recording, value: Observed, full: dict, kept: set,
                files: dict) -> Fixture:
    key = (value.task, value.side, value.name)
    if value.file is None:
        return _row(value, "none", note=value.problem[:200])
    if key in kept:
        return _stored(value, full[key])
    strategy = "fingerprint" if value.exact else "loose"
    stored = {"nb2pipe_fingerprint": 1, "content": value.exact,
              "fingerprint": fingerprint(recording.load(value), content=value.exact)}
    text = json.dumps(stored, indent=1, sort_keys=True, default=str) + "\n"
    path = f"{value.task}/outputs/{value.name}{FINGERPRINT_SUFFIX}"
    files[path] = text
    return _row(value, strategy, path=path, fmt="json", size=len(text.encode()))


def _stored(value: Observed, candidate: _Candidate) -> Fixture:
    return _row(value, "full", path=candidate.path, fmt=candidate.format,
                size=len(candidate.data))


def _row(value: Observed, strategy: str, path: str = "", fmt: str = "", size: int = 0,
         note: str = "") -> Fixture:
    return Fixture(value.task, value.side, value.name, value.type, strategy, path, fmt, size,
                   value.stable, note, value.repeatable)


def _unused(row: Fixture) -> Fixture:
    return Fixture(row.task, row.side, row.variable, row.type, "none", stable=row.stable,
                   note=row.note or "no test uses it", repeatable=row.repeatable)
