"""Python's scoping rules, applied to notebook code.

Two questions are answered here, with Python's real rules (functions,
lambdas, comprehensions, class bodies, ``global``/``nonlocal``, ``del``,
walrus, ``match`` captures, star-unpacking, imports):

* ``free_names(node)``: which global names a function, lambda, class or
  comprehension reads, mutates or rebinds when it runs;
* which objects a statement mutates in place (``df.dropna(inplace=True)``,
  ``df["c"] = ...``, ``obj.attr = ...``, ``lst.append(...)``, ``x[i] += 1``).

The module-level walk in evaluation order lives in ``flow.py``; this module
only knows about one scope at a time.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

# Methods that never change their receiver (unless called with inplace=True).
# A method call on a name that is not listed here makes the task a producer
# of that name: wrong guesses cost an extra product, never a wrong result.
PURE_METHODS = frozenset("""
head tail describe info copy count nunique unique value_counts mean median mode sum
prod min max std var sem quantile cumsum cumprod corr cov abs round groupby agg
aggregate apply applymap map transform pipe filter query eval merge join concat
sort_values sort_index drop drop_duplicates dropna fillna replace rename
reset_index set_index astype isnull isna notnull notna any all idxmax idxmin
nlargest nsmallest sample shift diff pct_change rolling expanding resample pivot
pivot_table melt stack unstack explode to_numpy to_dict to_list tolist to_csv
to_parquet to_json to_excel to_pickle to_string to_markdown to_frame to_html
to_records get items keys values iteritems iterrows itertuples select_dtypes
memory_usage between clip where mask isin duplicated equals reindex
reindex_like align combine_first interpolate rank corrwith crosstab plot hist
boxplot bar barh scatter line kde area pie predict predict_proba
predict_log_proba decision_function score transform_one get_params
get_feature_names_out format lower upper strip lstrip rstrip split rsplit
startswith endswith find index join replace encode decode title capitalize
reshape ravel flatten dot mean argmax argmin argsort nonzero squeeze
transpose swapaxes cumsum searchsorted item tobytes view diagonal trace
conjugate real imag
""".split())

# Functions known to mutate one of their positional arguments in place:
# dotted name (after resolving imports) -> index of the mutated argument.
MUTATING_FUNCTIONS = {
    "random.shuffle": 0,
    "numpy.random.shuffle": 0,
    "numpy.copyto": 0,
    "numpy.fill_diagonal": 0,
    "numpy.put": 0,
    "numpy.place": 0,
    "numpy.putmask": 0,
    "heapq.heappush": 0,
    "heapq.heappop": 0,
    "heapq.heapify": 0,
    "heapq.heapreplace": 0,
}

# Methods of a generator object that shuffle the array they are given.
MUTATING_ARG_METHODS = frozenset({"shuffle"})

SCOPE_NODES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
               ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def root_name(node: ast.AST) -> ast.Name | None:
    """The name at the bottom of ``a.b[c].d`` (through attributes and subscripts)."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node if isinstance(node, ast.Name) else None


