"""Stage 3: sections -> data flow between tasks.

Rule (SPEC §2): a read of a name binds to the LAST earlier section that
defines OR MUTATES it.  Walking the sections in notebook order with a table
``producer[name]`` gives exactly that.  The result says, for every task, which
names it takes from which task, which parameters, helpers and imports it
uses, and which names it must return (its products).
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field

from . import codes
from .flow import BUILTINS, Definition, ImportFact, Ref, SectionFacts, StateFact, walk_section
from .model import Diagnostic, Layout, Location, Notebook, Section, TaskKind
from .scope import Free

# Names the generated pipeline itself passes (run(product, upstream, workdir, ...))
# or that Ploomber expands in env.yaml ({{here}}, {{cwd}}...).
RESERVED_PARAMETERS = frozenset({"product", "upstream", "workdir", "here", "cwd", "root",
                                 "user", "now", "git", "git_hash", "env"})
# Values that are never products: what they are cannot be saved meaningfully.
NOT_PRODUCTS = frozenset({"import", "function", "class", "figure", "unpicklable"})
# Producers whose value a task keeps when it only maybe rebinds a name
# (``if c: x = 1``) or when replicated state (``np.random.seed(SEED)``) reads it.
PASSED_ON = frozenset({"task", "parameter", "import", "helper", "setup"})
# Sections that reach the pipeline: findings about their code are reported.
PIPELINE_KINDS = frozenset({TaskKind.TASK, TaskKind.SETUP, TaskKind.PARAMETERS, TaskKind.TEST})


@dataclass(frozen=True)
class Producer:
    """Who gave a name its current value, as of some point in the notebook."""

    kind: str          # "task", "parameter", "setup", "helper", "skip", "test", "deleted"
    section: str
    ref: Ref


@dataclass(frozen=True)
class TaskFlow:
    """The data flow of one task."""

    section: Section
    facts: SectionFacts
    inputs: tuple[tuple[str, str], ...]      # (name, producing task), in first-read order
    params: tuple[str, ...]
    helpers: tuple[str, ...]                 # names imported from helpers.py
    imports: tuple[ImportFact, ...]
    upstream: tuple[str, ...]
    prelude: tuple[StateFact, ...]
    outputs: tuple[str, ...] = ()
    kinds: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def name(self) -> str:
        return self.section.name


@dataclass(frozen=True)
class TestFlow:
    """A ``test`` cell and the task products it needs."""

    section: Section
    target: str
    inputs: tuple[tuple[str, str], ...]
    imports: tuple[ImportFact, ...]
    helpers: tuple[str, ...]
    params: tuple[str, ...]


@dataclass(frozen=True)
class Analysis:
    """Everything ``plan`` needs about the notebook's data flow."""

    tasks: tuple[TaskFlow, ...]
    tests: tuple[TestFlow, ...]
    parameters: dict[str, object]
    setup: SectionFacts | None
    helpers: tuple[Definition, ...]
    helper_globals: dict[str, tuple[str, ...]]
    helper_imports: tuple[ImportFact, ...]
    requirements: tuple[str, ...]


class _State:
    """What is known at a point of the notebook while walking it in order."""

    def __init__(self) -> None:
        self.producer: dict[str, Producer] = {}
        self.functions: dict[str, Free] = {}
        self.modules: dict[str, str] = {}
        self.imports: dict[str, ImportFact] = {}
        self.definitions: dict[str, Definition] = {}
        self.param_order: dict[str, tuple[str, ...]] = {}
        self.states: list[tuple[str, StateFact]] = []
        self.draws: list[tuple[str, Ref]] = []
        self.kinds: dict[str, str] = {}
        self.star_imports: list[Ref] = []
        # (task, target, source names, where) of ``b = a`` / ``x = [a, b]`` still live
        self.aliases: list[tuple[str, str, set[str], Ref, bool]] = []
        self.alias_breaks: list[tuple[str, Ref, set[str], str, Ref]] = []


