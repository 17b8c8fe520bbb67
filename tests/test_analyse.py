"""Tests of the analyse stage: tagged cells -> data flow between tasks.

Each test holds a small notebook in py:percent form (``# %% tags=[...]``
starts a cell) and checks one behaviour of SPEC §2 on the ``TaskFlow`` of each
task: ``inputs`` as (name, producing task), ``outputs``, ``params``,
``upstream``, ``imports``, ``prelude``, and the diagnostics with their cell
and line.  The notebook is written as ``.ipynb`` JSON so that the tests do not
pay for importing jupytext.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from nb2pipe import tags
from nb2pipe.analyse import Analysis, TaskFlow, analyse
from nb2pipe.model import Diagnostic
from nb2pipe.read import read_notebook

# --- helpers -------------------------------------------------------------------------------

_CELL_RE = re.compile(r"^# %%(.*)$", re.MULTILINE)


def percent_cells(text: str) -> list[dict]:
    """py:percent text -> nbformat 4 code cells (tags from ``tags=[...]``)."""
    heads = list(_CELL_RE.finditer(text))
    cells = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        found = re.search(r"tags=(\[.*?\])", head.group(1))
        cells.append({"cell_type": "code", "execution_count": None, "outputs": [],
                      "metadata": {"tags": json.loads(found.group(1))} if found else {},
                      "source": text[head.end() + 1:end].strip("\n")})
    return cells


@dataclass
class Flow:
    """What the analyser said about one notebook."""

    analysis: Analysis
    diagnostics: list[Diagnostic]

    def __getitem__(self, task: str) -> TaskFlow:
        return next(t for t in self.analysis.tasks if t.name == task)

    def codes(self) -> list[str]:
        return [d.code for d in self.diagnostics]

    def at(self, code: str) -> list[tuple[int, int | None]]:
        """(cell, line) of every diagnostic with ``code``."""
        return [(d.location.cell, d.location.line) for d in self.diagnostics if d.code == code]


def flow_of(tmp_path: Path, text: str) -> Flow:
    """read_notebook -> tags.layout -> analyse on a py:percent notebook."""
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                "cells": percent_cells(text)}), encoding="utf-8")
    notebook, found = read_notebook(path)
    assert notebook is not None, found
    layout, more = tags.layout(notebook)
    analysis, rest = analyse(notebook, layout)
    return Flow(analysis, [*found, *more, *rest])


def inputs(flow: TaskFlow) -> dict[str, str]:
    return dict(flow.inputs)


def imported(flow: TaskFlow) -> set[str]:
    return {fact.name for fact in flow.imports}


# --- a read binds to the last earlier definer or mutator -----------------------------------


def test_read_binds_to_the_last_earlier_task_that_defines_it(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
x = 1
y = 2
# %% tags=["task:second"]
x = 5
# %% tags=["task:third"]
total = x + y
""")
    assert f["third"].inputs == (("x", "second"), ("y", "first"))
    assert f["third"].upstream == ("second", "first")
    assert f["first"].outputs == ("y",)
    assert f["second"].outputs == ("x",)
    assert f.codes() == []


def test_tuple_and_star_unpacking_bind_every_name(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
a, (b, c) = 1, (2, 3)
head, *rest = [1, 2, 3]
# %% tags=["task:second"]
out = [a, b, c, head, rest]
""")
    assert inputs(f["second"]) == {"a": "first", "b": "first", "c": "first",
                                   "head": "first", "rest": "first"}
    assert f["first"].outputs == ("a", "b", "c", "head", "rest")


def test_augmented_assignment_reads_the_earlier_value_and_becomes_its_producer(
        tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
x = 1
# %% tags=["task:second"]
x += 1
# %% tags=["task:third"]
y = x * 2
""")
    assert f["second"].inputs == (("x", "first"),)
    assert f["second"].outputs == ("x",)
    assert f["third"].inputs == (("x", "second"),)


