"""What one section (the cells of a task, setup, test...) reads, binds and mutates.

The walk follows Python's evaluation order at the top level of the cells,
which is what decides whether a read sees a value from an earlier task or
one made here: ``x = x + 1`` reads the old ``x``; ``if c: x = 1`` only maybe
binds ``x``; ``del x`` unbinds it.  Nested scopes are summarised by
``scope.free_names``; a function's effects on globals apply where the
function is *used*, not where it is defined (that is when Python runs it).
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field

from . import scope
from .scope import Free

BUILTINS = frozenset(dir(builtins)) | {"display", "get_ipython", "In", "Out", "__file__"}

# Calls that set interpreter state a later task may rely on: dotted name
# (after resolving imports) -> kind.  Seeds are special: replaying a seed is
# only exact if nothing drew from the generator in between (see analyse.py).
STATE_CALLS = {
    "numpy.random.seed": "seed",
    "random.seed": "seed",
    "torch.manual_seed": "seed",
    "tensorflow.random.set_seed": "seed",
    "tensorflow.keras.utils.set_random_seed": "seed",
    "pandas.set_option": "setting",
    "pandas.options.display": "setting",
    "matplotlib.use": "setting",
    "matplotlib.rc": "setting",
    "matplotlib.pyplot.rc": "setting",
    "matplotlib.style.use": "setting",
    "matplotlib.pyplot.style.use": "setting",
    "matplotlib.pyplot.rcParams.update": "setting",
    "matplotlib.rcParams.update": "setting",
    "seaborn.set": "setting",
    "seaborn.set_theme": "setting",
    "seaborn.set_style": "setting",
    "seaborn.set_context": "setting",
    "seaborn.set_palette": "setting",
    "warnings.filterwarnings": "setting",
    "warnings.simplefilter": "setting",
    "os.chdir": "setting",
    "sys.path.append": "setting",
    "sys.path.insert": "setting",
    "sys.path.extend": "setting",
    "os.environ.update": "setting",
    "os.environ.setdefault": "setting",
    "os.putenv": "setting",
    "numpy.set_printoptions": "setting",
    "numpy.seterr": "setting",
    "logging.basicConfig": "setting",
    "sklearn.set_config": "setting",
    "torch.set_default_dtype": "setting",
    "tqdm.pandas": "setting",
    "tqdm.tqdm.pandas": "setting",
}
# Assignment targets (item or attribute of these) that set state.
STATE_TARGETS = ("matplotlib.pyplot.rcParams", "matplotlib.rcParams", "os.environ",
                 "pandas.options", "sys.path", "numpy.random")
# Global random generators: calls under these draw from them, except these.
RNG_MODULES = ("numpy.random.", "random.")
RNG_NOT_DRAWS = frozenset({"seed", "default_rng", "RandomState", "Generator", "SeedSequence",
                           "get_state", "set_state", "getstate", "setstate", "Random",
                           "SystemRandom", "PCG64", "MT19937", "BitGenerator"})
DYNAMIC = frozenset({"exec", "eval", "globals", "locals", "vars"})
# Context managers that swallow exceptions: the body of their ``with`` may stop part way.
SUPPRESSING = frozenset({"suppress", "raises", "assertRaises", "assertRaisesRegex"})
# Top-level expressions that only show something in the notebook.
DISPLAY_METHODS = frozenset({"head", "tail", "describe", "info", "value_counts", "nunique",
                             "unique", "memory_usage", "to_string", "get_params"})
# What a value probably is, from the call that made it (dotted prefixes).
KIND_BY_CALL = (
    ("pandas.read_", "dataframe"), ("pandas.DataFrame", "dataframe"),
    ("pandas.concat", "dataframe"), ("pandas.merge", "dataframe"),
    ("pandas.get_dummies", "dataframe"), ("pandas.pivot_table", "dataframe"),
    ("numpy.", "ndarray"), ("sklearn.", "model"), ("xgboost.", "model"),
    ("lightgbm.", "model"), ("statsmodels.", "model"),
    ("matplotlib.", "figure"), ("seaborn.", "figure"), ("plotly.", "figure"),
)
# Kinds that every element of an unpacked value shares: ``fig, ax = plt.subplots()``
# gives a figure and axes, neither of which is data.
UNPACKED_KINDS = frozenset({"figure"})
NOT_DATA_CALLS = frozenset({"open", "iter", "zip", "map", "filter", "enumerate", "reversed"})
DATAFRAME_METHODS = frozenset({"dropna", "fillna", "drop", "copy", "rename", "sort_values",
                               "sort_index", "reset_index", "set_index", "merge", "join",
                               "drop_duplicates", "astype", "replace", "assign", "query",
                               "select_dtypes", "head", "tail", "sample", "reindex"})


@dataclass(frozen=True)
class Ref:
    """A name at a place: 0-based cell index, 1-based line and column."""

    name: str
    cell: int
    line: int
    col: int


@dataclass(frozen=True)
class Span:
    """A piece of a cell's code, for the renderer to remove or replace."""

    cell: int
    start: tuple[int, int]
    end: tuple[int, int]
    replacement: str = ""