class Analyser:
    """Walks the sections of one notebook in order (see module docstring)."""

    def __init__(self, notebook: Notebook, layout: Layout) -> None:
        self.nb = notebook
        self.layout = layout
        self.path = notebook.display
        self.found: list[Diagnostic] = []
        self.s = _State()
        self.trees: dict[int, ast.Module] = {}
        self.parameters: dict[str, object] = {}
        self.setup: SectionFacts | None = None
        self.tasks: list[TaskFlow] = []
        self.tests: list[TestFlow] = []
        self.later_binds: dict[str, Ref] = {}
        self.vanished: dict[str, tuple[str, ...]] = {}   # definitions-only task -> its after:

    def loc(self, ref: Ref) -> Location:
        return Location(self.path, ref.cell + 1, ref.line, ref.col)

    # --- driver ----------------------------------------------------------------
    def run(self) -> tuple[Analysis, list[Diagnostic]]:
        walked = []
        for section in self.layout.sections:
            facts = self.walk(section)
            handler = {TaskKind.TASK: self.task, TaskKind.SETUP: self.setup_section,
                       TaskKind.PARAMETERS: self.parameters_section,
                       TaskKind.SKIP: self.skip, TaskKind.TEST: self.test}[section.kind]
            handler(section, facts)
            if section.kind in PIPELINE_KINDS:
                walked.append(facts)
        self.check_one_meaning(walked)
        tasks = self.with_outputs()
        self.report_aliases()
        helpers, globals_, helper_imports = self.helpers()
        analysis = Analysis(tuple(tasks), tuple(self.tests), dict(self.parameters), self.setup,
                            helpers, globals_, helper_imports, self.requirements())
        return analysis, self.found

    def walk(self, section: Section) -> SectionFacts:
        cells = []
        for index in section.cells:
            cell = self.nb.cells[index]
            cells.append((index, cell.code, self.tree(index)))
        facts = walk_section(cells, self.s.functions, self.s.modules, self.s.param_order,
                             self.s.kinds)
        if section.kind not in PIPELINE_KINDS:
            return facts  # exploration never reaches the pipeline: nothing to report
        self.s.star_imports += facts.star_imports
        for ref in facts.star_imports:
            module = ref.name.split()[1]
            self.found.append(codes.make("NB304", self.loc(ref), detail=ref.name, module=module))
        for ref in facts.dynamic:
            self.found.append(codes.make("NB307", self.loc(ref), detail=ref.name))
        return facts

    def tree(self, index: int) -> ast.Module:
        if index not in self.trees:
            self.trees[index] = ast.parse(self.nb.cells[index].code)
        return self.trees[index]

    # --- sections ----------------------------------------------------------------
    def task(self, section: Section, facts: SectionFacts) -> None:
        if self.only_definitions(section):
            # Only imports, defs and classes: they move to helpers.py and the
            # modules' imports, leaving nothing for a task to do.
            self.vanished[section.name] = section.after
            self.record(section, facts, "task")
            return
        self.check_aliases(section, facts)
        prelude = self.prelude(section, facts)
        inputs, params, helpers, imports = self.resolve(section, facts, _state_reads(prelude))
        imports += self.own_imports(section, facts)
        for ref in facts.global_stmts:
            self.found.append(codes.make("NB311", self.loc(ref), detail="global " + ref.name))
        for name in ("product", "upstream"):
            if any(r.name == name for r in facts.binds + facts.maybe):
                ref = next(r for r in facts.binds + facts.maybe if r.name == name)
                self.found.append(codes.make("NB312", self.loc(ref), detail=repr(name)))
        upstream = tuple(dict.fromkeys([t for _, t in inputs] + self.after(section.after)))
        self.tasks.append(TaskFlow(section, facts, inputs, params, helpers, imports,
                                   upstream, prelude, kinds=_kinds_after(self.s.kinds, facts)))
        # Only module-level names can clash with the task's function: locals
        # and inputs of the same name shadow it harmlessly inside the body.
        module_level = {name for name in (r.name for r in facts.reads)
                        if name in BUILTINS or getattr(self.s.producer.get(name), "kind", "")
                        in ("import", "helper", "setup")}
        if section.name in module_level:
            self.found.append(codes.make("NB308", Location(self.path, section.tag_cell + 1),
                                         detail=section.name))
        self.record(section, facts, "task")

    def after(self, names: tuple[str, ...]) -> list[str]:
        """``after:`` edges to tasks of the pipeline: a task that vanished (only
        definitions) passes on its own edges."""
        found: list[str] = []
        for name in names:
            found += self.after(self.vanished[name]) if name in self.vanished else [name]
        return found

    def only_definitions(self, section: Section) -> bool:
        hoisted = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                   ast.ClassDef)
        return all(isinstance(stmt, hoisted) for index in section.cells
                   for stmt in self.tree(index).body)

    def check_aliases(self, section: Section, facts: SectionFacts) -> None:
        """Mutating one of two names that share an object across tasks.

        In the notebook ``b = a`` (task 1) then ``b.append(x)`` (task 2) changes
        ``a`` too; in the pipeline each is saved and loaded on its own, so it
        does not.  Whether that matters is decided once every later read is
        known (``report_aliases``).
        """
        # Only an object that came from an earlier task can be shared with a
        # name of an earlier task: a name rebound here first is a new object.
        external = {r.name for r in facts.reads}
        mutated = {r.name: r for r in facts.mutates if r.name in external}
        for name, ref in mutated.items():
            for partner, (owner, alias_ref) in self.sharing(name).items():
                self.s.alias_breaks.append((section.name, ref, {partner}, owner, alias_ref))
        rebound = {r.name for r in facts.binds}
        kept = []
        for owner, target, sources, ref, one_way in self.s.aliases:
            if target not in rebound:
                kept.append((owner, target, sources - rebound, ref, one_way))
        self.s.aliases = [a for a in kept if a[2]]
        for ref, sources in facts.aliases:
            self.s.aliases.append((section.name, ref.name, set(sources) - {ref.name}, ref,
                                   ref.name in facts.constructed))

    def sharing(self, name: str) -> dict[str, tuple[str, Ref]]:
        """The names a change to ``name`` in place also changes, each with the
        alias (task, place) that links it.

        The first step goes both ways (``b = a``: either name changes the
        other); after it, only upwards, to what holds the object
        (``total = d`` and ``s = [d, 1]``: changing ``total`` changes ``d``,
        so ``s``), never down from a container to its other items
        (``data = [train, test]`` does not make ``train`` share with ``test``).
        """
        reached: dict[str, tuple[str, Ref]] = {}
        todo, first = [name], True
        while todo:
            current = todo.pop()
            for owner, target, sources, ref, one_way in self.s.aliases:
                if current in sources:
                    found = [target]
                elif first and current == target and not one_way:
                    found = sorted(sources)
                else:
                    continue
                for other in found:
                    if other != name and other not in reached:
                        reached[other] = (owner, ref)
                        todo.append(other)
            first = False
        return reached

    def report_aliases(self) -> None:
        """NB310 for every alias break whose other name a later section reads."""
        order = [s.name for s in self.layout.sections]
        readers = [(t.section.name, {n for n, _ in t.inputs} | set(t.params))
                   for t in (*self.tasks, *self.tests)]
        reported: set[tuple[str, Ref]] = set()
        for task, ref, partners, owner, alias_ref in self.s.alias_breaks:
            # the mutating task itself counts when it loads the partner: its copy
            # is a separate object there too
            after = [name for name, reads in readers
                     if order.index(name) >= order.index(task) and reads & partners]
            if after and (task, ref) not in reported:
                reported.add((task, ref))  # one finding per change, at its first partner
                partner = sorted(partners)[0]
                message = (f"task {task!r} changes {ref.name!r} in place, which shares its object "
                           f"with {partner!r} since {self.loc(alias_ref)} (task {owner!r}); "
                           f"task {after[0]!r} reads {partner!r} and would not see the change "
                           "in the pipeline")
                self.found.append(codes.make("NB310", self.loc(ref), detail=message,
                                             related=self.loc(alias_ref)))

    def setup_section(self, section: Section, facts: SectionFacts) -> None:
        inputs, _, _, _ = self.resolve(section, facts)
        for name, task in inputs:
            # a name only maybe bound here has its earlier value as input, with no read
            ref = next((r for r in facts.reads if r.name == name), None)
            where = self.loc(ref) if ref else Location(self.path, section.cells[0] + 1)
            self.found.append(codes.make("NB303", where, detail=repr(name),
                                         other=f"in task {task}, after this setup cell"))
        self.setup = facts
        self.record(section, facts, "setup")

    def parameters_section(self, section: Section, facts: SectionFacts) -> None:
        for index in section.cells:
            for stmt in self.tree(index).body:
                self.parameter(index, stmt)
        self.record(section, facts, "parameter")

    def parameter(self, index: int, stmt: ast.stmt) -> None:
        """``NAME = literal``: anything else is not a pipeline parameter."""
        where = Location(self.path, index + 1, stmt.lineno, stmt.col_offset + 1)
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                and isinstance(stmt.targets[0], ast.Name)):
            if isinstance(stmt, (ast.Import, ast.ImportFrom)) or (
                    isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
                return
            self.found.append(codes.make("NB211", where, detail="only `NAME = literal` lines "
                                                                "can be parameters"))
            return
        try:
            value = ast.literal_eval(stmt.value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            self.found.append(codes.make("NB211", where, detail=f"{stmt.targets[0].id} is not "
                                                                "a literal value"))
            return
        if not _yaml_exact(value):
            self.found.append(codes.make("NB211", where, detail=f"{stmt.targets[0].id} = "
                                         f"{type(value).__name__} cannot be a YAML parameter "
                                         "(use a list, dict, str, number, bool or None)"))
            return
        name = stmt.targets[0].id
        if name in RESERVED_PARAMETERS:
            self.found.append(codes.make("NB312", where, detail=f"parameter {name!r}"))
            return
        self.parameters[name] = value

    def skip(self, section: Section, facts: SectionFacts) -> None:
        """Skipped cells define nothing for the pipeline; remember where for messages."""
        for ref in facts.binds + facts.maybe:
            self.s.producer.setdefault(ref.name, Producer("skip", section.name, ref))

    def test(self, section: Section, facts: SectionFacts) -> None:
        inputs, params, helpers, imports = self.resolve(section, facts)
        self.tests.append(TestFlow(section, section.target, inputs, imports, helpers, params))

    def own_imports(self, section: Section, facts: SectionFacts) -> tuple[ImportFact, ...]:
        """The section's own (hoisted) imports that its code uses: its module needs them too."""
        used = {node.id for index in section.cells for node in ast.walk(self.tree(index))
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
        return tuple(fact for fact in facts.imports if fact.name in used)

    # --- resolution ----------------------------------------------------------------
    def resolve(self, section: Section, facts: SectionFacts, also: tuple[Ref, ...] = ()):
        """Bind every read of the section to where its value comes from.

        A name the section only maybe rebinds (``if c: x = 1``) keeps its old
        value otherwise, so it is taken from its producer like a read; so are
        the names in ``also`` (what replicated interpreter state reads).
        """
        inputs: dict[str, str] = {}
        params: list[str] = []
        helpers: list[str] = []
        imports: dict[str, ImportFact] = {}
        for ref in facts.reads:
            self.resolve_one(ref, facts, inputs, params, helpers, imports)
        resolved = {r.name for r in facts.reads}
        for ref in (*also, *facts.maybe):
            # Loop targets are the documented exception: code that reads one
            # after an empty loop fails loudly in the pipeline, never wrongly.
            if ref.name in facts.loop_targets and ref not in also:
                continue
            producer = self.s.producer.get(ref.name)
            if ref.name not in resolved and producer is not None and producer.kind in PASSED_ON:
                resolved.add(ref.name)
                self.resolve_one(ref, facts, inputs, params, helpers, imports)
        return tuple(inputs.items()), tuple(params), tuple(helpers), tuple(imports.values())

    def resolve_one(self, ref: Ref, facts: SectionFacts, inputs: dict[str, str],
                    params: list[str], helpers: list[str], imports: dict[str, ImportFact]) -> None:
        name = ref.name
        producer = self.s.producer.get(name)
        kind = producer.kind if producer else None
        if kind == "import":
            imports[name] = self.s.imports[name]
        elif kind == "helper" or kind == "setup":
            helpers.append(name)
        elif kind == "task":
            inputs.setdefault(name, producer.section)
        elif kind == "parameter":
            params.append(name)
        elif name in BUILTINS or name in facts.maybe_local:
            return
        elif kind == "skip":
            self.found.append(codes.make("NB302", self.loc(ref), detail=repr(name),
                                         other=str(self.loc(producer.ref)),
                                         related=self.loc(producer.ref)))
        elif kind == "deleted":
            self.found.append(codes.make("NB301", self.loc(ref),
                                         detail=f"{name!r} (deleted at {self.loc(producer.ref)})"))
        elif any((r.cell, r.line) <= (ref.cell, ref.line) for r in self.s.star_imports
                 + list(facts.star_imports)):
            return  # it may come from the star import, already an error (NB304)
        else:
            later = self.defined_later(name, ref)
            if later is not None:
                self.found.append(codes.make("NB303", self.loc(ref), detail=repr(name),
                                             other=str(self.loc(later)), related=self.loc(later)))
            else:
                self.found.append(codes.make("NB301", self.loc(ref), detail=repr(name)))

    def defined_later(self, name: str, ref: Ref) -> Ref | None:
        """Where ``name`` is bound after ``ref`` (for "used before defined")."""
        for index, cell in enumerate(self.nb.cells):
            if index <= ref.cell or cell.kind != "code" or not cell.code.strip():
                continue
            try:
                tree = self.tree(index)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
                    return Ref(name, index, node.lineno, node.col_offset + 1)
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
                    return Ref(name, index, node.lineno, node.col_offset + 1)
        return None

    def record(self, section: Section, facts: SectionFacts, kind: str) -> None:
        """After a section: it is now the producer of what it bound or mutated."""
        s = self.s
        for fact in facts.imports:
            s.imports[fact.name] = fact
            s.modules[fact.name] = fact.module
            s.producer[fact.name] = Producer("import", section.name, fact.ref)
        for ref in facts.binds + facts.maybe + facts.mutates:
            if facts.kinds.get(ref.name) == "import":
                continue
            s.producer[ref.name] = Producer(kind, section.name, ref)
        for name in facts.unbound:
            ref = next(r for r in facts.deletes if r.name == name)
            s.producer[name] = Producer("deleted", section.name, ref)
        for definition in facts.defs:
            self.define(definition)
        s.param_order.update(facts.param_order)
        s.kinds = _kinds_after(s.kinds, facts)
        for fact in facts.states:
            s.states.append((section.name, fact))
        for ref in facts.draws:
            s.draws.append((section.name, ref))

    def define(self, definition: Definition) -> None:
        """Top-level functions and classes move to helpers.py (one meaning per name)."""
        s = self.s
        old = s.definitions.get(definition.name)
        if old is not None and old.text.strip() != definition.text.strip():
            self.found.append(codes.make("NB309", self.loc(definition.ref),
                                         detail=repr(definition.name),
                                         other=f"first at {self.loc(old.ref)}",
                                         related=self.loc(old.ref)))
        s.definitions.setdefault(definition.name, definition)
        s.functions[definition.name] = definition.free
        s.producer[definition.name] = Producer("helper", "helpers", definition.ref)

    def check_one_meaning(self, walked: list[SectionFacts]) -> None:
        """A helper's name bound to something else at the top level of a cell.

        helpers.py gives the name one meaning for the whole pipeline, so every
        use of the other value would become the helper (``xs.update()`` on a
        dict turned into a call of the lambda ``xs``)."""
        defined = {(d.ref.cell, d.ref.line, d.ref.col) for f in walked for d in f.defs}
        reported: set[str] = set()
        for facts in walked:
            for ref in sorted(facts.binds + facts.maybe, key=lambda r: (r.cell, r.line, r.col)):
                old = self.s.definitions.get(ref.name)
                if old is None or ref.name in reported \
                        or (ref.cell, ref.line, ref.col) in defined:
                    continue
                reported.add(ref.name)
                self.found.append(codes.make(
                    "NB309", self.loc(ref), detail=repr(ref.name),
                    other=f"here a variable, a {old.kind} at {self.loc(old.ref)}",
                    related=self.loc(old.ref)))

    # --- interpreter state -------------------------------------------------------------
    def prelude(self, section: Section, facts: SectionFacts) -> tuple[StateFact, ...]:
        """State set before this task, replicated at its start; seeds checked."""
        chosen: dict[str, StateFact] = {}
        for owner, fact in self.s.states:
            chosen[fact.text] = fact
            if fact.kind == "seed":
                self.check_seed(owner, fact, section, facts)
        for fact in chosen.values():
            if fact.kind == "setting":
                continue
        return tuple(chosen.values())

    def check_seed(self, owner: str, seed: StateFact, section: Section,
                   facts: SectionFacts) -> None:
        """A task drawing from a global generator another task drew from differs."""
        rng = seed.target.rpartition(".")[0] + "."
        mine = [r for r in facts.draws if r.name.startswith(rng)]
        if not mine:
            return
        first_draw = (mine[0].cell, mine[0].line, mine[0].col)
        if any(own.kind == "seed" and own.target == seed.target
               and (own.ref.cell, own.ref.line, own.ref.col) < first_draw
               for own in facts.states):
            return  # the task seeds the generator itself before drawing
        before = [(task, r) for task, r in self.s.draws if r.name.startswith(rng)
                  and (r.cell, r.line) > (seed.ref.cell, seed.ref.line)]
        if before:
            task, first = before[0]
            message = (f"task {section.name!r} draws from the global generator seeded at "
                       f"{self.loc(seed.ref)}, after task {task!r} drew from it "
                       f"({self.loc(first)}): its random numbers differ in the pipeline")
            self.found.append(codes.make("NB405", self.loc(mine[0]), detail=message))

    # --- outputs ---------------------------------------------------------------------
    def with_outputs(self) -> list[TaskFlow]:
        """Products: every name a later task reads, plus the notebook's final values."""
        needed: dict[str, list[str]] = {t.name: [] for t in self.tasks}
        for flow in [*self.tasks, *self.tests]:
            for name, task in flow.inputs:
                needed[task].append(name)
        final: dict[str, tuple[str, str | None]] = {}
        for flow in self.tasks:
            facts = flow.facts
            for ref in facts.binds + facts.maybe + facts.mutates:
                if flow.kinds.get(ref.name) == "import":
                    continue
                final[ref.name] = (flow.name, flow.kinds.get(ref.name))
            for name in facts.unbound:
                final.pop(name, None)
        for name, (task, kind) in final.items():
            if self.s.producer.get(name, Producer("", "", Ref("", 0, 0, 0))).section != task:
                continue
            if kind in NOT_PRODUCTS or name.startswith("_") or name in self.helper_names():
                continue
            flow = next(t for t in self.tasks if t.name == task)
            if name in flow.facts.loop_targets or self.maybe_only(flow, name):
                continue
            needed[task].append(name)
        result = []
        for flow in self.tasks:
            refs = sorted(flow.facts.binds + flow.facts.maybe + flow.facts.mutates,
                          key=lambda r: (r.cell, r.line, r.col))
            order = [r.name for r in refs]
            names = set(needed[flow.name])
            outputs = tuple(n for n in dict.fromkeys(order) if n in names)
            result.append(TaskFlow(flow.section, flow.facts, flow.inputs, flow.params,
                                   flow.helpers, flow.imports, flow.upstream, flow.prelude,
                                   outputs, flow.kinds))
        return result

    @staticmethod
    def maybe_only(flow: TaskFlow, name: str) -> bool:
        """Bound only on some paths, with no earlier value (or after a ``del`` of
        it): it may not exist."""
        facts = flow.facts
        if name in facts.maybe_unbound:
            return True
        definite = {r.name for r in facts.binds + facts.mutates} | facts.bound
        return name not in definite and name not in {n for n, _ in flow.inputs} \
            and name not in flow.params

    def helper_names(self) -> set[str]:
        return set(self.s.definitions)

    # --- helpers.py ------------------------------------------------------------------
    def helpers(self) -> tuple[tuple[Definition, ...], dict[str, tuple[str, ...]],
                               tuple[ImportFact, ...]]:
        """Hoisted definitions, the globals each must now take, and their imports."""
        s = self.s
        setup_names = {r.name for r in self.setup.binds + self.setup.maybe} if self.setup \
            else set()
        local = set(s.definitions) | setup_names
        globals_: dict[str, tuple[str, ...]] = {}
        imports: dict[str, ImportFact] = {}
        for name, definition in s.definitions.items():
            reads = self.transitive_reads(name, set())
            for global_name in sorted(definition.free.assigns):
                self.found.append(codes.make("NB306", self.loc(definition.ref),
                                             detail=repr(name), other=repr(global_name)))
            needs = []
            for other in sorted(reads):
                if other in s.imports:
                    imports[other] = s.imports[other]
                elif other not in local and other not in BUILTINS:
                    needs.append(other)
            early = self.definition_time_reads(definition) - local - set(s.imports) - BUILTINS
            if early and definition.kind != "class":
                start = Location(self.path, definition.ref.cell + 1, definition.span.start[0],
                                 definition.span.start[1] + 1)
                self.found.append(codes.make("NB314", start,
                                             detail=repr(name), other=", ".join(sorted(early))))
                continue
            if needs and definition.kind == "class":
                self.found.append(codes.make("NB313", self.loc(definition.ref),
                                             detail=repr(name), other=", ".join(needs)))
                continue
            if needs:
                globals_[name] = tuple(needs)
        if self.setup:
            for ref in self.setup.reads:
                if ref.name in s.imports:
                    imports[ref.name] = s.imports[ref.name]
        return tuple(s.definitions.values()), globals_, tuple(imports.values())

    @staticmethod
    def definition_time_reads(definition: Definition) -> set[str]:
        """Names a def's (or ``f = lambda``'s) decorators and default values read
        when it is defined."""
        import textwrap

        node = ast.parse(textwrap.dedent(definition.text)).body[-1]
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda):
            node = node.value
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return set()
        parts = [*getattr(node, "decorator_list", []), *node.args.defaults,
                 *(d for d in node.args.kw_defaults if d is not None)]
        return {n.id for part in parts for n in ast.walk(part)
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}

    def transitive_reads(self, name: str, seen: set[str]) -> set[str]:
        seen.add(name)
        free = self.s.functions.get(name, Free())
        reads = set(free.reads)
        for other in list(reads):
            if other in self.s.definitions and other not in seen:
                reads |= self.transitive_reads(other, seen)
        return reads - set(self.s.definitions)

    def requirements(self) -> tuple[str, ...]:
        found: list[str] = []
        for cell in self.nb.cells:
            found += cell.requirements
        return tuple(dict.fromkeys(found))


def _kinds_after(before: dict[str, str], facts: SectionFacts) -> dict[str, str]:
    """What each value is after a section.

    A name the section binds has the kind it gave it, or none when unknown
    (``df = df.to_dict()`` is no longer a DataFrame); a name it only mutates
    keeps its kind (``df.dropna(inplace=True)`` is still one).
    """
    rebound = {r.name for r in facts.binds + facts.maybe}
    kept = {name: kind for name, kind in before.items() if name not in rebound}
    return {**kept, **facts.kinds}


def _state_reads(prelude: tuple[StateFact, ...]) -> tuple[Ref, ...]:
    """The names replicated state statements read, placed where they were written."""
    refs = []
    for fact in prelude:
        try:
            tree = ast.parse(fact.text)
        except SyntaxError:
            continue
        refs += [Ref(node.id, fact.ref.cell, fact.ref.line, fact.ref.col) for node in ast.walk(tree)
                 if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)]
    return tuple(refs)


def _yaml_exact(value: object) -> bool:
    """True if YAML gives back exactly this value (no tuples, sets, bytes...)."""
    if isinstance(value, float):
        return math.isfinite(value)  # inf/nan have no literal in Python or YAML
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, list):
        return all(_yaml_exact(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _yaml_exact(v) for k, v in value.items())
    return False


def analyse(notebook: Notebook, layout: Layout) -> tuple[Analysis, list[Diagnostic]]:
    """The data flow of the notebook's tasks, with every finding as a Diagnostic."""
    return Analyser(notebook, layout).run()
