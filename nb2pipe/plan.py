"""Stage 4: data flow -> every string of the generated project.

The plan decides names, signatures, imports, product paths and formats, and
the exact code of each function body.  Templates only place these strings
(no logic in templates); black fixes whitespace afterwards.
"""

from __future__ import annotations

import ast
import builtins
import io
import os
import sys
import textwrap
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .analyse import Analysis, TaskFlow, TestFlow
from .flow import ImportFact, SectionFacts, Span
from .model import Notebook

if TYPE_CHECKING:
    from .fixtures import Fixtures
    from .recording import Observed, Recording

# The table of product formats: value kind -> (format, file extension).
SERIALIZERS = {
    "dataframe": ("parquet", "parquet"),
    "ndarray": ("npy", "npy"),
    "model": ("joblib", "joblib"),
    "json": ("json", "json"),
    None: ("pickle", "pkl"),
}
FORMATS = ("parquet", "pickle", "cloudpickle", "joblib", "npy", "json", "csv")
PLOT_MODULES = ("matplotlib", "seaborn", "plotly")


@dataclass(frozen=True)
class Product:
    """One saved value: which variable, where (relative to out/), how."""

    variable: str
    path: str
    format: str


@dataclass(frozen=True)
class TaskPlan:
    """The strings of one task module and its pipeline.yaml entry."""

    name: str
    module: str                  # dotted: churn.tasks.clean
    file: str                    # churn/tasks/clean.py
    cells: tuple[int, ...]
    header: str
    imports: tuple[str, ...]
    signature: str
    docstring: str
    body: str
    returns: str
    glue_signature: str
    glue_call: str
    glue_saves: tuple[str, ...]
    upstream: tuple[str, ...]
    params: tuple[str, ...]
    products: tuple[Product, ...]
    positional: tuple[str, ...]
    keyword: tuple[str, ...]
    figures: str = ""


@dataclass(frozen=True)
class TestPlan:
    """A generated pytest file for one task."""

    task: str
    file: str
    module: str
    header: str
    imports: tuple[str, ...]
    cases: tuple[tuple[str, str, str], ...]   # (test name, loads, body)
    support: str = ""                         # helpers of the recorded test, if any


@dataclass(frozen=True)
class Plan:
    """Everything ``render`` needs, for one notebook."""

    notebook: Notebook
    package: str
    tasks: tuple[TaskPlan, ...]
    tests: tuple[TestPlan, ...]
    helpers_imports: tuple[str, ...]
    helpers_body: str
    has_helpers: bool
    parameters: dict[str, object]
    workdir: str
    requirements: tuple[str, ...]
    pipeline_file: str
    env_file: str
    products_dir: str
    extra: dict = field(default_factory=dict, hash=False, compare=False)


# Helpers of the recorded characterization tests (placed by test_task.py.j2).
RECORDED_SUPPORT = '''DATA = PROJECT / "{data}"


def workdir():
    """The notebook's folder (env.yaml's `workdir`): the task runs there."""
    env = yaml.safe_load((PROJECT / "{env}").read_text(encoding="utf-8"))
    return str(env["workdir"]).replace("{{{{here}}}}", str(PROJECT))


def recorded(path):
    """A value the notebook held, recorded by `nb2pipe convert --record`."""
    return serializers.load(DATA / path)


def expect(name, actual, path):
    """`actual` equals the recorded value, or matches its recorded fingerprint."""
    if path.endswith(".fingerprint.json"):
        stored = recorded(path)
        expected = stored["fingerprint"]
        actual = fingerprint(actual, content=stored["content"])
    else:
        expected = recorded(path)
    reason = compare(expected, actual)
    assert reason is None, f"{{name}}: {{reason}}"
'''


# --- code editing ----------------------------------------------------------------