def dotted(node: ast.AST) -> str | None:
    """``np.random.seed`` -> "np.random.seed"; None for anything else."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def is_inplace(call: ast.Call) -> bool:
    """``inplace=True`` among the keywords of a call."""
    return any(k.arg == "inplace" and isinstance(k.value, ast.Constant) and k.value.value is True
               for k in call.keywords)


def mutated_receiver(call: ast.Call) -> ast.Name | None:
    """The name whose object a method call changes, if it may change one.

    ``df.dropna(inplace=True)`` and ``lst.append(x)`` mutate; ``df.head()``
    does not.  The receiver chain goes through attributes and subscripts
    (``df["a"].fillna(0, inplace=True)`` changes ``df``) but not through calls
    (``df.groupby("a").sum()`` works on a new object).
    """
    func = call.func
    if not isinstance(func, ast.Attribute):
        return None
    receiver = root_name(func.value)
    if receiver is None:
        return None
    if func.attr in PURE_METHODS and not is_inplace(call):
        return None
    return receiver


def target_names(target: ast.AST) -> list[ast.Name]:
    """Names bound by an assignment target (tuples, lists and starred included)."""
    if isinstance(target, ast.Name):
        return [target]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in target_names(elt)]
    if isinstance(target, ast.Starred):
        return target_names(target.value)
    return []


def pattern_names(pattern: ast.AST) -> list[str]:
    """Names captured by a ``match`` pattern."""
    names = []
    for node in ast.walk(pattern):
        if isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names.append(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.append(node.rest)
    return names


@dataclass(frozen=True)
class Free:
    """What running a nested scope does to the enclosing (global) names."""

    reads: frozenset[str] = frozenset()
    mutates: frozenset[str] = frozenset()
    assigns: frozenset[str] = frozenset()
    mutated_params: frozenset[str] = frozenset()

    def __or__(self, other: "Free") -> "Free":
        return Free(self.reads | other.reads, self.mutates | other.mutates,
                    self.assigns | other.assigns, self.mutated_params | other.mutated_params)


class _Scan(ast.NodeVisitor):
    """Collect one scope's loads, stores and mutations, not entering nested scopes.

    Nested scopes are queued in ``nested`` together with the parts of them that
    are evaluated in this scope (decorators, defaults, bases, the first
    iterable of a comprehension), which are visited here.
    """

    def __init__(self) -> None:
        self.loads: set[str] = set()
        self.stores: set[str] = set()
        self.globals: set[str] = set()
        self.nonlocals: set[str] = set()
        self.mutated: set[str] = set()
        self.nested: list[ast.AST] = []

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.loads.add(node.id)
        else:
            self.stores.add(node.id)

    def visit_Global(self, node: ast.Global) -> None:
        self.globals.update(node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self.nonlocals.update(node.names)

    def _mutate(self, target: ast.AST) -> None:
        name = root_name(target)
        if name is not None and not isinstance(target, ast.Name):
            self.mutated.add(name.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._mutate(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._mutate(node.target)
        if isinstance(node.target, ast.Name):
            self.loads.add(node.target.id)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._mutate(node.target)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._mutate(target)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        receiver = mutated_receiver(node)
        if receiver is not None:
            self.mutated.add(receiver.id)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.stores.add(alias.asname or alias.name.partition(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.stores.add(alias.asname or alias.name)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.stores.add(node.name)
        self.generic_visit(node)

    def visit_MatchAs(self, node: ast.AST) -> None:
        self.stores.update(pattern_names(node))
        self.generic_visit(node)

    visit_MatchStar = visit_MatchMapping = visit_MatchAs

    def _defines(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.stores.add(node.name)
        for deco in node.decorator_list:
            self.visit(deco)
        self.nested.append(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._defines(node)
        args = node.args
        for default in [*args.defaults, *(d for d in args.kw_defaults if d)]:
            self.visit(default)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._defines(node)
        for base in [*node.bases, *(k.value for k in node.keywords)]:
            self.visit(base)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for default in [*node.args.defaults, *(d for d in node.args.kw_defaults if d)]:
            self.visit(default)
        self.nested.append(node)

    def _comprehension(self, node: ast.AST) -> None:
        self.visit(node.generators[0].iter)
        self.stores.update(walrus_targets(node))
        self.nested.append(node)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.stores.add(node.target.id)
        self.visit(node.value)


COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def walrus_targets(node: ast.AST) -> set[str]:
    """Names a comprehension's ``:=`` binds: they belong to the enclosing scope (PEP 572).

    Nested comprehensions pass them further out; a lambda inside keeps its own.
    """
    found: set[str] = set()
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.NamedExpr):
            found.add(child.target.id)
        if not isinstance(child, SCOPE_NODES) or isinstance(child, COMPREHENSIONS):
            found |= walrus_targets(child)
    return found


def _arg_names(args: ast.arguments) -> list[str]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    every += [a for a in (args.vararg, args.kwarg) if a is not None]
    return [a.arg for a in every]


def _body_of(node: ast.AST) -> list[ast.AST]:
    """The statements/expressions that run inside a nested scope."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return list(node.body)
    if isinstance(node, ast.Lambda):
        return [node.body]
    if isinstance(node, ast.DictComp):
        parts: list[ast.AST] = [node.key, node.value]
    else:
        parts = [node.elt]  # type: ignore[attr-defined]
    for i, gen in enumerate(node.generators):  # type: ignore[attr-defined]
        parts += [gen.target, *gen.ifs] + ([gen.iter] if i else [])
    return parts


def _annotations(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.AST]:
    args = node.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    found = [a.annotation for a in every if a is not None and a.annotation is not None]
    return found + ([node.returns] if node.returns else [])


def free_names(node: ast.AST) -> Free:
    """What ``node`` (a function, lambda, class or comprehension) does to globals.

    Names local to the scope (parameters, names it assigns, imports, nested
    definitions) are not free unless declared ``global``; names declared
    ``nonlocal`` belong to an enclosing function and are local to it.
    """
    scan = _Scan()
    for part in _body_of(node):
        scan.visit(part)
    params: set[str] = set()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        params = set(_arg_names(node.args))
    outside = walrus_targets(node) if isinstance(node, COMPREHENSIONS) else set()
    local = (scan.stores | params) - scan.globals - scan.nonlocals - outside
    inner = Free()
    for child in scan.nested:
        inner = inner | free_names(child)
    # Methods do not see a class body's names (only the implicit ``__class__``
    # cell behind ``super()``); every other scope's nested scopes do see the
    # names it binds.
    visible = {"__class__"} if isinstance(node, ast.ClassDef) else local
    reads = (scan.loads - local) | (inner.reads - visible)
    mutated = (scan.mutated - local) | (inner.mutates - visible)
    result = Free(
        reads=frozenset(reads | mutated),
        mutates=frozenset(mutated),
        assigns=frozenset((scan.stores & scan.globals) | outside | (inner.assigns - visible)),
        mutated_params=frozenset(scan.mutated & params),
    )
    extra = Free()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        for ann in _annotations(node):
            probe = _Scan()
            probe.visit(ann)
            extra = extra | Free(reads=frozenset(probe.loads))
    return result | extra
