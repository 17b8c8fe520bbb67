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
  output of a task that showed randomness of its own: only its type,
  columns, dtypes and dimensions after the first are compared (never a flaky test);
- ``sample``: an input too large for the cap: evenly spaced rows of it;
- ``recomputed``: the outputs of a task tested on samples, computed by the
  generated function on them after rendering (``recompute``);
- ``none``: not stored (could not be captured, or no test uses it).

A task gets a test only when every input is stored (in full or sampled) and at
least one output can be compared: a fixture whose test cannot fail is never
written.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import codes
from .analyse import Analysis
from .compare import fingerprint
from .model import Diagnostic, Location, Notebook
from .record import load_module
from .recording import Observed, Recording

DEFAULT_CAP = 20 * 1024 * 1024
# Bytes of a row sample of one input too large to store in full.
SAMPLE_BYTES = 1024 * 1024
FINGERPRINT_SUFFIX = ".fingerprint.json"
_SERIALIZERS = Path(__file__).parent / "templates" / "serializers.py"


@dataclass(frozen=True)
class Fixture:
    """How one recorded value is stored (one row of the manifest's recording)."""

    task: str
    side: str
    variable: str
    type: str
    strategy: str     # "full", "fingerprint", "loose", "sample", "recomputed" or "none"
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
    samples: dict[str, bytes] = {}
    tested = []
    for flow in analysis.tasks:
        rows, why = _task_rows(recording, flow.name, full, kept, files, samples, io, cap)
        if why and recording.of(flow.name, "output"):
            found.append(codes.make("NB607", Location(notebook.display,
                                                      flow.section.cells[0] + 1),
                                    detail=flow.name, other=why))
        if why or not recording.of(flow.name, "output"):
            rows = [_unused(r) for r in rows]
        else:
            tested.append(flow.name)
        items += rows
    needed = {r.path for r in items if r.strategy != "none"}
    for key, candidate in full.items():
        if key in kept and candidate.path in needed:
            files[candidate.path] = candidate.data
    files.update(samples)
    files = {f"{data_dir}/{path}": data for path, data in sorted(files.items())
             if path in needed}
    return Fixtures(data_dir, tuple(items), tuple(tested), files), found


def _task_rows(recording: Recording, task: str, full: dict, kept: set, files: dict,
               samples: dict, io, cap: int) -> tuple[list[Fixture], str]:
    """One task's fixture rows, and why it cannot be tested ("" when it can).

    Inputs over the cap are replaced by row samples when that is the only
    obstacle and the task is deterministic; its outputs are then recomputed.
    """
    inputs, outputs = recording.of(task, "input"), recording.of(task, "output")
    rows = [_input_row(v, full, kept) for v in inputs]
    rows += [_output_row(recording, v, full, kept, files) for v in outputs]
    why = _untestable(task, inputs, outputs, kept, full)
    over = [v for v in inputs if (v.task, v.side, v.name) in full
            and (v.task, v.side, v.name) not in kept]
    if not why or not over or not all(v.exact for v in outputs) or _untestable(
            task, inputs, outputs, kept | {(v.task, v.side, v.name) for v in over}, full):
        return rows, why
    room = cap - _stored_bytes(full, kept) - sum(len(d) for d in samples.values())
    sampled = _samples(recording, over, io, room)
    if not sampled:
        return rows, why
    samples.update({c.path: c.data for c in sampled.values()})
    rows = [_sampled_row(v, sampled, full, kept) for v in inputs]
    rows += [_row(v, "recomputed", path=_sample_path(v, v.kind)) for v in outputs]
    return rows, ""


def _serializers():
    """The generated projects' own serializers: fixtures are saved the way
    products are, and loaded by the same ``serializers.load``."""
    return load_module(_SERIALIZERS, "_nb2pipe_fixture_io")


def _serialize(recording: Recording, value: Observed, io) -> _Candidate | None:
    """The value in its product format (pickle when that is not exact)."""
    from .plan import SERIALIZERS

    ext = SERIALIZERS.get(value.kind, SERIALIZERS[None])[1]
    side = "inputs" if value.side == "input" else "outputs"
    try:
        loaded = recording.load(value)
    except Exception:  # noqa: BLE001 - reported as NB608 by the recording stage
        return None
    return _serialize_value(loaded, value, io, f"{value.task}/{side}/{value.name}.{ext}")


def _serialize_value(loaded: object, value: Observed, io, path: str) -> _Candidate | None:
    """``loaded`` saved by the project's serializers; the format it really got."""
    from .plan import SERIALIZERS

    fmt, ext = SERIALIZERS.get(value.kind, SERIALIZERS[None])
    try:
        with tempfile.TemporaryDirectory(prefix="nb2pipe-fixture-") as tmp:
            file = Path(tmp) / f"value.{ext}"
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                io.save(loaded, file, fmt)
            data = file.read_bytes()
    except Exception:  # noqa: BLE001 - neither its format nor pickle can hold it
        return None
    if any("saved with pickle" in str(w.message) for w in caught):
        fmt = "pickle"  # the planned format would not give it back exactly
        path = path.rsplit(".", 1)[0] + ".pkl"
    return _Candidate(value, data, fmt, path)


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


def _stored_bytes(full: dict, kept: set) -> int:
    return sum(len(data) for data in {full[k].path: full[k].data for k in kept}.values())


def _sample_path(value: Observed, kind: str | None) -> str:
    from .plan import SERIALIZERS

    ext = SERIALIZERS.get(kind, SERIALIZERS[None])[1]
    side = "inputs" if value.side == "input" else "outputs"
    return f"{value.task}/{side}/{value.name}.sample.{ext}"