def _offsets(code: str) -> list[int]:
    starts = [0]
    for line in code.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def _apply(code: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply non-overlapping (start, end, replacement) edits, last first."""
    kept: list[tuple[int, int, str]] = []
    for edit in sorted(edits, key=lambda e: (e[0], -e[1])):
        if kept and edit[0] < kept[-1][1]:
            continue  # inside something already replaced (e.g. a hoisted def)
        kept.append(edit)
    for start, end, text in reversed(kept):
        code = code[:start] + text + code[end:]
    return code


def _span_edit(code: str, span: Span, starts: list[int]) -> tuple[int, int, str]:
    start = starts[span.start[0] - 1] + span.start[1]
    end = starts[span.end[0] - 1] + span.end[1]
    if not span.replacement:
        rest = code[end:]
        stripped = rest.lstrip(" \t")
        if stripped.startswith(";"):
            end += len(rest) - len(stripped) + 1
    return start, end, span.replacement


def _call_edits(code: str, helper_globals: dict[str, tuple[str, ...]],
                starts: list[int]) -> list[tuple[int, int, str]]:
    """Pass the globals a helper reads: ``f(x)`` -> ``f(x, g=g)``."""
    if not helper_globals:
        return []
    tree = ast.parse(code)
    edits = []
    calls = {id(n.func): n for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
                and node.id in helper_globals):
            continue
        names = helper_globals[node.id]
        extra = ", ".join(f"{n}={n}" for n in names)
        call = calls.get(id(node))
        line = code.splitlines()
        if call is None:
            start = starts[node.lineno - 1] + _char(line, node.lineno, node.col_offset)
            end = starts[node.end_lineno - 1] + _char(line, node.end_lineno, node.end_col_offset)
            edits.append((start, end, f"functools.partial({node.id}, {extra})"))
            continue
        end = starts[call.end_lineno - 1] + _char(line, call.end_lineno, call.end_col_offset) - 1
        args = [*call.args, *call.keywords]
        if args:
            last = args[-1]
            after = starts[last.end_lineno - 1] + _char(line, last.end_lineno, last.end_col_offset)
            between = code[after:end].split("#")[0]
            extra = extra if "," in between else ", " + extra
        edits.append((end, end, extra))
    return edits


def _char(lines: list[str], line: int, byte_col: int) -> int:
    raw = lines[line - 1] if 0 < line <= len(lines) else ""
    return len(raw.encode()[:byte_col].decode(errors="ignore"))


def edit_cell(code: str, cell: int, spans: list[Span],
              helper_globals: dict[str, tuple[str, ...]]) -> str:
    """A cell's code with hoisted/dropped statements removed and helper calls rewritten."""
    starts = _offsets(code)
    edits = [_span_edit(code, s, starts) for s in spans if s.cell == cell]
    edits += _call_edits(code, helper_globals, starts)
    text = _apply(code, edits)
    lines = [line.rstrip() for line in text.splitlines()]
    return "\n".join(_drop_masked(lines)).strip("\n")


def _drop_masked(lines: list[str]) -> list[str]:
    """Magics masked by the reader are comments starting with ``# %`` / ``# !``."""
    return [line for line in lines if not line.lstrip().startswith(("# %", "# !"))]


def indent(code: str, prefix: str = "    ") -> str:
    """Indent code, leaving the inside of multi-line strings untouched."""
    inside: set[int] = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                inside.update(range(tok.start[0] + 1, tok.end[0] + 1))
            elif sys.version_info >= (3, 12) and tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
                inside.update(range(tok.start[0] + 1, tok.end[0] + 1))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    out = []
    for number, line in enumerate(code.splitlines(), start=1):
        out.append(line if number in inside or not line.strip() else prefix + line)
    return "\n".join(out)


def cell_numbers(cells: tuple[int, ...]) -> str:
    """People's cell numbers (from 1), runs of three or more as ranges: a task of
    forty cells reads ``12-51``, not forty numbers."""
    runs: list[list[int]] = []
    for number in (c + 1 for c in cells):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return ", ".join(f"{run[0]}-{run[-1]}" if len(run) >= 3 else ", ".join(map(str, run))
                     for run in runs)


def doc_safe(text: str) -> str:
    """Text that can stand inside a generated docstring: a file name is data,
    never code (no quote can end the string, no backslash starts an escape)."""
    out = []
    for char in text:
        if char in '\\"':
            out.append("\\" + char)
        elif not char.isprintable():
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def _importable(top: str) -> bool:
    """Installed in this environment (ignoring the current folder)."""
    # Ask the import system's finders directly: unlike importlib.util.find_spec
    # they do not answer from sys.modules (what this process happened to
    # import), and the current folder is left out of the path they search.
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    try:
        return any(_finds(finder, top) for finder in sys.meta_path)
    finally:
        sys.path[:] = saved


def _finds(finder: object, top: str) -> bool:
    try:
        return getattr(finder, "find_spec", lambda *_: None)(top, None) is not None
    except (ImportError, ValueError, TypeError, AttributeError):
        return False


def group_imports(lines: list[str]) -> tuple[str, ...]:
    """Standard library first, then third-party, each sorted (isort's order)."""
    unique = list(dict.fromkeys(lines))

    def top(line: str) -> str:
        return line.split()[1].split(".")[0]

    std = sorted((l for l in unique if top(l) in sys.stdlib_module_names), key=_import_key)
    other = sorted((l for l in unique if top(l) not in sys.stdlib_module_names), key=_import_key)
    return tuple(std + other)


def _import_key(line: str) -> tuple[str, int]:
    return (line.split()[1].lower(), 0 if line.startswith("import ") else 1)


def loaded_names(code: str) -> set[str]:
    """Every name the code loads (to import only what a module uses)."""
    tree = ast.parse(code)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


# --- planning --------------------------------------------------------------------

class Planner:
    """Computes the strings of one notebook's part of the project."""

    def __init__(self, notebook: Notebook, analysis: Analysis, out: Path, single: bool,
                 recording: Recording | None = None, fixtures: Fixtures | None = None) -> None:
        self.nb = notebook
        self.recording = recording
        self.fixtures = fixtures
        self.a = analysis
        self.pkg = notebook.name
        self.out = out
        self.single = single
        self.spans = [s for t in analysis.tasks for s in t.facts.removals]
        self._local_cache: dict[str, bool] = {}
        self.helper_names = {d.name for d in analysis.helpers}
        self.consumed = {(task, name) for flow in (*analysis.tasks, *analysis.tests)
                         for name, task in flow.inputs}
        setup = analysis.setup
        self.setup_names = {r.name for r in setup.binds + setup.maybe} if setup else set()

    def source_label(self, cells: tuple[int, ...]) -> str:
        numbers = cell_numbers(cells)
        word = "cell" if len(cells) == 1 else "cells"
        return f"{doc_safe(self.nb.display)} ({word} {numbers})"

    def header(self, what: str, cells: tuple[int, ...]) -> str:
        return (f"{what}\n\nGenerated by nb2pipe {__version__} from {self.source_label(cells)}.\n"
                "Edit freely: nb2pipe will not overwrite a file you changed unless --force.")

    def products(self, flow: TaskFlow) -> tuple[Product, ...]:
        found = []
        for name in flow.outputs:
            fmt, ext = SERIALIZERS.get(self.kind(flow, name), SERIALIZERS[None])
            found.append(Product(name, f"products/{self.pkg}/{flow.name}/{name}.{ext}", fmt))
        return tuple(found)

    def kind(self, flow: TaskFlow, name: str) -> str | None:
        """The serializer kind: by the recorded value's type when there is one."""
        observed = self.observed(flow.name, "output", name)
        if observed is not None and observed.type:
            return observed.kind
        return flow.kinds.get(name)

    def observed(self, task: str, side: str, name: str) -> Observed | None:
        if self.recording is None:
            return None
        return next((v for v in self.recording.of(task, side) if v.name == name), None)

    def annotation(self, task: str, side: str, name: str, flow: TaskFlow) -> tuple[str, str]:
        """(the type hint for a recorded value, an import it needs): ("", "") if none."""
        observed = self.observed(task, side, name)
        path = observed.type if observed is not None else ""
        if not path or path.startswith("__main__."):
            return "", ""
        if "." not in path:
            if path == "NoneType":
                return "None", ""
            return (path, "") if isinstance(getattr(builtins, path, None), type) else ("", "")
        module = path.rpartition(".")[0]
        if self.is_local(module):
            return "", ""
        # the notebook's own import of it, if any: `pd.DataFrame`, `LogisticRegression`
        spelled = [fact.name + path[len(fact.module):]
                   for fact in [*flow.imports, *self.known_imports()]
                   if path == fact.module or path.startswith(fact.module + ".")]
        if spelled:
            best = min(spelled, key=lambda text: (len(text), text))
            fact = next(f for f in [*flow.imports, *self.known_imports()]
                        if best == f.name + path[len(f.module):])
            return best, fact.statement
        return path, f"import {module}"

    def task(self, flow: TaskFlow) -> TaskPlan:
        helper_globals = self.a.helper_globals
        parts = []
        if flow.prelude:
            lines = [f.text for f in flow.prelude if f.ref.cell not in flow.section.cells]
            if lines:
                parts.append("# interpreter state set earlier in the notebook\n" + "\n".join(lines))
        # The notebook's own modules stay imported where they were: often after
        # a sys.path change in the same cell.
        own_local = [f for f in flow.facts.imports if self.is_local(f.module)]
        kept = {(f.ref.cell, f.ref.line) for f in own_local}
        spans = [sp for sp in self.spans if (sp.cell, sp.start[0]) not in kept]
        for cell in flow.section.cells:
            code = edit_cell(self.nb.cells[cell].code, cell, spans, helper_globals)
            if code.strip():
                parts.append(f"# notebook cell {cell + 1}\n{code}")
        shadowed = self.shadowed(flow)
        if shadowed:
            parts.insert(0, "# rebound below, so locals of the function: imported here\n"
                         + "\n".join(shadowed.values()))
        body = "\n\n".join(parts)
        local = [line for line in self.local_imports(flow, body)
                 if line not in {f.statement for f in own_local}]
        if local:
            # Imported when the task runs, in the notebook's folder (see serializers.workdir)
            # and after any sys.path change the notebook made before importing them.
            parts.insert(1 if flow.prelude and parts and parts[0].startswith("# interp") else 0,
                         "# modules that live next to the notebook\n" + "\n".join(local))
            body = "\n\n".join(parts)
        outputs = flow.outputs
        returns = ""
        if outputs:
            returns = "return " + ", ".join(outputs)
        used = loaded_names(body + "\n" + returns) if body.strip() else set()
        positional = tuple(name for name, _ in flow.inputs)
        keyword = tuple(p for p in dict.fromkeys(flow.params))
        # parameters shadow module-level names: importing those too is dead code
        imports = self.imports_for(flow.imports, used - {*shadowed, *positional, *keyword}, flow)
        hints = {name: self.annotation(flow.name, "input", name, flow) for name in positional}
        returned = [self.annotation(flow.name, "output", name, flow) for name in outputs]
        extra = [line for _, line in [*hints.values(), *returned] if line]
        imports = group_imports([*(i for i in imports if not i.startswith(f"from {self.pkg}")),
                                 *extra]) + tuple(i for i in imports
                                                  if i.startswith(f"from {self.pkg}"))
        products = self.products(flow)
        plots = any(f.module.startswith(PLOT_MODULES) for f in self.all_imports(flow)
                    if f.name in used)
        return TaskPlan(
            name=flow.name,
            module=f"{self.pkg}.tasks.{flow.name}",
            file=f"{self.pkg}/tasks/{flow.name}.py",
            cells=flow.section.cells,
            header=self.header(f"Task `{flow.name}`.", flow.section.cells),
            imports=imports,
            signature=self.signature(flow.name, positional, keyword,
                                     {n: h for n, (h, _) in hints.items()},
                                     _returns_hint([h for h, _ in returned])),
            docstring=self.docstring(flow, products),
            body=indent(body) if body.strip() else "    pass",
            returns=("    " + returns) if returns else "",
            glue_signature=self.glue_signature(flow, keyword),
            glue_call=self.glue_call(flow, positional, keyword),
            glue_saves=self.glue_saves(flow.name, products),
            upstream=flow.upstream,
            params=keyword,
            products=products,
            positional=positional,
            keyword=keyword,
            figures=f"products/{self.pkg}/{flow.name}/figures" if plots or not products else "",
        )

    def shadowed(self, flow: TaskFlow) -> dict[str, str]:
        """Imported or setup names the task reads and also rebinds or deletes -> their import.

        Python makes them locals of the task function, unbound where the body
        first reads them: a module-level import does not reach them there.
        """
        facts = flow.facts
        moved = {f.ref for f in facts.imports} | {d.ref for d in facts.defs}  # hoisted
        rebound = {r.name for r in facts.binds + facts.maybe + facts.deletes if r not in moved}
        statements = {f.name: f.statement for f in flow.imports}
        names = rebound & (set(flow.helpers) | set(statements))
        return {n: statements.get(n, f"from {self.pkg}.helpers import {n}") for n in sorted(names)}

    def local_imports(self, flow: TaskFlow, body: str) -> list[str]:
        """Import statements of the notebook's own modules that this body uses."""
        used = loaded_names(body) if body.strip() else set()
        known = {f.name: f for f in [*self.known_imports(), *flow.imports]}
        return [known[n].statement for n in sorted(used)
                if n in known and self.is_local(known[n].module)]

    def is_local(self, module: str) -> bool:
        """A module of the notebook's folder (or not importable from anywhere else)."""
        top = module.lstrip(".").split(".")[0]
        if not top or top in sys.stdlib_module_names or module.startswith("."):
            return module.startswith(".")
        if top not in self._local_cache:
            folder = self.nb.path.resolve().parent
            beside = (folder / f"{top}.py").exists() or (folder / top / "__init__.py").exists()
            self._local_cache[top] = beside or not _importable(top)
        return self._local_cache[top]

    def all_imports(self, flow: TaskFlow) -> list[ImportFact]:
        return list(flow.imports) + list(self.a.helper_imports)

    def imports_for(self, facts: tuple[ImportFact, ...], used: set[str],
                    flow: TaskFlow | None) -> tuple[str, ...]:
        """Import statements for the names the module really uses."""
        known = {f.name: f for f in self.known_imports()}
        known.update({f.name: f for f in facts})
        lines = [known[n].statement for n in sorted(used)
                 if n in known and not self.is_local(known[n].module)]
        if "functools" in used and "functools" not in known:
            lines.append("import functools")
        ours = sorted(n for n in used if (n in self.helper_names or n in self.setup_names)
                      and n not in known)
        first_party = [f"from {self.pkg} import serializers"] if flow is not None else []
        if ours:
            first_party.append(f"from {self.pkg}.helpers import {', '.join(ours)}")
        return group_imports(lines) + tuple(first_party)

    def known_imports(self) -> list[ImportFact]:
        found = list(self.a.helper_imports)
        for flow in self.a.tasks:
            found += flow.imports
        return found

    def signature(self, name: str, positional: tuple[str, ...], keyword: tuple[str, ...],
                  hints: dict[str, str] | None = None, returns: str = "") -> str:
        """``def clean(raw: pd.DataFrame, *, limit: int = 3) -> pd.DataFrame:`` (hints
        only from a recording: types seen, never guessed)."""
        hints = hints or {}
        args = [f"{n}: {hints[n]}" if hints.get(n) else n for n in positional]
        if keyword:
            args.append("*")
            for k in keyword:
                value = self.a.parameters[k]
                hint = type(value).__name__ if self.recording is not None else ""
                hint = "None" if value is None else hint
                args.append(f"{k}: {hint} = {value!r}" if hint else f"{k}={value!r}")
        arrow = f" -> {returns}" if returns else ""
        return f"def {name}({', '.join(args)}){arrow}:"

    def docstring(self, flow: TaskFlow, products: tuple[Product, ...]) -> str:
        cells = flow.section.cells
        word = "Cell" if len(cells) == 1 else "Cells"
        lines = [f"{word} {cell_numbers(cells)} of {doc_safe(self.nb.display)}, "
                 "as a function.", ""]
        by_task: dict[str, list[str]] = {}
        for name, task in flow.inputs:
            by_task.setdefault(task, []).append(name)
        parts = [f"Inputs from task {task}: {', '.join(names)}." for task, names in by_task.items()]
        if flow.params:
            parts.append("Parameters: " + ", ".join(flow.params) + ".")
        if products:
            parts.append("Returns: " + ", ".join(p.variable for p in products) + ".")
        for part in parts:
            lines += textwrap.wrap(part, width=80, subsequent_indent="    ")
        return "\n    ".join(lines).rstrip()

    @staticmethod
    def glue_signature(flow: TaskFlow, keyword: tuple[str, ...]) -> str:
        args = ["product"] + (["upstream"] if flow.upstream else []) + ["workdir"] + list(keyword)
        return f"def run({', '.join(args)}):"

    def glue_call(self, flow: TaskFlow, positional: tuple[str, ...],
                  keyword: tuple[str, ...]) -> str:
        args = [f'{n}=serializers.load(upstream["{t}"]["{n}"])' for n, t in flow.inputs]
        args += [f"{k}={k}" for k in keyword]
        target = "result = " if flow.outputs else ""
        return f"{target}{flow.name}({', '.join(args)})"

    def glue_saves(self, task: str, products: tuple[Product, ...]) -> tuple[str, ...]:
        """One save per product; values no task reads may fail to save (see serializers)."""
        lines = []
        for i, p in enumerate(products):
            value = "result" if len(products) == 1 else f"result[{i}]"
            optional = "" if (task, p.variable) in self.consumed else ", required=False"
            lines.append(f'serializers.save({value}, product["{p.variable}"], "{p.format}"'
                         f'{optional})')
        return tuple(lines)

    def test(self, task: TaskPlan, tests: list[TestFlow], producers: dict[str, TaskPlan]) -> TestPlan:
        cases = []
        imports: list[str] = []
        for flow in tests:
            cell = flow.section.cells[0]
            code = edit_cell(self.nb.cells[cell].code, cell, [], self.a.helper_globals)
            loads = []
            for name, producer in flow.inputs:
                product = next((p for p in producers[producer].products if p.variable == name),
                               None)
                if product is not None:
                    loads.append(f'{name} = load_product("{product.path}")')
            for name in flow.params:
                loads.append(f"{name} = {self.a.parameters.get(name)!r}")
            used = loaded_names(code) if code.strip() else set()
            imports += self.imports_for(flow.imports, used, None)
            body = indent(code) if code.strip() else ""
            if body and not ast.parse(code).body:  # only comments (e.g. a dropped %%html)
                body += "\n    pass"
            cases.append((f"test_cell_{cell + 1}", indent("\n".join(loads)) if loads else "",
                          body or "    pass"))
        support = ""
        if self.fixtures is not None and task.name in self.fixtures.tested:
            cases.append(self.recorded_case(task))
            support = RECORDED_SUPPORT.format(data=self.fixtures.data_dir,
                                              env=self.env_file())
            imports += [f"from {self.pkg}.compare import compare, fingerprint"]
        return TestPlan(
            support=support,
            task=task.name,
            file=f"tests/test_{self.pkg}_{task.name}.py" if not self.single
            else f"tests/test_{task.name}.py",
            module=task.module,
            header=self.header(f"Tests of task `{task.name}`.", task.cells),
            imports=tuple(dict.fromkeys(imports)),
            cases=tuple(cases),
        )

    def env_file(self) -> str:
        return "env.yaml" if self.single else f"env.{self.pkg}.yaml"

    def recorded_case(self, task: TaskPlan) -> tuple[str, str, str]:
        """Call the task on the recorded inputs; expect the recorded outputs."""
        assert self.fixtures is not None
        args = [f'{f.variable}=recorded("{f.path}")'
                for f in self.fixtures.of(task.name, "input")]
        target = "result = " if task.products else ""
        sampled = any(f.strategy == "sample" for f in self.fixtures.of(task.name, "input"))
        doc = ['"""The task on a row sample of the notebook\'s values returns what it',
               'returned on that sample when nb2pipe recorded it."""'] if sampled else [
               '"""The task on the values the notebook held when it started returns',
               'what the notebook held when it ended (recorded by nb2pipe)."""']
        lines = [*doc,
                 "with serializers.workdir(workdir()):",
                 f"    {target}{task.name}({', '.join(args)})"]
        outputs = {f.variable: f for f in self.fixtures.of(task.name, "output")}
        for i, product in enumerate(task.products):
            value = "result" if len(task.products) == 1 else f"result[{i}]"
            fixture = outputs.get(product.variable)
            if fixture is not None and fixture.strategy != "none":
                lines.append(f'expect("{product.variable}", {value}, "{fixture.path}")')
        return ("test_reproduces_the_recorded_run", "", indent("\n".join(lines)))

    def helpers(self) -> tuple[tuple[str, ...], str]:
        """helpers.py: setup code and every hoisted function or class, in notebook
        order: setup code may call a function defined above it, and a definition
        may read a setup name when it runs (a default value, a decorator)."""
        pieces: list[tuple[tuple[int, int], str]] = []    # ((cell, order), code)
        setup = self.a.setup
        placed: set[Span] = set()
        if setup is not None:
            cells = sorted({r.cell for r in setup.binds + setup.reads})
            for cell in cells:
                pieces += self.setup_pieces(cell, setup, placed)
        for definition in self.a.helpers:
            if definition.span not in placed:
                where = (definition.ref.cell, definition.span.start[0])
                pieces.append((where, self.helper_text(definition)))
        parts = [f"# notebook cell {where[0] + 1}\n{text}" for where, text in sorted(pieces)]
        body = "\n\n\n".join(parts)
        used = loaded_names(body) if body.strip() else set()
        # the setup section's own imports too: its code reads them
        # (``import math`` then ``x = math.floor(y)``), which its reads omit
        own = setup.imports if setup is not None else ()
        known = {f.name: f.statement for f in [*self.known_imports(), *own]}
        lines = [known[n] for n in sorted(used) if n in known]
        if "functools" in used and "functools" not in known:
            lines.append("import functools")
        return group_imports(lines), body

    def setup_pieces(self, cell: int, setup: SectionFacts,
                     placed: set[Span]) -> list[tuple[tuple[int, int], str]]:
        """A setup cell's code cut where its hoisted definitions were, with each
        definition in its place (a mark, a NUL no parsed cell holds, stands for
        it while the cell is edited)."""
        hoisted = {d.span: d for d in self.a.helpers if d.span.cell == cell}
        order = list(hoisted)
        spans = [Span(s.cell, s.start, s.end, f"\0{order.index(s)}") if s in hoisted else s
                 for s in setup.removals]
        code = edit_cell(self.nb.cells[cell].code, cell, spans, {})
        state = {f.text for f in setup.states}
        pieces: list[tuple[tuple[int, int], str]] = []
        lines: list[str] = []
        for line in [*code.splitlines(), "\0"]:
            if not line.startswith("\0"):
                lines += [] if line.strip() in state else [line]
                continue
            if "\n".join(lines).strip():
                pieces.append(((cell, len(pieces)), "\n".join(lines).strip("\n")))
            lines = []
            if line != "\0":
                definition = hoisted[order[int(line[1:])]]
                placed.add(definition.span)
                pieces.append(((cell, len(pieces)), self.helper_text(definition)))
        return pieces

    def helper_text(self, definition) -> str:
        """A hoisted definition, taking the globals it reads as keyword arguments."""
        text = textwrap.dedent(definition.text)
        text = edit_cell(text, -1, [], self.a.helper_globals)
        needs = self.a.helper_globals.get(definition.name, ())
        if not needs:
            return text
        node = ast.parse(text).body[-1]
        if isinstance(node, ast.Assign):
            return _lambda_with(text, node, needs)
        return _def_with(text, node, needs)

    def plan(self) -> Plan:
        tasks = tuple(self.task(flow) for flow in self.a.tasks)
        by_name = {t.name: t for t in tasks}
        tests = []
        for task in tasks:
            mine = [t for t in self.a.tests if t.target == task.name]
            tests.append(self.test(task, mine, by_name))
        helpers_imports, helpers_body = self.helpers()
        workdir = os.path.relpath(self.nb.path.resolve().parent, self.out.resolve())
        return Plan(
            notebook=self.nb,
            package=self.pkg,
            tasks=tasks,
            tests=tuple(tests),
            helpers_imports=helpers_imports,
            helpers_body=helpers_body,
            has_helpers=bool(helpers_body.strip()),
            parameters=dict(self.a.parameters),
            workdir=Path(workdir).as_posix(),
            requirements=self.a.requirements,
            pipeline_file="pipeline.yaml" if self.single else f"pipeline.{self.pkg}.yaml",
            env_file=self.env_file(),
            products_dir=f"products/{self.pkg}",
        )


def _returns_hint(hints: list[str]) -> str:
    """``-> T`` for one value, ``-> tuple[A, B]`` for several; nothing if any is unknown."""
    if not hints or not all(hints):
        return ""
    return hints[0] if len(hints) == 1 else f"tuple[{', '.join(hints)}]"


def _offset_of(text: str, line: int, byte_col: int) -> int:
    lines = text.splitlines(keepends=True)
    return sum(len(l) for l in lines[: line - 1]) + _char([l.rstrip("\n") for l in lines],
                                                          line, byte_col)


def _def_close(text: str, node: ast.FunctionDef) -> int:
    """Offset of the ``)`` that closes a def's parameter list."""
    start = _offset_of(text, node.lineno, node.col_offset)
    depth = 0
    readline = io.StringIO(text[start:]).readline
    base = _offsets(text[start:])
    for tok in tokenize.generate_tokens(readline):
        if tok.type == tokenize.OP and tok.string == "(":
            depth += 1
        elif tok.type == tokenize.OP and tok.string == ")":
            depth -= 1
            if depth == 0:
                return start + base[tok.start[0] - 1] + tok.start[1]
    raise ValueError(f"cannot find the parameter list of {node.name}")


def _def_with(text: str, node: ast.FunctionDef, needs: tuple[str, ...]) -> str:
    """``def f(x):`` -> ``def f(x, *, g):`` (before ``**kwargs`` if there is one)."""
    args = node.args
    star = "" if args.kwonlyargs or args.vararg else "*, "
    if args.kwarg is not None:
        at = _offset_of(text, args.kwarg.lineno, args.kwarg.col_offset) - 2
        return text[:at] + star + ", ".join(needs) + ", " + text[at:]
    close = _def_close(text, node)
    existing = bool(args.args or args.posonlyargs or args.kwonlyargs or args.vararg)
    between = text[:close].rstrip()
    comma = "" if not existing or between.endswith(",") else ", "
    return text[:close] + comma + star + ", ".join(needs) + text[close:]


def _lambda_with(text: str, node: ast.Assign, needs: tuple[str, ...]) -> str:
    """``f = lambda x: ...`` -> ``f = lambda x, *, g: ...``."""
    lam: ast.Lambda = node.value  # type: ignore[assignment]
    target = ast.get_source_segment(text, node.targets[0])
    body = ast.get_source_segment(text, lam.body)
    has_args = lam.args.args or lam.args.posonlyargs or lam.args.kwonlyargs or lam.args.vararg \
        or lam.args.kwarg
    existing = ast.unparse(lam.args) if has_args else ""
    star = "" if lam.args.kwonlyargs or lam.args.vararg else "*, "
    params = (existing + ", " if existing else "") + star + ", ".join(needs)
    if lam.args.kwarg is not None:
        params = ast.unparse(lam.args).replace("**", star + ", ".join(needs) + ", **", 1)
    return f"{target} = lambda {params}: {body}"


def plan(notebook: Notebook, analysis: Analysis, out: Path, single: bool = True,
         recording: Recording | None = None, fixtures: Fixtures | None = None) -> Plan:
    """Compute every string of the generated files for one notebook (typed, with
    characterization tests, when a recording and its fixtures are given)."""
    return Planner(notebook, analysis, out, single, recording, fixtures).plan()