def test_annotated_assignment_binds_only_with_a_value(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
x: int = 1
y: int
# %% tags=["task:second"]
z = x + y
""")
    assert f["second"].inputs == (("x", "first"),)
    assert f.at("NB301") == [(2, 1)]  # `y: int` declares y but binds nothing


def test_walrus_binds_in_the_task_scope(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
data = [1, 2, 3]
if (n := len(data)) > 2:
    pass
squares = [last := v * v for v in data]
# %% tags=["task:second"]
r = n + last
""")
    assert inputs(f["second"]) == {"n": "first", "last": "first"}
    assert f.codes() == []


def test_loop_and_with_targets_are_read_after_the_block(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
for i, row in enumerate([[1], [2]]):
    last = row
with open("data.txt") as handle:
    text = "x"
# %% tags=["task:second"]
summary = (i, row, last, handle.name, text)
""")
    assert inputs(f["second"]) == {"i": "first", "row": "first", "last": "first",
                                   "handle": "first", "text": "first"}
    assert f.codes() == []


def test_comprehension_variables_do_not_leak(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
squares = [k * k for k in range(3)]
table = {key: val for key, val in [("a", 1)]}
# %% tags=["task:second"]
print(squares, k, key)
""")
    assert f["second"].inputs == (("squares", "first"),)
    assert f.at("NB301") == [(2, 1), (2, 1)]
    assert [d.message for d in f.diagnostics if d.code == "NB301"] == [
        "name 'k' is used but never defined", "name 'key' is used but never defined"]


def test_names_inside_f_strings_are_reads(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
name = "churn"
width = 10
# %% tags=["task:second"]
title = f"{name!r:>{width}} done"
""")
    assert inputs(f["second"]) == {"name": "first", "width": "first"}


def test_lambda_free_names_are_read_where_it_is_called(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:define"]
scale = lambda v: v * factor
# %% tags=["task:configure"]
factor = 3
# %% tags=["task:use"]
result = scale(2)
""")
    assert f["define"].inputs == ()
    assert f.codes() == []  # factor is not needed where the lambda is written
    assert f["use"].inputs == (("factor", "configure"),)
    assert f["use"].helpers == ("scale",)
    assert f.analysis.helper_globals == {"scale": ("factor",)}


def test_closure_reads_globals_when_the_inner_function_runs(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:define"]
def make_scaler():
    k = 2
    def inner(v):
        return v * k * factor
    return inner
# %% tags=["task:configure"]
factor = 3
# %% tags=["task:use"]
result = make_scaler()(5)
""")
    assert f["use"].inputs == (("factor", "configure"),)
    assert f.analysis.helper_globals == {"make_scaler": ("factor",)}
    assert f.codes() == []


def test_global_statement_in_a_function_makes_the_caller_a_producer(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
counter = 0
def bump():
    global counter
    counter += 1
# %% tags=["task:second"]
bump()
# %% tags=["task:third"]
seen = counter
""")
    assert f["second"].inputs == (("counter", "first"),)
    assert f["second"].outputs == ("counter",)
    assert f["third"].inputs == (("counter", "second"),)
    assert f.at("NB306") == [(1, 2)]


def test_nonlocal_names_belong_to_the_enclosing_function(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
n = 100
start = 1
# %% tags=["task:second"]
def make_counter():
    n = start
    def inc():
        nonlocal n
        n += 1
        return n
    return inc
count = make_counter()()
""")
    assert f["second"].inputs == (("start", "first"),)  # not the global n
    assert f.analysis.helper_globals == {"make_counter": ("start",)}
    assert "NB306" not in f.codes()


def test_del_unbinds_a_name_and_a_later_read_is_nb301(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
x = 1
y = x
del x
# %% tags=["task:second"]
print(y)
print(x)
""")
    assert f["second"].inputs == (("y", "first"),)
    assert f["first"].outputs == ("y",)
    assert f.at("NB301") == [(2, 2)]
    assert "deleted at nb.ipynb:cell 1:3" in next(
        d.message for d in f.diagnostics if d.code == "NB301")