@dataclass(frozen=True)
class Definition:
    """A top-level ``def``/``class``/``f = lambda`` that moves to helpers.py."""

    name: str
    kind: str
    text: str
    span: Span
    free: Free
    ref: Ref


@dataclass(frozen=True)
class ImportFact:
    """A name bound by a top-level import: the statement that recreates it."""

    name: str
    module: str
    statement: str
    ref: Ref


@dataclass(frozen=True)
class StateFact:
    """A top-level statement that sets interpreter state (seed, options...)."""

    kind: str
    target: str
    text: str
    ref: Ref
    draws_before: bool = False


@dataclass(frozen=True)
class SectionFacts:
    """Everything the data-flow analysis needs to know about one section."""

    reads: tuple[Ref, ...] = ()
    maybe_local: frozenset[str] = frozenset()
    binds: tuple[Ref, ...] = ()
    maybe: tuple[Ref, ...] = ()
    mutates: tuple[Ref, ...] = ()
    deletes: tuple[Ref, ...] = ()
    defs: tuple[Definition, ...] = ()
    imports: tuple[ImportFact, ...] = ()
    states: tuple[StateFact, ...] = ()
    draws: tuple[Ref, ...] = ()
    star_imports: tuple[Ref, ...] = ()
    dynamic: tuple[Ref, ...] = ()
    global_stmts: tuple[Ref, ...] = ()
    aliases: tuple[tuple[Ref, frozenset[str]], ...] = ()
    # alias targets built by a constructor: mutating the new object does not
    # change what it was built from, only the other way round
    constructed: frozenset[str] = frozenset()
    kinds: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    loop_targets: frozenset[str] = frozenset()   # bound by `for`/`with`: never final products
    removals: tuple[Span, ...] = ()
    display_drops: tuple[Ref, ...] = ()
    unbound: frozenset[str] = frozenset()
    # deleted on every path, then bound again on some paths at most: may not exist
    maybe_unbound: frozenset[str] = frozenset()
    bound: frozenset[str] = frozenset()          # bound on every path to the section's end
    param_order: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False,
                                                   compare=False)


