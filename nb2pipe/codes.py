"""The table of diagnostic codes: one row per finding nb2pipe can report.

Each row carries its severity, a message template, the fix to suggest and a
longer explanation.  ``nb2pipe explain CODE`` and ``docs/diagnostics.md`` are
generated from this table, so a code is documented exactly once.

Ranges: NB1xx reading, NB2xx tags, NB3xx data flow, NB4xx IPython and
interpreter state, NB5xx writing the project, NB6xx recording (``--record``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Diagnostic, Location, Severity

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO


@dataclass(frozen=True)
class Code:
    """One row of the table."""

    code: str
    severity: Severity
    title: str
    template: str
    fix: str
    explanation: str


_ROWS = [
    # --- reading -------------------------------------------------------------
    Code("NB101", E, "malformed-json", "not valid JSON: {detail}",
         "re-save the notebook from Jupyter, or restore it from version control",
         "The .ipynb file could not be parsed as JSON (truncated or hand-edited)."),
    Code("NB102", E, "not-a-notebook", "not a Jupyter notebook: {detail}",
         "pass an .ipynb file or a Jupytext text notebook (.py, .md)",
         "The file parsed, but lacks the structure of an nbformat 4 notebook."),
    Code("NB103", E, "unsupported-nbformat", "unsupported notebook format {detail}",
         "upgrade it with `jupyter nbconvert --to notebook --nbformat 4 FILE`",
         "nb2pipe reads nbformat 4.x, the format every Jupyter since 2015 writes."),
    Code("NB104", E, "not-python", "the notebook's kernel language is {detail}, not Python",
         "nb2pipe converts Python notebooks only",
         "Cells of other languages cannot be analysed as Python."),
    Code("NB105", E, "empty-notebook", "the notebook has no code to convert",
         "add code cells (or check that you passed the right file)",
         "A notebook without code cells would produce an empty pipeline."),
    Code("NB106", E, "syntax-error", "syntax error: {detail}",
         "fix the cell so that it runs, or tag it `skip`",
         "Every cell that goes into the pipeline must be valid Python once IPython "
         "syntax (magics, `!` lines) is masked."),
    Code("NB107", E, "unreadable-file", "cannot read the file: {detail}",
         "pass a readable notebook file",
         "The path is missing, is a directory, is binary or is not UTF-8 text."),
    # --- tags ------------------------------------------------------------------
    Code("NB201", W, "unknown-tag", "unknown tag {detail}",
         "use one of: {valid}",
         "A tag that looks like an nb2pipe tag (or a Kale/papermill alias) but is "
         "not one. Tags that do not look like ours (e.g. `hide-input`) are ignored."),
    Code("NB202", E, "invalid-task-name", "invalid task name {detail}",
         "task names are lower-case Python identifiers that are not keywords and do not "
         "start with `test` or end with `_test` (pytest collects those), e.g. `task:load_data`",
         "Task names become module, function and file names, so they must be "
         "safe identifiers."),
    Code("NB203", E, "duplicate-task", "task {detail} is defined twice (first in {other})",
         "rename one of the tasks",
         "Each task name must be unique in a notebook."),
    Code("NB204", E, "unknown-task-reference", "{detail}",
         "name a task defined in this notebook",
         "`after:NAME` and `test:NAME` must name a task of the notebook."),
    Code("NB205", E, "dependency-cycle", "dependency cycle: {detail}",
         "remove the `after:` tag that points forward, or move the cells",
         "An `after:` edge must point to a task that comes before in the notebook; "
         "otherwise it contradicts the data flow."),
    Code("NB206", E, "test-without-task", "a `test` cell comes before any task",
         "move the test after the task it checks, or tag it `test:NAME`",
         "A bare `test` cell tests the task it follows."),
    Code("NB207", E, "conflicting-tags", "conflicting tags on one cell: {detail}",
         "keep one of them",
         "A cell can start one section only (task, setup, parameters, skip or test)."),
    Code("NB208", W, "untagged-code-before-task",
         "code before the first task is joined to task {detail}",
         "tag the cell `setup`, `parameters`, `skip` or `task:NAME`",
         "Untagged code cells join the task above them; these have none."),
    Code("NB209", I, "inferred-tasks", "no nb2pipe tags: tasks inferred from headings ({detail})",
         "run `nb2pipe tag NOTEBOOK` to write them into the notebook and refine them",
         "An untagged notebook is split at its Markdown H1/H2 headings."),
    Code("NB210", E, "bad-tags-metadata", "cell tags are not a list of strings: {detail}",
         "edit the cell metadata so that `tags` is a list of strings",
         "Jupyter stores tags as `metadata.tags = [\"task:load\", ...]`."),
    Code("NB211", E, "bad-parameters", "parameters cell: {detail}",
         "keep only assignments of literal values (numbers, strings, lists, dicts) in the `parameters` cell",
         "Parameters become pipeline parameters in env.yaml, so they must be literals."),
    Code("NB212", E, "no-tasks", "the notebook defines no task",
         "tag a cell `task:NAME` (or remove all tags to split at headings)",
         "There is nothing to turn into a pipeline."),
    # --- data flow -------------------------------------------------------------
    Code("NB301", E, "undefined-name", "name {detail} is used but never defined",
         "define it in an earlier task, `setup` or `parameters` cell",
         "The task reads a name that no earlier cell of the pipeline defines."),
    Code("NB302", E, "defined-in-skip", "name {detail} is defined only in a `skip` cell ({other})",
         "move the definition out of the skipped cell, or skip this use too",
         "Skipped cells never reach the pipeline, so what they define does not exist there."),
    Code("NB303", E, "used-before-defined", "name {detail} is used before it is defined ({other})",
         "move the definition above this use",
         "The name is defined only later in the notebook; running top to bottom would fail."),
    Code("NB304", E, "star-import", "star import `{detail}` hides which names a task uses",
         "import the names explicitly (`from {module} import a, b`)",
         "With `import *` nb2pipe cannot tell which names come from the module, "
         "so it cannot wire the data flow safely."),
    Code("NB305", I, "unused-output", "{detail} is defined here but no later task reads it",
         "",
         "It is not a product (unless it is the notebook's final value of it)."),
    Code("NB306", E, "helper-assigns-global", "function {detail} assigns the global {other}",
         "return the value from the function instead of assigning a global",
         "A function that rebinds a global changes state no task can see."),
    Code("NB307", W, "dynamic-namespace", "{detail} reads or writes names nb2pipe cannot see",
         "use plain variables instead of exec/eval/globals()",
         "Names created or read dynamically are not in the static data flow; verify the pipeline."),
    Code("NB308", E, "task-name-shadows", "task {detail} has the name of something it uses",
         "rename the task (e.g. `task:{detail}_step`)",
         "The task's function would shadow the name inside its own module."),
    Code("NB309", E, "conflicting-definitions", "function or class {detail} is defined twice with different code ({other})",
         "give the definitions different names",
         "Functions and classes move to helpers.py, where a name can mean one thing only."),
    Code("NB310", E, "cross-task-alias", "{detail}",
         "make an explicit copy (`b = a.copy()`) or keep the mutation in the task that made the alias",
         "Two names refer to one object in the notebook; in the pipeline each is saved and "
         "loaded separately, so mutating one no longer changes the other."),
    Code("NB311", E, "global-statement", "`{detail}` at the top level of a task cannot be converted",
         "remove the statement (it has no effect at the top level of a notebook)",
         "A `global`/`nonlocal` statement at the top level of a cell is meaningless in a function."),
    Code("NB312", E, "reserved-name", "{detail} is reserved in the generated pipeline",
         "rename the variable",
         "Ploomber passes `product` and `upstream` to task functions, nb2pipe's glue takes "
         "`workdir`, and Ploomber expands `{{here}}`, `{{cwd}}`, `{{root}}`... in env.yaml."),
    Code("NB313", E, "class-reads-task-state", "class {detail} reads {other}, which a task defines",
         "pass the value to the class (e.g. as an __init__ argument)",
         "Classes move to helpers.py, where task variables do not exist."),
    Code("NB314", E, "definition-reads-task-state",
         "function {detail} reads {other} in its decorator or default values, which a task defines",
         "compute the value inside the function, or pass it as an argument",
         "Functions move to helpers.py, where decorators and defaults run at import time, "
         "before any task has run."),
    # --- IPython and interpreter state ------------------------------------------
    Code("NB401", I, "magic-dropped", "`{detail}` dropped (display only)", "",
         "Magics that only affect display or timing have no place in a pipeline."),
    Code("NB402", E, "unsupported-magic", "`{detail}` cannot be converted safely",
         "{hint}",
         "This IPython syntax changes state or runs a shell; dropping it could change results."),
    Code("NB403", I, "pip-install", "`{detail}` becomes a requirement", "",
         "`!pip install` / `%pip install` lines go to requirements.txt."),
    Code("NB404", I, "state-replicated", "{detail} is replicated into the tasks after it", "",
         "Settings of the interpreter (options, styles, warning filters, paths) are "
         "repeated at the start of every later task that could depend on them."),
    Code("NB405", W, "global-random-state", "{detail}",
         "draw from an explicit generator (`rng = np.random.default_rng(SEED)`) or seed in the task that draws",
         "The pipeline runs each task in a fresh state: a task drawing from the global random "
         "generator after an earlier task already drew from it sees different numbers."),
    Code("NB406", W, "hidden-state", "cells were executed out of order ({detail})",
         "restart the kernel and run all cells, then check the results",
         "Non-monotonic execution counts suggest the saved outputs came from another order."),
    Code("NB407", I, "display-dropped", "`{detail}` dropped (display only)", "",
         "display() calls only show values in the notebook."),
    Code("NB408", W, "file-dependency", "{detail}",
         "add `after:{other}` to the reading task so that it runs after the writer",
         "A task reads a file that an earlier task writes; data flow does not show this."),
    # --- writing -------------------------------------------------------------
    Code("NB501", E, "foreign-files", "the output folder {detail} holds files nb2pipe did not write",
         "choose an empty or new folder, or one nb2pipe wrote before",
         "nb2pipe never writes over or next to files it does not own unless asked."),
    Code("NB502", E, "edited-files", "generated files were edited since the last conversion: {detail}",
         "keep your edits (convert elsewhere) or pass --force to overwrite them",
         "Re-running convert never overwrites your edits silently."),
    Code("NB503", E, "locked", "another nb2pipe is writing {detail}",
         "wait for it to finish; remove {other} if no nb2pipe is running",
         "Two conversions into one folder at once would mix their files."),
    Code("NB505", I, "generated-lint", "generated {detail}",
         "usually inherited from the notebook's own code: fix it there",
         "nb2pipe runs pyflakes over every file it generates; what remains is reported."),
    Code("NB504", E, "name-clash", "{detail}",
         "rename one of the notebooks",
         "Two notebooks would produce the same package name."),
    Code("NB506", E, "path-outside-output", "generated files would land outside the output folder: {detail}",
         "remove the symbolic link that points out of the output folder, or convert elsewhere",
         "nb2pipe writes only inside the output folder; a symbolic link in it that "
         "leads elsewhere would make it write over files it does not own."),
    # --- recording (convert --record) ---------------------------------------
    Code("NB601", E, "record-failed", "the notebook failed while recording: {detail}",
         "make the notebook run top to bottom in a fresh kernel (Kernel > Restart & Run All), "
         "then convert again",
         "--record runs the notebook once in a fresh kernel; a cell raised. The kernel's "
         "traceback follows the message. Nothing was written."),
    Code("NB602", E, "no-kernel", "cannot start a kernel to record: {detail}",
         "install ipykernel where the notebook's libraries are: pip install ipykernel "
         "(or pass --python PATH)",
         "Recording needs a Jupyter kernel for the notebook's language, in the environment "
         "that has the notebook's libraries."),
    Code("NB603", E, "record-timeout", "{detail}",
         "raise --timeout (seconds per cell), or make the cell faster for recording",
         "A cell ran longer than --timeout; the kernel was stopped. Nothing was written."),
    Code("NB604", W, "unstable-value",
         "`{detail}` differs between two runs of the notebook ({other})",
         "seed the randomness it depends on (np.random.seed(0), random_state=0) or drop "
         "the clock from it; until then its test checks only type, columns and dtypes",
         "Recording runs the notebook twice (--repeat). A value that differs between two "
         "identical runs cannot be compared exactly, so its characterization test compares "
         "only its type, columns, dtypes and dimensions after the first: never a flaky test."),
    Code("NB605", E, "unserializable-value", "`{detail}` cannot be saved ({other})",
         "recreate it in the task that uses it, merge the two tasks, or make it picklable",
         "A value that crosses a task boundary must be saved by one task and loaded by "
         "the next. The recorded run showed that this one cannot be pickled (an open "
         "file, a connection, a generator...): the pipeline would fail at run time."),
    Code("NB606", E, "run-disagrees-with-analysis", "{detail}",
         "write the assignment as plain Python (`df = ...`) instead of exec/globals()",
         "The recorded run saw a task rebind a name that the static analysis did not "
         "see it bind (exec, globals()[...], setattr on a module...), and a later task "
         "reads that name: the pipeline would give it an older value."),
    Code("NB607", I, "no-recorded-test", "task {detail} gets no recorded test: {other}",
         "raise --fixture-cap, or rely on `nb2pipe verify` for this task",
         "A characterization test needs every input of the task stored in full and at "
         "least one output it can compare."),
    Code("NB608", W, "value-not-loadable", "`{detail}` was recorded but cannot be loaded here ({other})",
         "install nb2pipe in the environment that has the notebook's libraries",
         "nb2pipe reads the recorded values in its own process to store them as fixtures."),
    Code("NB609", W, "unseeded-draw",
         "task {detail} draws from the unseeded global generator `{other}`",
         "seed it (np.random.seed(0), random.seed(0)) or pass random_state=0; until then "
         "its test checks only type, columns and dtypes",
         "The recorded runs saw the task change the state of a global random generator "
         "that was in a different state in each run. Its outputs agreed this time (k-means "
         "from a random start can find the same clusters twice), but need not the next "
         "time: they are compared by form only, never a flaky test."),
]

CODES: dict[str, Code] = {row.code: row for row in _ROWS}


def make(code: str, location: Location, *, detail: str = "", other: str = "",
         related: Location | None = None, snippet: str = "", **extra: str) -> Diagnostic:
    """Build the Diagnostic for ``code``; the table supplies severity and fix."""
    row = CODES[code]
    values = {"detail": detail, "other": other, **extra}
    return Diagnostic(
        code=code,
        message=row.template.format(**values),
        location=location,
        severity=row.severity,
        fix=row.fix.format(**{**values, "hint": extra.get("hint", "")}),
        related=related,
        snippet=snippet,
    )


def explain(code: str) -> str | None:
    """Text for ``nb2pipe explain CODE``; None for an unknown code."""
    row = CODES.get(code.upper())
    if row is None:
        return None
    lines = [f"{row.code} {row.title} ({row.severity.name.lower()})", "", row.explanation]
    if row.fix:
        lines += ["", "Fix: " + row.fix.replace("{", "").replace("}", "")]
    return "\n".join(lines)