def test_try_except_names(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
try:
    value = int("3")
except ValueError as err:
    value = 0
    reason = str(err)
# %% tags=["task:second"]
print(value, reason)
print(err)
""")
    assert inputs(f["second"]) == {"value": "first", "reason": "first"}
    # Python deletes the `as` name when the handler ends: it is no product.
    assert f["first"].outputs == ("value", "reason")
    assert f.at("NB301") == [(2, 2)]


def test_match_captures_bind_names(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
point = (1, 2)
origin = 0
# %% tags=["task:second"]
match point:
    case (px, py) if px > origin:
        total = px + py
    case {"k": kv, **others}:
        total = kv
    case _:
        total = 0
# %% tags=["task:third"]
print(total, px)
""")
    assert inputs(f["second"]) == {"point": "first", "origin": "first"}
    assert inputs(f["third"]) == {"total": "second", "px": "second"}
    assert f.codes() == []


def test_class_body_reads_globals_when_the_class_is_created(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
factor = 2
# %% tags=["task:second"]
class Scaler:
    k = factor
    def go(self, v):
        return v * self.k
s = Scaler().go(3)
""")
    assert f["second"].inputs == (("factor", "first"),)
    # the class moves to helpers.py, where the task's `factor` does not exist
    assert f.at("NB313") == [(2, 1)]


DECORATED = """
# %% tags=["task:first"]
import functools
size = 8
# %% tags=["task:second"]
@functools.lru_cache(maxsize=size)
def square(v):
    return v * v
r = square(3)
"""


def test_decorator_is_evaluated_where_the_function_is_defined(tmp_path: Path) -> None:
    f = flow_of(tmp_path, DECORATED)
    assert f["second"].inputs == (("size", "first"),)
    assert imported(f["second"]) == {"functools"}


def test_decorator_reading_task_state_in_a_hoisted_helper_is_reported(tmp_path: Path) -> None:
    """helpers.py runs the decorator at import time, where `size` does not exist."""
    f = flow_of(tmp_path, DECORATED)
    assert any(d.code == "NB314" and d.location.cell == 2 and d.location.line == 1
               for d in f.diagnostics)


# --- in-place mutation makes a producer ----------------------------------------------------

_MUTATIONS = {
    "dropna_inplace": "df.dropna(inplace=True)",
    "setitem": 'df["c"] = 1',
    "setattr": "df.attrs_note = 'x'",
    "append": "log.append(1)",
    "subscript_augassign": "arr[0] += 1",
    "helper_mutates_parameter": "def add_col(frame):\n    frame['z'] = 0\nadd_col(df)",
    "random_shuffle": "import random\nrandom.shuffle(log)",
}
_MUTATED = {"dropna_inplace": {"df"}, "setitem": {"df"}, "setattr": {"df"},
            "append": {"log"}, "subscript_augassign": {"arr"},
            "helper_mutates_parameter": {"df"}, "random_shuffle": {"log"}}


@pytest.mark.parametrize("case", sorted(_MUTATIONS))
def test_in_place_mutation_makes_the_task_a_producer(tmp_path: Path, case: str) -> None:
    f = flow_of(tmp_path, f"""
# %% tags=["task:load"]
import pandas as pd
df = pd.DataFrame({{"a": [1.0, None]}})
log = [3, 1, 2]
arr = [0, 0]
# %% tags=["task:change"]
{_MUTATIONS[case]}
# %% tags=["task:use"]
result = (df, log, arr)
""")
    mutated = _MUTATED[case]
    assert set(inputs(f["change"])) >= mutated
    assert set(f["change"].outputs) == mutated
    assert inputs(f["use"]) == {name: "change" if name in mutated else "load"
                                for name in ("df", "log", "arr")}
    assert "change" in f["use"].upstream


def test_loop_over_a_list_of_frames_mutates_each_of_them(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:load"]
import pandas as pd
train = pd.DataFrame({"a": [1]})
test = pd.DataFrame({"a": [2]})
# %% tags=["task:mark"]
for d in [train, test]:
    d["x"] = 1
# %% tags=["task:use"]
both = (train, test)
""")
    assert set(f["mark"].outputs) == {"train", "test"}
    assert inputs(f["use"]) == {"train": "mark", "test": "mark"}
    assert "d" not in f["mark"].outputs  # a loop variable is never a product