class _Walker:
    """Walks the top-level statements of a section in evaluation order."""

    def __init__(self, functions: dict[str, Free], imports: dict[str, str]) -> None:
        self.functions = dict(functions)
        self.imports = dict(imports)      # bound name -> dotted module path
        self.bound: set[str] = set()
        self.maybe_bound: set[str] = set()
        self.depth = 0                    # > 0 inside conditional code
        self.nesting = 0                  # > 0 inside any compound statement
        self.cell = 0
        self.lines: list[str] = []
        self.alias_of: dict[str, set[str]] = {}
        self.out: dict[str, list] = {k: [] for k in (
            "reads", "binds", "maybe", "mutates", "deletes", "defs", "imports", "states",
            "draws", "star_imports", "dynamic", "global_stmts", "aliases", "removals",
            "display_drops")}
        self.seen_reads: set[str] = set()
        self.maybe_local: set[str] = set()
        self.kinds: dict[str, str] = {}
        self.loop_targets: set[str] = set()
        self.param_order: dict[str, tuple[str, ...]] = {}
        self.constructed: set[str] = set()
        self.known_kinds: dict[str, str] = {}
        self.in_use: set[str] = set()     # functions whose effects are being applied
        self.deleted: set[str] = set()    # deleted on every path and not bound since
        self.dropped: set[str] = set()    # deleted on every path at some point

    # --- recording -----------------------------------------------------------
    def ref(self, name: str, node: ast.AST) -> Ref:
        line = getattr(node, "lineno", 1)
        raw = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        col = len(raw.encode()[: getattr(node, "col_offset", 0)].decode(errors="ignore"))
        return Ref(name, self.cell, line, col + 1)

    def read(self, name: str, node: ast.AST) -> None:
        """A load of ``name``; using a function also reads what its body reads.

        That holds for a function defined in this very section too: its body
        runs here, and the globals it reads may come from an earlier task.
        """
        if name not in self.bound:
            if name in self.maybe_bound:
                self.maybe_local.add(name)
            if name not in self.seen_reads:
                self.seen_reads.add(name)
                self.out["reads"].append(self.ref(name, node))
        if name in self.functions:
            self.use_function(name, node)

    def use_function(self, name: str, node: ast.AST, seen: frozenset[str] = frozenset()) -> None:
        """A function's global reads and mutations happen where it is used.

        ``in_use`` stops the recursion when functions reach each other through
        mutation (``def f(): g.n = 1`` and ``def g(): f.n = 1``), not only calls.
        """
        if name in self.in_use:
            return
        self.in_use.add(name)
        effect = self.functions[name]
        for other in sorted(effect.reads - seen - {name}):
            if other in self.functions:
                self.use_function(other, node, seen | {name})
            elif other not in self.bound:
                self.read(other, node)
        for other in sorted(effect.mutates):
            self.mutate(other, node)
        for other in sorted(effect.assigns):
            self.maybe_bind(other, node)
        self.in_use.discard(name)

    def maybe_bind(self, name: str, node: ast.AST) -> None:
        """A binding that may not happen (a call that assigns a global, a walrus in a loop)."""
        self.depth += 1
        self.bind(name, node)
        self.depth -= 1

    def forget(self, name: str, node: ast.AST) -> None:
        """``name`` is unbound from here on (``del``, the end of an ``except ... as`` block).

        Inside a branch or a loop it only may be: the name may survive.
        """
        self.bound.discard(name)
        self.out["deletes"].append(self.ref(name, node))
        if not self.depth:
            self.deleted.add(name)
            self.dropped.add(name)

    def bind(self, name: str, node: ast.AST, kind: str | None = None) -> None:
        self.deleted.discard(name)  # even a maybe-binding may bring it back
        self.alias_of.pop(name, None)
        if kind is None:
            self.kinds.pop(name, None)
        else:
            self.kinds[name] = kind
        if self.depth:
            self.maybe_bound.add(name)
            self.out["maybe"].append(self.ref(name, node))
        else:
            self.bound.add(name)
            self.out["binds"].append(self.ref(name, node))
        if kind not in ("function", "class"):
            self.functions.pop(name, None)
        if kind != "import":
            self.imports.pop(name, None)

    def mutate(self, name: str, node: ast.AST, seen: frozenset[str] = frozenset()) -> None:
        """Record a mutation of ``name`` and of everything it may alias."""
        if name in self.imports or name in seen:
            return
        self.read(name, node)
        self.out["mutates"].append(self.ref(name, node))
        for source in sorted(self.alias_of.get(name, ())):
            self.mutate(source, node, seen | {name})

    def resolve(self, node: ast.AST) -> str | None:
        """``np.random.seed`` -> "numpy.random.seed" when ``np`` is an import."""
        name = scope.dotted(node)
        if name is None:
            return None
        head, _, rest = name.partition(".")
        if head not in self.imports:
            return None
        return self.imports[head] + ("." + rest if rest else "")

    # --- statements ----------------------------------------------------------
    def run(self, cell: int, code: str, tree: ast.Module) -> None:
        self.cell, self.lines = cell, code.splitlines()
        for stmt in tree.body:
            self.top_statement(stmt)

    def top_statement(self, node: ast.stmt) -> None:
        """Top-level statements can be hoisted, replicated or dropped."""
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            self.record_import(node, hoist=True)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.statement(node)
            self.record_definition(node, node.name, "class" if isinstance(node, ast.ClassDef)
                                   else "function", scope.free_names(node))
            return
        if self.is_lambda_definition(node):
            target = node.targets[0].id  # type: ignore[attr-defined]
            value: ast.Lambda = node.value  # type: ignore[attr-defined]
            for default in [*value.args.defaults, *(d for d in value.args.kw_defaults if d)]:
                self.expr(default)
            self.bind(target, node, "function")
            self.functions[target] = scope.free_names(value)
            self.param_order[target] = tuple(a.arg for a in [*value.args.posonlyargs,
                                                             *value.args.args])
            self.record_definition(node, target, "function", self.functions[target])
            return
        self.record_state(node)
        if self.record_display(node):
            return
        self.statement(node)

    @staticmethod
    def is_lambda_definition(node: ast.stmt) -> bool:
        return (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Lambda))

    def statement(self, node: ast.stmt) -> None:
        handler = getattr(self, "stmt_" + type(node).__name__, None)
        if handler is None:
            self.generic(node)
        else:
            handler(node)

    def block(self, body: list[ast.stmt], conditional: bool = True) -> None:
        self.depth += conditional
        self.nesting += 1
        for stmt in body:
            self.statement(stmt)
        self.nesting -= 1
        self.depth -= conditional

    def generic(self, node: ast.AST) -> None:
        """Statements without special rules: evaluate every expression in order."""
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                self.statement(child)
            elif isinstance(child, ast.expr):
                self.expr(child)

    def stmt_Expr(self, node: ast.Expr) -> None:
        value = node.value
        if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                and value.func.id == "display" and "display" not in self.bound):
            self.out["display_drops"].append(self.ref("display", node))
            self.out["removals"].append(self.span(node, "pass"))
            return
        self.expr(value)

    def stmt_Assign(self, node: ast.Assign) -> None:
        self.expr(node.value)
        kind = self.kind_of(node.value)
        for target in node.targets:
            self.assign_target(target, node, kind)
            self.record_alias(target, node.value)
        names = [t for t in node.targets if isinstance(t, ast.Name)]
        for other in names[1:]:  # ``a = b = {}``: one object under both names
            self.record_alias(other, names[0])

    def stmt_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.expr(node.value)
        self.expr(node.annotation)
        if node.value is not None or not isinstance(node.target, ast.Name):
            self.assign_target(node.target, node, self.kind_of(node.value))

    def stmt_AugAssign(self, node: ast.AugAssign) -> None:
        target = node.target
        if isinstance(target, ast.Name):
            # the old value is loaded first: ``x += (x := 1)`` reads the earlier x
            self.read(target.id, target)
            self.expr(node.value)
            # ``xs += [1]`` changes a mutable object in place: what shares it
            # changes too (for numbers and strings it is a plain rebinding)
            self.mutate(target.id, target)
            kind, shared = self.kinds.get(target.id), self.alias_of.get(target.id)
            self.bind(target.id, target, kind)
            if shared:
                self.alias_of[target.id] = shared
        else:
            # ``d[k] += v`` evaluates d and k (and loads d[k]) before v: the
            # object it changes is d's value from before v, which may rebind d
            self.expr(target)
            root = scope.root_name(target)
            if root is not None:
                self.mutate(root.id, root)
            self.expr(node.value)

    def assign_target(self, target: ast.AST, node: ast.AST, kind: str | None) -> None:
        if isinstance(target, ast.Name):
            self.bind(target.id, target, kind)
            return
        shared = kind if kind in UNPACKED_KINDS else None
        if isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self.assign_target(elt, node, shared)
            return
        if isinstance(target, ast.Starred):
            self.assign_target(target.value, node, shared)
            return
        # Attribute or subscript: evaluate it, then the root object changes.
        self.expr(target)
        root = scope.root_name(target)
        if root is not None:
            self.mutate(root.id, root)

    def stmt_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.read(target.id, target)
                self.forget(target.id, target)
            else:
                self.assign_target(target, node, None)

    def stmt_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.expr(node.iter)
        self.depth += 1
        sources = self.alias_sources(node.iter)
        for name in scope.target_names(node.target):
            self.bind(name.id, name)
            self.loop_targets.add(name.id)
            if sources:
                self.alias_of[name.id] = set(sources)
        if not scope.target_names(node.target):
            self.assign_target(node.target, node, None)
        self.depth -= 1
        self.block(node.body)
        self.block(node.orelse)

    stmt_AsyncFor = stmt_For

    def stmt_While(self, node: ast.While) -> None:
        self.expr(node.test)
        self.block(node.body)
        self.block(node.orelse)

    def stmt_If(self, node: ast.If) -> None:
        """Names bound on both branches are bound after the ``if``."""
        self.expr(node.test)
        self.block(node.body)
        self.block(node.orelse)
        if not self.depth:  # inside a branch, the enclosing statement decides
            self.bound |= definitely_binds([node])

    def stmt_With(self, node: ast.With | ast.AsyncWith) -> None:
        """``as`` targets are resources (files, connections): never final products."""
        for item in node.items:
            self.expr(item.context_expr)
            if item.optional_vars is not None:
                self.assign_target(item.optional_vars, node, None)
                self.loop_targets.update(n.id for n in scope.target_names(item.optional_vars))
        self.block(node.body, conditional=_suppresses(node))

    stmt_AsyncWith = stmt_With

    def stmt_Try(self, node: ast.Try) -> None:
        """Names the body and every handler bind are bound after the ``try``."""
        self.block(node.body)
        for handler in node.handlers:
            if handler.type is not None:
                self.expr(handler.type)
            self.depth += 1
            if handler.name:
                self.bind(handler.name, handler)
            self.depth -= 1
            self.block(handler.body)
            if handler.name:  # Python deletes it when the handler ends
                self.forget(handler.name, handler)
        self.block(node.orelse)
        self.block(node.finalbody, conditional=False)
        if not self.depth:  # inside a branch, the enclosing statement decides
            self.bound |= definitely_binds([node])

    stmt_TryStar = stmt_Try

    def stmt_Match(self, node: ast.Match) -> None:
        self.expr(node.subject)
        for case in node.cases:
            self.depth += 1
            for sub in ast.walk(case.pattern):
                if isinstance(sub, (ast.MatchValue, ast.MatchClass)):
                    self.expr(sub.value if isinstance(sub, ast.MatchValue) else sub.cls)
            for name in scope.pattern_names(case.pattern):
                self.bind(name, case.pattern)
            if case.guard is not None:
                self.expr(case.guard)
            self.depth -= 1
            self.block(case.body)
        if not self.depth:  # a final ``case _:`` makes the match exhaustive
            self.bound |= definitely_binds([node])

    def stmt_Global(self, node: ast.Global | ast.Nonlocal) -> None:
        self.out["global_stmts"].append(self.ref(", ".join(node.names), node))

    stmt_Nonlocal = stmt_Global

    def stmt_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        self.record_import(node, hoist=False)

    stmt_ImportFrom = stmt_Import

    def stmt_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        for deco in node.decorator_list:
            self.expr(deco)
        if isinstance(node, ast.ClassDef):
            for base in [*node.bases, *(k.value for k in node.keywords)]:
                self.expr(base)
            effect = scope.free_names(node)
            body_reads = self.class_body_reads(node)
            for name in sorted(body_reads):
                self.read(name, node)
            kind = "class"
        else:
            args = node.args
            for default in [*args.defaults, *(d for d in args.kw_defaults if d)]:
                self.expr(default)
            effect = scope.free_names(node)
            kind = "function"
        self.bind(node.name, node, kind)
        self.functions[node.name] = effect

    stmt_AsyncFunctionDef = stmt_ClassDef = stmt_FunctionDef

    @staticmethod
    def class_body_reads(node: ast.ClassDef) -> set[str]:
        """Names a class body reads while the class is being created."""
        scan = scope._Scan()
        for stmt in node.body:
            scan.visit(stmt)
        return scan.loads - scan.stores

    # --- expressions ---------------------------------------------------------
    def expr(self, node: ast.AST) -> None:
        _Expr(self).visit(node)

    def call_effects(self, node: ast.Call) -> None:
        """Mutations and state effects of a call, after its parts are evaluated."""
        receiver = scope.mutated_receiver(node)
        if receiver is not None:
            self.mutate(receiver.id, receiver)
        target = self.resolve(node.func)
        if target is not None and target.startswith(RNG_MODULES):
            if target.rpartition(".")[2] not in RNG_NOT_DRAWS:
                self.out["draws"].append(self.ref(target, node))
        mutated_arg = MUTATED_ARG.get(target or "")
        if mutated_arg is None and isinstance(node.func, ast.Attribute) \
                and node.func.attr in scope.MUTATING_ARG_METHODS:
            mutated_arg = 0
        if mutated_arg is not None and len(node.args) > mutated_arg:
            root = scope.root_name(node.args[mutated_arg])
            if root is not None:
                self.mutate(root.id, root)
        for keyword in node.keywords:
            root = scope.root_name(keyword.value)
            if keyword.arg == "out" and root is not None:
                self.mutate(root.id, root)
        if isinstance(node.func, ast.Name) and node.func.id in self.functions:
            self.param_mutations(node, self.functions[node.func.id])
        if isinstance(node.func, ast.Name) and node.func.id in DYNAMIC \
                and node.func.id not in self.bound:
            self.out["dynamic"].append(self.ref(node.func.id + "()", node))

    def param_mutations(self, node: ast.Call, effect: Free) -> None:
        """A helper that mutates its parameter mutates what it was given."""
        if not effect.mutated_params:
            return
        params = self.param_order.get(getattr(node.func, "id", ""), ())
        for i, arg in enumerate(node.args):
            root = scope.root_name(arg)
            if root is not None and (i >= len(params) or params[i] in effect.mutated_params):
                self.mutate(root.id, root)
        for keyword in node.keywords:
            root = scope.root_name(keyword.value)
            if root is not None and (keyword.arg is None or keyword.arg in effect.mutated_params):
                self.mutate(root.id, root)

    # --- facts about top-level statements --------------------------------------
    def span(self, node: ast.AST, replacement: str = "") -> Span:
        start = (node.lineno, self.char_col(node.lineno, node.col_offset))
        end = (node.end_lineno or node.lineno,
               self.char_col(node.end_lineno or node.lineno, node.end_col_offset or 0))
        return Span(self.cell, start, end, replacement)

    def char_col(self, line: int, byte_col: int) -> int:
        raw = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return len(raw.encode()[:byte_col].decode(errors="ignore"))

    def record_import(self, node: ast.Import | ast.ImportFrom, hoist: bool) -> None:
        if hoist and not self.nesting:
            self.out["removals"].append(self.span(node))
        for alias in node.names:
            if alias.name == "*":
                self.out["star_imports"].append(self.ref(f"from {node.module} import *", node))
                continue
            name, module, statement = import_binding(node, alias)
            self.bind(name, node, "import")
            self.imports[name] = module
            if hoist and not self.nesting:
                self.out["imports"].append(ImportFact(name, module, statement,
                                                      self.ref(name, node)))

    def record_definition(self, node: ast.stmt, name: str, kind: str, free: Free) -> None:
        start = node.lineno
        decorators = getattr(node, "decorator_list", [])
        if decorators:
            start = min(d.lineno for d in decorators)
        first = max(start - 1, 0)
        text = "\n".join(self.lines[first: node.end_lineno])
        span = Span(self.cell, (start, 0), (node.end_lineno or start,
                                            len(self.lines[(node.end_lineno or start) - 1])))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.param_order[name] = tuple(a.arg for a in [*node.args.posonlyargs, *node.args.args])
        self.out["defs"].append(Definition(name, kind, text, span, free, self.ref(name, node)))
        self.out["removals"].append(span)

    def record_state(self, node: ast.stmt) -> None:
        """Seeds and settings at the top level, to replicate into later tasks."""
        target, kind = None, None
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            target = self.resolve(node.value.func)
            kind = STATE_CALLS.get(target or "")
        elif isinstance(node, (ast.Assign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for each in targets:
                resolved = self.resolve(each.value) if isinstance(
                    each, (ast.Subscript, ast.Attribute)) else None
                if resolved and resolved.startswith(STATE_TARGETS):
                    target, kind = resolved, "setting"
        if kind is None:
            return
        text = "\n".join(self.lines[node.lineno - 1: node.end_lineno]).strip()
        drawn = bool(self.out["draws"])
        self.out["states"].append(StateFact(kind, target or "", text, self.ref(target or "", node),
                                            drawn))

    def record_display(self, node: ast.stmt) -> bool:
        """Bare expressions at the top level only show a value: drop them."""
        if not isinstance(node, ast.Expr):
            return False
        value = node.value
        shown = isinstance(value, (ast.Name, ast.Attribute, ast.Subscript, ast.Constant))
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute):
            shown = (value.func.attr in DISPLAY_METHODS and scope.root_name(value.func) is not None
                     and all(isinstance(a, ast.Constant) for a in value.args) and not value.keywords
                     and scope.root_name(value.func).id not in self.imports)
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
            shown = value.func.id == "display" and "display" not in self.bound
            if shown:
                self.out["display_drops"].append(self.ref("display", node))
        if not shown:
            return False
        for part in value.args if isinstance(value, ast.Call) and isinstance(
                value.func, ast.Name) else [value]:
            self.expr(part)
        self.out["removals"].append(self.span(node))
        return True

    def record_alias(self, target: ast.AST, value: ast.AST) -> None:
        if _pairs(target, value):
            # ``a, b = x, y`` pairs up; in a swap the names no longer hold what they did
            taken = {n.id for n in scope.target_names(target)}
            found = [(t, v, self.alias_sources(v) - taken)
                     for t, v in zip(target.elts, value.elts)]  # type: ignore[attr-defined]
            for elt, part, sources in found:
                self.note_alias(elt, part, sources)
        elif isinstance(target, ast.Name):
            self.note_alias(target, value, self.alias_sources(value))

    def note_alias(self, target: ast.AST, value: ast.AST, sources: set[str]) -> None:
        if isinstance(target, ast.Name) and sources:
            self.alias_of[target.id] = sources
            self.out["aliases"].append((self.ref(target.id, target), frozenset(sources)))
            if _builds_object(value):
                self.constructed.add(target.id)

    def alias_sources(self, value: ast.AST) -> set[str]:
        """Names whose objects ``value`` shares (``b = a``, ``[a, b]``)."""
        if isinstance(value, ast.Name):
            return {value.id} | self.alias_of.get(value.id, set())
        if isinstance(value, (ast.List, ast.Tuple, ast.Set)):
            found: set[str] = set()
            for elt in value.elts:
                found |= self.alias_sources(elt)
            return found
        if isinstance(value, ast.Dict):
            found = set()
            for elt in value.values:
                found |= self.alias_sources(elt)
            return found
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) \
                and isinstance(value.func.value, ast.Call) \
                and _is_constructor(value.func.value.func):
            # Foo(x).fit(...) returns the new object itself
            return self.alias_sources(value.func.value)
        if isinstance(value, ast.Call) and _is_constructor(value.func):
            # Objects keep what they are built from: AdaBoostClassifier(estimator=tree)
            # holds `tree` itself, Pipeline([("s", scaler)]) holds `scaler`.
            found = set()
            for arg in [*value.args, *(k.value for k in value.keywords)]:
                found |= self.alias_sources(arg)
            return found
        return set()

    def kind_of(self, value: ast.AST | None) -> str | None:
        """A best guess of what a value is, to pick its serializer."""
        if value is None:
            return None
        if isinstance(value, ast.Constant) and not isinstance(value.value, (bytes, complex)):
            return "json"
        if isinstance(value, (ast.List, ast.Dict)) and all(
                isinstance(n, (ast.Constant, ast.List, ast.Dict, ast.Load))
                for n in ast.walk(value) if n is not value):
            return "json"
        if isinstance(value, (ast.GeneratorExp, ast.Lambda)):
            return "unpicklable" if isinstance(value, ast.GeneratorExp) else "function"
        if isinstance(value, ast.Call):
            if isinstance(value.func, ast.Name) and value.func.id in NOT_DATA_CALLS:
                return "unpicklable"
            target = self.resolve(value.func) or ""
            for prefix, kind in KIND_BY_CALL:
                if target.startswith(prefix):
                    # Estimators are classes; sklearn's functions return arrays & co.
                    if kind == "model" and not target.rpartition(".")[2][:1].isupper():
                        return None
                    return kind
            if isinstance(value.func, ast.Attribute):
                receiver = scope.root_name(value.func.value)
                owner = None
                if receiver is not None:
                    owner = self.kinds.get(receiver.id, self.known_kinds.get(receiver.id))
                if owner == "dataframe" and value.func.attr in DATAFRAME_METHODS:
                    return "dataframe"
                if owner == "model" and value.func.attr == "fit":
                    return "model"
        return None

    def facts(self) -> SectionFacts:
        out = self.out
        return SectionFacts(
            reads=tuple(out["reads"]), maybe_local=frozenset(self.maybe_local),
            binds=tuple(out["binds"]), maybe=tuple(out["maybe"]),
            mutates=tuple(out["mutates"]), deletes=tuple(out["deletes"]),
            defs=tuple(out["defs"]), imports=tuple(out["imports"]),
            states=tuple(out["states"]), draws=tuple(out["draws"]),
            star_imports=tuple(out["star_imports"]), dynamic=tuple(out["dynamic"]),
            global_stmts=tuple(out["global_stmts"]), aliases=tuple(out["aliases"]),
            constructed=frozenset(self.constructed),
            kinds=dict(self.kinds), loop_targets=frozenset(self.loop_targets),
            removals=tuple(out["removals"]), display_drops=tuple(out["display_drops"]),
            unbound=frozenset(self.deleted - self.bound),
            maybe_unbound=frozenset(self.dropped - self.bound),
            bound=frozenset(self.bound),
            param_order=dict(self.param_order),
        )


