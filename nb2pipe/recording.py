"""Stage 3b (``convert --record``): run the notebook and observe its task boundaries.

Static analysis says which names cross each boundary; the recorded run says
what they *are*: their types (for typed signatures and serializers), whether
they can be saved at all, whether two identical runs agree on them, and
whether the run rebinds names the analysis did not see.  The values of the
first run become the fixtures of the characterization tests (``fixtures.py``).

The notebook runs with ``record.run_and_capture`` (a fresh kernel, the user's
file untouched), ``repeat`` times.  Capture points are the start of every task
(its inputs) and its end (its outputs).  Every finding is a ``Diagnostic``;
the run's values stay in ``workspace`` for the next stage to read.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

from . import codes
from .analyse import Analysis, TaskFlow
from .compare import compare
from .flow import Ref
from .model import Diagnostic, Location, Notebook
from .record import Capture, importable, run_and_capture

# Observed type -> serializer kind (plan.SERIALIZERS); types not listed are pickled.
OBSERVED_KINDS = {
    "pandas.DataFrame": "dataframe",
    "numpy.ndarray": "ndarray",
    "int": "json", "float": "json", "str": "json", "bool": "json",
    "list": "json", "dict": "json", "NoneType": "json",
}
# Modules whose estimator objects are saved with joblib.
MODEL_MODULES = ("sklearn", "xgboost", "lightgbm", "catboost", "imblearn")
SIDES = ("input", "output")


@dataclass(frozen=True)
class Observed:
    """One value at one task boundary, as the recorded run saw it."""

    task: str
    side: str             # "input" (when the task starts) or "output" (when it ends)
    name: str
    type: str             # public type path ("pandas.DataFrame"); "" if it has none
    kind: str | None      # serializer kind by observed type (plan.SERIALIZERS)
    file: Path | None     # the first run's pickle; None when it could not be captured
    stable: bool          # every run gave the same value
    problem: str = ""     # why it could not be captured or loaded
    # Compared exactly by the task's recorded test: stable, and its task did not
    # show randomness of its own (a task that varies in one output may vary in
    # another that two runs happened to agree on).
    exact: bool = True
    # Reproduced exactly by the pipeline: exact, and nothing random flowed into it
    # from an earlier task (the pipeline draws its own values there).
    repeatable: bool = True


@dataclass(frozen=True)
class Recording:
    """What ``record`` saw; ``values`` in task order, inputs before outputs."""

    values: tuple[Observed, ...]
    seconds: tuple[float, ...]        # wall time of each run
    sys_path: tuple[str, ...]         # the kernel's, to load values of local modules

    def of(self, task: str, side: str) -> tuple[Observed, ...]:
        return tuple(v for v in self.values if v.task == task and v.side == side)

    def load(self, value: Observed) -> object:
        with importable(self.sys_path), open(value.file, "rb") as handle:  # type: ignore[arg-type]
            return pickle.load(handle)


def boundaries(analysis: Analysis) -> list[tuple[str, str, int, tuple[str, ...]]]:
    """(task, side, cell, names): each task's inputs before its first cell, its
    outputs after its last."""
    found = []
    for flow in analysis.tasks:
        cells = flow.section.cells
        found.append((flow.name, "input", min(cells) - 1, tuple(n for n, _ in flow.inputs)))
        found.append((flow.name, "output", max(cells), tuple(flow.outputs)))
    return found


def record(notebook: Notebook, analysis: Analysis, workspace: Path, *, repeat: int = 2,
           timeout: int = 600, python: str | None = None
           ) -> tuple[Recording | None, list[Diagnostic]]:
    """Run the notebook ``repeat`` times; (what it saw, findings).

    ``None`` with an error diagnostic when the notebook cannot be run.
    """
    points = boundaries(analysis)
    runs: list[Capture] = []
    for i in range(max(1, repeat)):
        capture = run_and_capture(notebook.path, [(cell, names) for _, _, cell, names in points],
                                  workspace / f"run{i}", timeout=timeout, python=python)
        if not capture.ok:
            return None, [_failure(notebook, capture)]
        runs.append(capture)
    first = runs[0]
    found: list[Diagnostic] = []
    values = []
    for bid, (task, side, _cell, names) in enumerate(points):
        for name in names:
            values.append(_observe(bid, task, side, name, runs))
    recording = Recording(tuple(values), tuple(c.seconds for c in runs), first.sys_path)
    values = [_loadable(recording, v, notebook, analysis, found) for v in recording.values]
    drawing = unseeded_draws(runs, points)
    recording = Recording(_determinism(values, analysis, drawing), recording.seconds,
                          recording.sys_path)
    found += _unserializable(recording, notebook, analysis)
    found += _unstable(recording, notebook, analysis, drawing)
    found += _disagreements(first, points, notebook, analysis)
    return recording, found


def _failure(notebook: Notebook, capture: Capture) -> Diagnostic:
    """NB601/602/603 for a run that stopped, pointing at the cell that stopped it."""
    headline, _, rest = capture.error.partition("\n")
    cell = capture.failed_cell
    where = Location(notebook.display, cell + 1 if cell is not None and cell >= 0 else None)
    if capture.failed_cell is None and ("kernel" in headline or "ipykernel" in headline):
        return codes.make("NB602", where, detail=headline, snippet=rest.strip())
    if " timed out after " in headline:
        return codes.make("NB603", where, detail=_cell_words(headline), snippet=rest.strip())
    return codes.make("NB601", where, detail=_cell_words(headline), snippet=rest.strip())


def _cell_words(headline: str) -> str:
    """record.py numbers cells from 0; people (and our locations) from 1."""
    import re

    return re.sub(r"\bcell (\d+)", lambda m: f"cell {int(m.group(1)) + 1}", headline)


def _observe(bid: int, task: str, side: str, name: str, runs: list[Capture]) -> Observed:
    first = runs[0]
    type_ = first.types.get(bid, {}).get(name, "")
    module = first.modules.get(bid, {}).get(name, "")
    kind = OBSERVED_KINDS.get(type_)
    if kind is None and module.split(".")[0] in MODEL_MODULES:
        kind = "model"
    stored = first.captured.get(bid, {}).get(name)
    if stored is None:
        problem = first.unpicklable.get(bid, {}).get(name) or "not defined at this point"
        return Observed(task, side, name, type_, kind, None, True, problem)
    file = first.values_dir / str(bid) / stored
    others = [run.values_dir / str(bid) / run.captured[bid][name] for run in runs[1:]
              if name in run.captured.get(bid, {})]
    stable = _same_files(file, others, first) if others else True
    return Observed(task, side, name, type_, kind, file, stable)


def _same_files(file: Path, others: list[Path], first: Capture) -> bool:
    """Whether the runs agree: equal bytes, else equal values (pandas/numpy-aware)."""
    data = file.read_bytes()
    if all(o.read_bytes() == data for o in others):
        return True
    try:
        with importable(first.sys_path):
            expected = pickle.loads(data)
            return all(compare(expected, pickle.loads(o.read_bytes())) is None
                       for o in others)
    except Exception:  # noqa: BLE001 - not loadable here: _loadable reports it
        return True


def _loadable(recording: Recording, value: Observed, notebook: Notebook, analysis: Analysis,
              found: list[Diagnostic]) -> Observed:
    """Only values nb2pipe can read back can become fixtures; say so for the rest."""
    if value.file is None:
        return value
    try:
        recording.load(value)
    except Exception as error:  # noqa: BLE001 - any unpickling failure
        problem = f"{type(error).__name__}: {error}"
        found.append(codes.make("NB608", _where(notebook, analysis, value), detail=value.name,
                                other=problem[:200]))
        return Observed(value.task, value.side, value.name, value.type, value.kind, None,
                        value.stable, problem)
    return value


def _where(notebook: Notebook, analysis: Analysis, value: Observed) -> Location:
    """The last place in the task that binds or changes the value, else its first cell."""
    flow = _flow(analysis, value.task)
    refs = [r for r in (*flow.facts.binds, *flow.facts.maybe, *flow.facts.mutates)
            if r.name == value.name]
    return _in_task(notebook, flow, max(refs, key=_place) if refs else None)


def _place(ref: Ref) -> tuple[int, int, int]:
    return ref.cell, ref.line, ref.col


def _in_task(notebook: Notebook, flow: TaskFlow, ref: Ref | None = None) -> Location:
    """At ``ref``, else at the task's first cell (what happened has no place in
    its code: a draw inside a module, a rebinding through ``globals()``)."""
    if ref is None:
        return Location(notebook.display, flow.section.cells[0] + 1)
    return Location(notebook.display, ref.cell + 1, ref.line, ref.col)


def _flow(analysis: Analysis, task: str) -> TaskFlow:
    return next(f for f in analysis.tasks if f.name == task)


def _unserializable(recording: Recording, notebook: Notebook,
                    analysis: Analysis) -> list[Diagnostic]:
    """NB605 for outputs a later task needs that pickle cannot save."""
    consumed = {(task, name) for flow in (*analysis.tasks, *analysis.tests)
                for name, task in flow.inputs}
    found = []
    for value in recording.values:
        if value.side == "output" and value.file is None and value.problem \
                and (value.task, value.name) in consumed \
                and value.problem != "not defined at this point":
            found.append(codes.make("NB605", _where(notebook, analysis, value),
                                    detail=value.name, other=value.problem[:200]))
    return found


def unseeded_draws(runs: list[Capture], points) -> dict[str, str]:
    """task -> the global generator it draws from unseeded, as the runs show it.

    A task draws from a generator when the generator's state after the task
    differs from its state before (first run), or, for a generator first
    imported inside the task, is no longer freshly seeded.  The draw is
    unseeded when the state after the task differs between runs.  Such a task is
    random even when its outputs agree in every run (k-means from a random
    start converging to the same clusters twice).  One run shows nothing: no
    finding rather than a guess.
    """
    first, *others = [_around(run.rng, points) for run in runs]
    found: dict[str, str] = {}
    for task, (before, after) in first.items():
        for generator, (state, fresh) in sorted(after.items()):
            drew = before[generator][0] != state if generator in before else not fresh
            if drew and any(other[task][1].get(generator, (state,))[0] != state
                            for other in others):
                found[task] = generator
                break
    return found


def _around(table: dict[int, dict], points) -> dict[str, tuple[dict, dict]]:
    """task -> (its entry in ``table`` at its input boundary, at its output
    boundary): what one run saw change while the task ran."""
    found: dict[str, tuple[dict, dict]] = {}
    for bid, (task, side, _, _) in enumerate(points):
        before, after = found.get(task, ({}, {}))
        entry = table.get(bid, {})
        found[task] = (entry, after) if side == "input" else (before, entry)
    return found


def _determinism(values: list[Observed], analysis: Analysis,
                 drawing: dict[str, str]) -> tuple[Observed, ...]:
    """Set ``exact`` and ``repeatable`` of every value (see ``Observed``)."""
    import dataclasses

    random_tasks, tainted = set(), set()
    for flow in analysis.tasks:
        inputs = [v for v in values if v.task == flow.name and v.side == "input"]
        outputs = [v for v in values if v.task == flow.name and v.side == "output"]
        varied = not all(v.stable for v in (*inputs, *outputs))
        if all(v.stable for v in inputs) and not all(v.stable for v in outputs) \
                or varied and flow.facts.draws or flow.name in drawing:
            # the second and third cases: it draws random numbers, so outputs
            # equal in every run may have been equal by chance
            random_tasks.add(flow.name)
        if flow.name in random_tasks or not all(v.stable for v in inputs) \
                or any(producer in tainted for _, producer in flow.inputs):
            tainted.add(flow.name)
    return tuple(dataclasses.replace(
        v, exact=v.stable and (v.side == "input" or v.task not in random_tasks),
        repeatable=v.stable and (v.side == "input" or v.task not in tainted))
        for v in values)


def _unstable(recording: Recording, notebook: Notebook, analysis: Analysis,
              drawing: dict[str, str]) -> list[Diagnostic]:
    """NB604 where a task's output varies although its inputs did not: the origin
    of the randomness, not every task it flows into.  NB609 for a task that
    draws unseeded random numbers yet gave the same outputs in every run."""
    found = []
    for flow in analysis.tasks:
        inputs_stable = all(v.stable for v in recording.of(flow.name, "input"))
        before = len(found)
        for value in recording.of(flow.name, "output"):
            if not value.stable and inputs_stable:
                found.append(codes.make("NB604", _where(notebook, analysis, value),
                                        detail=value.name, other=f"task {flow.name}"))
        if flow.name in drawing and len(found) == before:
            # at the first draw the analysis saw, if any (it may be in a module)
            first_draw = min(flow.facts.draws, key=_place, default=None)
            found.append(codes.make("NB609", _in_task(notebook, flow, first_draw),
                                    detail=flow.name, other=drawing[flow.name]))
    return found


def _disagreements(first: Capture, points, notebook: Notebook,
                   analysis: Analysis) -> list[Diagnostic]:
    """NB606: the run rebound a name in a task whose code, as analysed, does not
    bind it, and a later task reads that name."""
    found = []
    ids = _around(first.ids, points)
    for i, flow in enumerate(analysis.tasks):
        before, after = ids.get(flow.name, ({}, {}))
        changed = {n for n, ident in after.items() if before.get(n) != ident}
        changed |= set(before) - set(after)
        facts = flow.facts
        seen = {r.name for r in (*facts.binds, *facts.maybe, *facts.deletes)}
        seen |= {f.name for f in facts.imports} | {d.name for d in facts.defs}
        for name in sorted(changed - seen):
            readers = [f.name for f in analysis.tasks[i + 1:]
                       if any(r.name == name for r in f.facts.reads)]
            if readers:
                producer = next((t for n, t in _flow(analysis, readers[0]).inputs if n == name),
                                None)
                source = f"from task {producer}" if producer else "from nowhere"
                found.append(codes.make(
                    "NB606", _in_task(notebook, flow),
                    detail=f"at run time task {flow.name} rebinds `{name}`, which the static "
                           f"analysis did not see; task {readers[0]} reads it and would get "
                           f"it {source} in the pipeline"))
    return found