def test_pure_method_calls_do_not_make_a_producer(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:load"]
import pandas as pd
df = pd.DataFrame({"a": [1]})
# %% tags=["task:look"]
df.head()
summary = df.describe()
# %% tags=["task:use"]
n = len(df)
""")
    assert f["look"].outputs == ("summary",)
    assert f["use"].inputs == (("df", "load"),)
    assert f["use"].upstream == ("load",)


# --- helpers that read globals -------------------------------------------------------------


def test_setup_helper_reading_a_global_takes_it_in_every_calling_task(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["setup"]
import math
def scaled(v):
    return math.sqrt(v) * factor
# %% tags=["task:configure"]
factor = 3
# %% tags=["task:direct"]
r = scaled(4)
# %% tags=["task:in_comprehension"]
q = [scaled(i) for i in range(2)]
# %% tags=["task:unrelated"]
z = 1
""")
    assert f.analysis.helper_globals == {"scaled": ("factor",)}
    for task in ("direct", "in_comprehension"):
        assert f[task].inputs == (("factor", "configure"),)
        assert f[task].helpers == ("scaled",)
    assert f["unrelated"].inputs == ()
    assert {fact.name for fact in f.analysis.helper_imports} == {"math"}
    assert f.codes() == []


def test_top_level_def_in_a_task_moves_to_helpers_and_its_globals_follow_calls(
        tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:configure"]
threshold = 0.5
def above(values):
    return [v for v in values if v > threshold]
# %% tags=["task:use"]
kept = above([0.1, 0.9])
""")
    assert [d.name for d in f.analysis.helpers] == ["above"]
    assert f.analysis.helper_globals == {"above": ("threshold",)}
    assert f["use"].inputs == (("threshold", "configure"),)
    assert f["use"].helpers == ("above",)
    assert "above" not in f["configure"].outputs


def test_functions_that_reach_each_other_through_mutation_do_not_recurse(
        tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
def ping():
    pong.calls = 1
def pong():
    ping.calls = 1
ping()
# %% tags=["task:second"]
pong()
""")
    assert set(f["second"].helpers) >= {"pong"}


# --- names that do not exist in the pipeline -----------------------------------------------


def test_star_import_is_nb304_and_hides_no_crash_behind_it(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
x = 2
# %% tags=["task:second"]
from math import *
r = sqrt(x)
""")
    assert f.at("NB304") == [(2, 1)]
    assert f.codes() == ["NB304"]  # `sqrt` may come from it: no NB301 on top
    assert f["second"].inputs == (("x", "first"),)


def test_name_defined_only_in_a_skip_cell_is_nb302_naming_both_cells(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
x = 1
# %% tags=["skip"]
tmp = x + 1
# %% tags=["task:second"]
y = 0
print(tmp)
""")
    [found] = [d for d in f.diagnostics if d.code == "NB302"]
    assert (found.location.cell, found.location.line) == (3, 2)
    assert (found.related.cell, found.related.line) == (2, 1)
    assert "nb.ipynb:cell 2:1" in found.message
    assert f["second"].inputs == ()


def test_name_defined_only_later_is_nb303(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
print(later)
# %% tags=["task:second"]
later = 5
""")
    [found] = [d for d in f.diagnostics if d.code == "NB303"]
    assert (found.location.cell, found.location.line, found.location.col) == (1, 1, 7)
    assert (found.related.cell, found.related.line) == (2, 1)
    assert "NB301" not in f.codes()


def test_name_never_defined_is_nb301(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
x = 1
y = x + nothing
""")
    assert f.at("NB301") == [(1, 2)]
    assert f.diagnostics[0].location.col == 9