MUTATED_ARG = scope.MUTATING_FUNCTIONS


def _suppresses(node: ast.With | ast.AsyncWith) -> bool:
    """``with suppress(KeyError):``, ``with pytest.raises(E):``: the body may stop
    anywhere and the code after it still runs."""
    return any(isinstance(item.context_expr, ast.Call)
               and (scope.dotted(item.context_expr.func) or "").rpartition(".")[2]
               in SUPPRESSING for item in node.items)


def _pairs(target: ast.AST, value: ast.AST) -> bool:
    """``a, b = x, y``: each target gets the value in its place."""
    return isinstance(target, (ast.Tuple, ast.List)) and isinstance(value, (ast.Tuple, ast.List)) \
        and len(target.elts) == len(value.elts) and not any(
            isinstance(e, ast.Starred) for e in (*target.elts, *value.elts))


def _builds_object(value: ast.AST) -> bool:
    """``Foo(x)`` or ``Foo(x).fit(...)``: a new object that holds ``x``."""
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) \
            and isinstance(value.func.value, ast.Call):
        value = value.func.value
    return isinstance(value, ast.Call) and _is_constructor(value.func)


def _is_constructor(func: ast.AST) -> bool:
    """``Foo(...)``/``mod.Foo(...)``: by convention a class, which may store its arguments."""
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name[:1].isupper()