def _samples(recording: Recording, over: list[Observed], io, room: int
             ) -> dict[str, _Candidate]:
    """Evenly spaced rows of each input too large to store, within ``room`` bytes.

    Inputs with the same number of rows get the same rows (``X`` and ``y``
    stay aligned).  {} when an input cannot be sampled (not a frame, series or
    array) or the samples do not fit.
    """
    import numpy as np

    found: dict[str, _Candidate] = {}
    share = min(SAMPLE_BYTES, room // max(1, len(over)))
    for value in over:
        try:
            loaded = recording.load(value)
            rows = len(loaded)
        except Exception:  # noqa: BLE001 - no length: not sampleable
            return {}
        if not _sampleable(loaded) or rows < 2:
            return {}
        size = value.file.stat().st_size if value.file is not None else 1
        keep = max(2, min(rows, int(rows * share * 0.8 / size)))  # headers, compression
        index = np.unique(np.linspace(0, rows - 1, keep).round().astype(int))
        part = loaded.iloc[index] if hasattr(loaded, "iloc") else loaded[index]
        candidate = _serialize_value(part, value, io, _sample_path(value, value.kind))
        if candidate is None or len(candidate.data) > share:
            return {}
        found[value.name] = candidate
    return found


def _sampleable(value: object) -> bool:
    module = type(value).__module__ or ""
    return (module.startswith("pandas") and hasattr(value, "iloc")) or (
        module.startswith("numpy") and getattr(value, "ndim", 0) >= 1)


def _sampled_row(value: Observed, sampled: dict, full: dict, kept: set) -> Fixture:
    if value.name in sampled:
        candidate = sampled[value.name]
        return _row(value, "sample", path=candidate.path, fmt=candidate.format,
                    size=len(candidate.data))
    return _input_row(value, full, kept)


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


# Runs a task function on sampled inputs, in the user's interpreter, with the
# generated package on sys.path (see ``recompute``).
_DRIVER = """
import importlib, json, sys
spec = json.load(open(sys.argv[1]))
sys.path.insert(0, spec["root"])
serializers = importlib.import_module(spec["package"] + ".serializers")
function = getattr(importlib.import_module(spec["module"]), spec["function"])
inputs = {name: serializers.load(path) for name, path in spec["inputs"].items()}
with serializers.workdir(spec["workdir"]):
    result = function(**inputs)
outputs = spec["outputs"]
values = [result] if len(outputs) == 1 else list(result)
for (path, fmt), value in zip(outputs, values):
    serializers.save(value, path, fmt)
"""


def recompute(fixtures: Fixtures, plan, files: dict, python: str | None,
              timeout: int = 600) -> tuple[Fixtures, list[Diagnostic]]:
    """Outputs of the ``sample`` tasks: the generated function on the sampled inputs.

    Such a test cannot prove the task matches the notebook on the full data
    (``verify`` does); it pins what the task computes, so a change still fails
    it.  A task whose function fails on the sample loses its test (NB607).
    """
    import dataclasses
    import subprocess
    import sys

    pending = [t for t in plan.tasks
               if any(f.strategy == "recomputed" for f in fixtures.of(t.name, "output"))]
    if not pending:
        return fixtures, []
    found, items, new_files = [], list(fixtures.items), dict(fixtures.files)
    with tempfile.TemporaryDirectory(prefix="nb2pipe-sample-") as tmp:
        root = Path(tmp)
        for rel, text in {**files, **fixtures.files}.items():
            if rel.startswith((f"{plan.package}/", f"{fixtures.data_dir}/")):
                target = root / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        (root / "driver.py").write_text(_DRIVER, encoding="utf-8")
        for task in pending:
            data = root / fixtures.data_dir
            outputs = {f.variable: f for f in fixtures.of(task.name, "output")}
            spec = {"root": str(root), "package": plan.package, "module": task.module,
                    "function": task.name, "workdir": str(plan.notebook.path.resolve().parent),
                    "inputs": {f.variable: str(data / f.path)
                               for f in fixtures.of(task.name, "input")},
                    "outputs": [(str(data / outputs[p.variable].path) if p.variable in outputs
                                 and outputs[p.variable].path else str(root / f"_{i}"), p.format)
                                for i, p in enumerate(task.products)]}
            (root / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
            done = subprocess.run([python or sys.executable, str(root / "driver.py"),
                                   str(root / "spec.json")], capture_output=True, text=True,
                                  timeout=timeout, cwd=root)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["it failed"])[-1]
                found.append(codes.make(
                    "NB607", Location(plan.notebook.display, task.cells[0] + 1),
                    detail=task.name, other=f"it fails on a row sample of its inputs ({last})"))
                items = [_unused(f) if f.task == task.name else f for f in items]
                continue
            for i, f in enumerate(items):
                if f.task == task.name and f.strategy == "recomputed":
                    blob = (data / f.path).read_bytes()
                    new_files[f"{fixtures.data_dir}/{f.path}"] = blob
                    items[i] = dataclasses.replace(f, bytes=len(blob), format=_format_of(blob, f))
    tested = tuple(t for t in fixtures.tested
                   if any(f.task == t and f.strategy != "none" for f in items))
    needed = {f"{fixtures.data_dir}/{f.path}" for f in items if f.strategy != "none"}
    new_files = {k: v for k, v in new_files.items() if k in needed}
    return Fixtures(fixtures.data_dir, tuple(items), tested, new_files), found


def _format_of(blob: bytes, fixture: Fixture) -> str:
    """The format a file really got (serializers fall back to pickle)."""
    for magic, fmt in ((b"PAR1", "parquet"), (b"\x93NUMPY", "npy")):
        if blob.startswith(magic):
            return fmt
    if blob[:1] == b"\x80":
        return "joblib" if fixture.path.endswith(".joblib") else "pickle"
    return "json"