def test_star_import_and_exec_in_skip_cells_are_not_reported(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
x = 1
# %% tags=["skip"]
from pylab import *
exec("y = 2")
# %% tags=["task:second"]
z = x
""")
    assert f.codes() == []


# --- interpreter state -----------------------------------------------------------------------

_STATE = """import numpy as np
import random
import pandas as pd
import matplotlib.pyplot as plt
import warnings
import os
import sys
np.random.seed(0)
random.seed(1)
pd.set_option("display.max_rows", 5)
plt.style.use("ggplot")
plt.rcParams["figure.dpi"] = 100
warnings.filterwarnings("ignore")
os.environ["MODE"] = "batch"
sys.path.append("lib")"""


def test_interpreter_state_set_earlier_is_replicated_into_every_later_task(
        tmp_path: Path) -> None:
    f = flow_of(tmp_path, f"""
# %% tags=["task:configure"]
{_STATE}
x = 1
# %% tags=["task:reader"]
y = x + 1
# %% tags=["task:other"]
z = 2
""")
    statements = tuple(_STATE.splitlines()[7:])
    assert tuple(s.text for s in f["configure"].prelude) == ()
    for task in ("reader", "other"):
        assert tuple(s.text for s in f[task].prelude) == statements
        # the prelude's modules are imports of the task's module
        assert imported(f[task]) == {"np", "random", "pd", "plt", "warnings", "os", "sys"}
    assert f["other"].inputs == ()


def test_replicated_state_takes_the_names_it_reads(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["parameters"]
seed = 42
# %% tags=["task:configure"]
import numpy as np
offset = 1
np.random.seed(seed + offset)
# %% tags=["task:later"]
z = 2
""")
    assert [s.text for s in f["later"].prelude] == ["np.random.seed(seed + offset)"]
    assert f["later"].params == ("seed",)
    assert f["later"].inputs == (("offset", "configure"),)
    assert "offset" in f["configure"].outputs


def test_seed_then_draws_in_two_tasks_is_nb405(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
import numpy as np
np.random.seed(0)
noise = np.random.rand(3)
# %% tags=["task:second"]
more = np.random.rand(3)
""")
    assert f.at("NB405") == [(2, 1)]
    assert [s.text for s in f["second"].prelude] == ["np.random.seed(0)"]


def test_seed_without_draws_before_a_later_task_is_not_nb405(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
import numpy as np
np.random.seed(0)
# %% tags=["task:second"]
draws = np.random.rand(3)
""")
    assert "NB405" not in f.codes()
    assert [s.text for s in f["second"].prelude] == ["np.random.seed(0)"]


def test_exec_and_globals_are_nb307(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
exec("q = 1")
names = globals()
""")
    assert f.at("NB307") == [(1, 1), (1, 2)]


# --- conditional bindings and parameters -----------------------------------------------------


def test_conditional_binding_takes_the_earlier_value_as_an_input(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
x = 0
flag = True
# %% tags=["task:second"]
if flag:
    x = 1
# %% tags=["task:third"]
y = x
""")
    assert inputs(f["second"]) == {"flag": "first", "x": "first"}
    assert f["second"].outputs == ("x",)
    assert f["third"].inputs == (("x", "second"),)


def test_conditional_rebinding_of_a_parameter_takes_the_parameter(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["parameters"]
n = 3
# %% tags=["task:first"]
if len("ab") > 5:
    n = 5
# %% tags=["task:second"]
m = n
""")
    assert f["first"].params == ("n",)
    assert f["second"].inputs == (("n", "first"),)


def test_parameters_cell_literals_become_params_and_a_non_literal_is_nb211(
        tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["parameters"]
n = 3
path = "data.csv"
ratio = 0.5
cols = ["a", "b"]
bad = len(cols)
# %% tags=["task:first"]
r = n * ratio
print(path)
""")
    assert f.analysis.parameters == {"n": 3, "path": "data.csv", "ratio": 0.5,
                                     "cols": ["a", "b"]}
    assert f["first"].params == ("n", "ratio", "path")
    assert f["first"].inputs == ()
    assert f.at("NB211") == [(1, 5)]


def test_test_cells_bind_their_inputs_to_the_right_tasks(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
x = 1
w = 0
# %% tags=["test"]
assert x == 1
# %% tags=["task:second"]
x = 2
y = 3
# %% tags=["test"]
assert x == 2 and y == 3 and w == 0
""")
    first, second = f.analysis.tests
    assert (first.target, first.inputs) == ("first", (("x", "first"),))
    assert (second.target, second.inputs) == ("second", (("x", "second"), ("y", "second"),
                                                         ("w", "first")))
    assert f["first"].outputs == ("x", "w")  # what the tests read are products


# --- products ------------------------------------------------------------------------------


def test_imports_are_hoisted_and_never_products(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
import pandas as pd
import os
df = pd.DataFrame({"a": [1]})
# %% tags=["task:second"]
where = os.path.join("a", "b")
shape = df.shape
""")
    assert imported(f["first"]) == {"pd"}  # os is not used by the first task
    assert imported(f["second"]) == {"os"}
    assert f["first"].outputs == ("df",)
    assert f["second"].inputs == (("df", "first"),)