class _Expr(ast.NodeVisitor):
    """Evaluation of one expression at the top level of a section."""

    def __init__(self, walker: _Walker) -> None:
        self.w = walker

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.w.read(node.id, node)
        else:
            self.w.bind(node.id, node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.w.bind(node.target.id, node.target, self.w.kind_of(node.value))

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        self.w.call_effects(node)

    def visit_BoolOp(self, node: ast.BoolOp | ast.IfExp) -> None:
        """``a or (n := 1)``, ``x if c else (n := 1)``: only the first part always runs."""
        first, *rest = [node.test, node.body, node.orelse] if isinstance(node, ast.IfExp) \
            else node.values
        self.visit(first)
        self.w.depth += 1
        for part in rest:
            self.visit(part)
        self.w.depth -= 1

    visit_IfExp = visit_BoolOp

    def _nested(self, node: ast.AST) -> None:
        """Comprehensions and lambdas run here: their free names are read now."""
        if isinstance(node, ast.Lambda):
            for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]:
                self.visit(default)
        else:
            self.visit(node.generators[0].iter)  # type: ignore[attr-defined]
        effect = scope.free_names(node)
        for name in sorted(effect.reads):
            self.w.read(name, node)
        for name in sorted(effect.mutates):
            self.w.mutate(name, node)
        if not isinstance(node, ast.Lambda):
            for name in sorted(scope.walrus_targets(node)):
                self.w.maybe_bind(name, node)

    visit_Lambda = visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _nested