def test_functions_classes_figures_and_loop_variables_are_never_products(
        tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
*panels, = plt.subplots(2)
chart = plt.figure()
for k in range(3):
    pass
with open("nb.ipynb") as handle:
    text = handle.read()
def f():
    return 1
class K:
    pass
g = lambda: 2
total = 5
""")
    assert f["first"].outputs == ("text", "total")


def test_a_figure_mutated_in_a_later_task_is_not_a_product(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:draw"]
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
# %% tags=["task:label"]
ax.set_title("t")
fig.savefig("plot.png")
""")
    assert inputs(f["label"]) == {"ax": "draw", "fig": "draw"}
    assert set(f["draw"].outputs) == {"fig", "ax"}  # the later task reads them
    assert f["label"].outputs == ()


def test_final_value_of_a_data_variable_is_an_output_even_if_unread(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
import pandas as pd
df = pd.DataFrame({"a": [1]})
model_score = 0.9
# %% tags=["task:second"]
df = df.dropna()
# %% tags=["task:third"]
df.dropna(inplace=True)
report = "done"
""")
    assert f["first"].outputs == ("df", "model_score")
    assert f["second"].outputs == ("df",)
    assert set(f["third"].outputs) == {"df", "report"}
    assert f["third"].kinds["df"] == "dataframe"


def test_a_rebound_value_does_not_keep_its_old_kind(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:first"]
import pandas as pd
df = pd.DataFrame({"a": [1]})
# %% tags=["task:second"]
df = df.to_dict()
""")
    assert f["first"].kinds["df"] == "dataframe"
    assert "df" not in f["second"].kinds  # a dict now: not saved as parquet


# --- aliases across tasks (NB310) ------------------------------------------------------------


def test_mutating_an_alias_made_in_an_earlier_task_is_an_error(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:a"]
a = [1, 2, 3]
b = a
# %% tags=["task:b"]
b.append(4)
# %% tags=["task:c"]
total = sum(a)
""")
    assert f.at("NB310") == [(2, 1)]
    assert any(d.code == "NB310" and d.severity.name == "ERROR" for d in f.diagnostics)


def test_loop_over_a_container_from_an_earlier_task_is_an_error(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:load"]
train = {"x": 1}
test = {"x": 2}
data = [train, test]
# %% tags=["task:fill"]
for d in data:
    d["y"] = 0
# %% tags=["task:use"]
n = len(train)
""")
    assert [c for c, _ in f.at("NB310")] == [2]


def test_container_rebuilt_in_the_mutating_task_is_fine(tmp_path: Path) -> None:
    """Kale's titanic notebook rebuilds `data = [train_df, test_df]` in each cell."""
    f = flow_of(tmp_path, """
# %% tags=["task:load"]
train = {"x": 1}
test = {"x": 2}
data = [train, test]
# %% tags=["task:fill"]
data = [train, test]
for d in data:
    d["y"] = 0
# %% tags=["task:use"]
n = len(train)
""")
    assert f.at("NB310") == []
    assert {"train", "test"} <= set(f["fill"].outputs)
    assert inputs(f["use"])["train"] == "fill"


def test_object_built_from_a_mutated_one_is_an_error_one_way(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:train"]
class Box:
    def __init__(self, inner):
        self.inner = inner
inner = []
box = Box(inner)
size = 3
other = Box(size)
# %% tags=["task:later"]
inner.append(1)
other.touch = True
peek = box.inner
""")
    assert [c for c, _ in f.at("NB310")] == [2]
    assert all("inner" in d.message for d in f.diagnostics if d.code == "NB310")


def test_no_seed_warning_when_the_task_reseeds_before_drawing(tmp_path: Path) -> None:
    f = flow_of(tmp_path, """
# %% tags=["task:a"]
import numpy as np
np.random.seed(0)
x = np.random.rand(2)
# %% tags=["task:b"]
np.random.seed(1)
y = np.random.rand(2)
""")
    assert "NB405" not in f.codes()