def definitely_binds(body: list[ast.stmt]) -> set[str]:
    """Names a block binds on every path that completes it (``if``/``else``,
    ``try``/``except``), net of what it deletes; loops may not run at all.
    """
    bound: set[str] = set()
    for stmt in body:
        bound |= _walrus(stmt)
        if isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if not isinstance(stmt, ast.AnnAssign) or stmt.value is not None:
                bound.update(n.id for t in targets for n in scope.target_names(t))
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            bound.update(import_binding(stmt, a)[0] for a in stmt.names if a.name != "*")
        elif isinstance(stmt, ast.Delete):
            bound -= {t.id for t in stmt.targets if isinstance(t, ast.Name)}
        elif isinstance(stmt, ast.If):
            bound |= definitely_binds(stmt.body) & definitely_binds(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            normal = definitely_binds(stmt.body + stmt.orelse)
            for handler in stmt.handlers:  # ``except E as e`` deletes e at its end
                normal &= definitely_binds(handler.body) - {handler.name}
            bound |= normal | definitely_binds(stmt.finalbody)
        elif isinstance(stmt, (ast.With, ast.AsyncWith)) and not _suppresses(stmt):
            bound |= definitely_binds(stmt.body)
        elif isinstance(stmt, ast.Match) and _irrefutable(stmt.cases[-1]):
            bound |= set.intersection(*(definitely_binds(case.body) | set(
                scope.pattern_names(case.pattern)) for case in stmt.cases))
    return bound


def _walrus(node: ast.AST) -> set[str]:
    """Names ``:=`` binds in what always runs of ``node``: the header of a compound
    statement, not the operands ``and``/``or``/``x if c else y`` may skip, not
    lambdas and comprehensions."""
    if isinstance(node, ast.NamedExpr):
        return {node.target.id} | _walrus(node.value)
    if isinstance(node, (*scope.SCOPE_NODES, ast.Try, ast.TryStar)):
        return set()
    parts: list[ast.AST] = list(ast.iter_child_nodes(node))
    if isinstance(node, ast.BoolOp):
        parts = node.values[:1]
    elif isinstance(node, (ast.IfExp, ast.If, ast.While)):
        parts = [node.test]
    elif isinstance(node, (ast.For, ast.AsyncFor)):
        parts = [node.iter]
    elif isinstance(node, (ast.With, ast.AsyncWith)):
        parts = [item.context_expr for item in node.items]
    elif isinstance(node, ast.Match):
        parts = [node.subject]
    return set().union(*(_walrus(part) for part in parts))


def _irrefutable(case: ast.match_case) -> bool:
    """``case _:`` or ``case name:`` without a guard: it always matches."""
    return case.guard is None and isinstance(case.pattern, ast.MatchAs) \
        and case.pattern.pattern is None


def import_binding(node: ast.Import | ast.ImportFrom, alias: ast.alias) -> tuple[str, str, str]:
    """(bound name, dotted path it refers to, a statement that binds just it)."""
    if isinstance(node, ast.Import):
        if alias.asname:
            return alias.asname, alias.name, f"import {alias.name} as {alias.asname}"
        head = alias.name.partition(".")[0]
        return head, head, f"import {alias.name}"
    module = "." * node.level + (node.module or "")
    as_part = f" as {alias.asname}" if alias.asname else ""
    return (alias.asname or alias.name, f"{module}.{alias.name}",
            f"from {module} import {alias.name}{as_part}")


def walk_section(cells: list[tuple[int, str, ast.Module]], functions: dict[str, Free],
                 imports: dict[str, str], param_order: dict[str, tuple[str, ...]],
                 kinds: dict[str, str] | None = None) -> SectionFacts:
    """The facts of a section given what the sections before it defined."""
    walker = _Walker(functions, imports)
    walker.param_order = dict(param_order)
    walker.known_kinds = dict(kinds or {})
    for index, code, tree in cells:
        walker.run(index, code, tree)
    return walker.facts()
