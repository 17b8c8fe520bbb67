"""Tests of the tags stage: cell tags (or Markdown headings) -> sections.

Each test holds a small notebook in py:percent form and checks SPEC §1 on
``tags.layout``: which cells each section gets, and every diagnostic with its
code and 1-based cell.  ``# %% tags=[...]`` starts a code cell and
``# %% [markdown]`` a Markdown cell (its lines lose their ``# `` prefix).  The
notebook is written as ``.ipynb`` JSON so that jupytext is never imported.
"""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import FIXTURES
from nb2pipe import tags
from nb2pipe.model import Cell, Diagnostic, Layout, Location, Section, Severity, TaskKind
from nb2pipe.read import read_notebook

# --- helpers -------------------------------------------------------------------------------

_CELL_RE = re.compile(r"^# %%(.*)$", re.MULTILINE)
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


def percent_cells(text: str) -> list[dict]:
    """py:percent text -> nbformat 4 cells (tags from ``tags=[...]``)."""
    heads = list(_CELL_RE.finditer(text))
    cells = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        body = text[head.end() + 1:end].strip("\n")
        found = re.search(r"tags=(\[.*?\])", head.group(1))
        metadata = {"tags": json.loads(found.group(1))} if found else {}
        if "[markdown]" in head.group(1):
            lines = [line[2:] if line.startswith("# ") else line.lstrip("#")
                     for line in body.splitlines()]
            cells.append({"cell_type": "markdown", "metadata": metadata,
                          "source": "\n".join(lines)})
        else:
            cells.append({"cell_type": "code", "execution_count": None, "outputs": [],
                          "metadata": metadata, "source": body})
    return cells


def write_notebook(path: Path, text: str) -> Path:
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 4, "metadata": {},
                                "cells": percent_cells(text)}), encoding="utf-8")
    return path


@dataclass
class Laid:
    """What the tags stage said about one notebook (cells 1-based)."""

    layout: Layout
    diagnostics: list[Diagnostic]

    def codes(self) -> list[str]:
        return [d.code for d in self.diagnostics]

    def at(self, code: str) -> list[int | None]:
        """The cell of every diagnostic with ``code``."""
        return [d.location.cell for d in self.diagnostics if d.code == code]

    def only(self, code: str) -> Diagnostic:
        found = [d for d in self.diagnostics if d.code == code]
        assert len(found) == 1, self.diagnostics
        return found[0]

    def sections(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """(kind, name, cells) of every section, in order."""
        return [(s.kind.value, s.name, _numbers(s)) for s in self.layout.sections]

    def tasks(self) -> dict[str, tuple[int, ...]]:
        return {s.name: _numbers(s) for s in self.layout.tasks}

    def task(self, name: str) -> Section:
        return next(s for s in self.layout.tasks if s.name == name)

    def of_kind(self, kind: TaskKind) -> list[Section]:
        return [s for s in self.layout.sections if s.kind is kind]


def _numbers(section: Section) -> tuple[int, ...]:
    return tuple(i + 1 for i in section.cells)


def laid(tmp_path: Path, text: str) -> Laid:
    """read_notebook -> tags.layout on a py:percent notebook."""
    path = write_notebook(tmp_path / "nb.ipynb", text)
    notebook, found = read_notebook(path)
    assert notebook is not None, found
    layout, more = tags.layout(notebook)
    return Laid(layout, [*found, *more])


def one_cell(tmp_path: Path, *cell_tags: str, before: str = '# %% tags=["task:first"]\nz = 0\n'
             ) -> Laid:
    """A notebook: a task, then one cell with ``cell_tags`` (cell 2)."""
    return laid(tmp_path, before + f"# %% tags={json.dumps(list(cell_tags))}\nx = 1\n")


# --- task:, and cells joining the section above ----------------------------------------------


def test_task_starts_a_task_and_untagged_code_cells_join_it(tmp_path: Path) -> None:
    got = laid(tmp_path, """\
# %% tags=["task:load"]
raw = [3, 1, 2]
# %%
raw.append(4)
# %% [markdown]
# Some prose in between.
# %%
n = len(raw)
# %% tags=["task:clean"]
clean = sorted(raw)
# %%
top = clean[-1]
""")
    assert got.codes() == []
    assert got.sections() == [("task", "load", (1, 2, 4)), ("task", "clean", (5, 6))]
    assert got.layout.inferred is False
    assert got.task("load").tag_cell == 0 and got.task("clean").tag_cell == 4


def test_empty_code_cells_belong_to_no_section(tmp_path: Path) -> None:
    got = laid(tmp_path, '# %% tags=["task:a"]\nx = 1\n# %%\n\n# %%\ny = x\n')
    assert got.tasks() == {"a": (1, 3)}


def test_skip_applies_to_its_own_cell_only(tmp_path: Path) -> None:
    got = laid(tmp_path, """\
# %% tags=["task:load"]
raw = [1, 2]
# %% tags=["skip"]
print(raw)
# %%
raw.append(3)
# %% tags=["task:clean"]
clean = raw
""")
    assert got.codes() == []
    assert got.sections() == [("task", "load", (1, 3)), ("skip", "skip", (2,)),
                              ("task", "clean", (4,))]


def test_test_applies_to_its_own_cell_and_tests_the_task_above(tmp_path: Path) -> None:
    got = laid(tmp_path, """\
# %% tags=["task:load"]
raw = [1, 2]
# %% tags=["test"]
assert raw
# %%
raw.append(3)
# %% tags=["task:clean"]
clean = raw
# %% tags=["skip"]
clean
# %% tags=["test"]
assert clean == raw
""")
    assert got.codes() == []
    assert got.tasks() == {"load": (1, 3), "clean": (4,)}
    tests = got.of_kind(TaskKind.TEST)
    assert [(t.target, _numbers(t)) for t in tests] == [("load", (2,)), ("clean", (6,))]


def test_test_name_targets_the_named_task(tmp_path: Path) -> None:
    got = laid(tmp_path, """\
# %% tags=["task:load"]
raw = [1]
# %% tags=["task:clean"]
clean = raw
# %% tags=["test:load"]
assert raw == [1]
""")
    assert got.codes() == []
    [test] = got.of_kind(TaskKind.TEST)
    assert test.target == "load" and _numbers(test) == (3,)


def test_setup_and_parameters_cells_merge_into_one_section_each(tmp_path: Path) -> None:
    got = laid(tmp_path, """\
# %% tags=["setup"]
import math
# %% tags=["parameters"]
n = 3
# %% tags=["task:a"]
a = math.sqrt(n)
# %% tags=["setup"]
import os
# %%
def twice(v):
    return 2 * v
# %% tags=["parameters"]
m = 2
# %% tags=["task:b"]
b = twice(a) + m
""")
    assert got.codes() == []
    assert got.sections() == [("setup", "setup", (1, 4, 5)), ("parameters", "parameters", (2, 6)),
                              ("task", "a", (3,)), ("task", "b", (7,))]


def test_after_adds_an_ordering_edge(tmp_path: Path) -> None:
    got = laid(tmp_path, """\
# %% tags=["task:write"]
open("f.txt", "w").write("x")
# %% tags=["task:read", "after:write"]
text = open("f.txt").read()
# %%
size = len(text)
# %% tags=["task:last", "after:write", "after:read"]
done = True
""")
    assert got.codes() == []
    assert got.tasks() == {"write": (1,), "read": (2, 3), "last": (4,)}
    assert got.task("write").after == ()
    assert got.task("read").after == ("write",)
    assert got.task("last").after == ("write", "read")


# --- dialects -------------------------------------------------------------------------------


def test_kale_fixture_reads_with_aliases() -> None:
    notebook, found = read_notebook(FIXTURES / "kale_style.ipynb")
    assert notebook is not None, found
    layout, more = tags.layout(notebook)
    got = Laid(layout, [*found, *more])
    assert [c for c in got.codes() if c.startswith("NB2")] == []
    assert got.sections() == [
        ("setup", "setup", (2, 4)), ("parameters", "parameters", (3,)),
        ("task", "sack", (5,)), ("task", "kid1", (6,)), ("task", "kid2", (7,)),
        ("skip", "skip", (8,)), ("task", "summary", (9,)), ("task", "pipeline_metrics", (10,)),
    ]
    assert [t.after for t in layout.tasks] == [(), ("sack",), ("kid1",), ("kid2",), ()]


@pytest.mark.parametrize("alias,kind,name", [
    ("step:train", TaskKind.TASK, "train"),
    ("block:train", TaskKind.TASK, "train"),
    ("imports", TaskKind.SETUP, "setup"),
    ("functions", TaskKind.SETUP, "setup"),
    ("pipeline-parameters", TaskKind.PARAMETERS, "parameters"),
    ("pipeline-metrics", TaskKind.TASK, "pipeline_metrics"),
])
def test_kale_alias(tmp_path: Path, alias: str, kind: TaskKind, name: str) -> None:
    got = one_cell(tmp_path, alias)
    assert [c for c in got.codes() if c.startswith("NB2")] == []
    section = got.layout.sections[1]
    assert (section.kind, section.name, _numbers(section)) == (kind, name, (2,))


def test_kale_prev_is_after(tmp_path: Path) -> None:
    got = laid(tmp_path, """\
# %% tags=["step:first"]
x = 1
# %% tags=["step:second", "prev:first"]
y = x
""")
    assert got.codes() == []
    assert got.task("second").after == ("first",)


@pytest.mark.parametrize("foreign", [
    "limit:nvidia.com/gpu:2", "annotation:team:ml", "label:owner:me", "image:python:3.11",
    "volume:/data", "hide-input", "hide-output", "remove-cell", "remove-output",
    "raises-exception", "skip-execution", "injected-parameters", "thebe-init", "margin",
])
def test_tags_of_other_tools_are_ignored_silently(tmp_path: Path, foreign: str) -> None:
    got = one_cell(tmp_path, "task:train", foreign)
    assert got.codes() == []
    assert got.tasks() == {"first": (1,), "train": (2,)}


def test_only_foreign_tags_still_split_at_headings(tmp_path: Path) -> None:
    got = laid(tmp_path, """\
# %% [markdown]
# # Load
# %% tags=["hide-input", "limit:nvidia.com/gpu:2"]
x = 1
# %% [markdown]
# ## Use
# %% tags=["remove-output"]
y = x
""")
    assert got.layout.inferred
    assert got.tasks() == {"load": (2,), "use": (4,)}
    assert got.codes() == ["NB209"]


# --- unknown tags and bad names ---------------------------------------------------------------


@pytest.mark.parametrize("typo", ["taks:load", "paramters", "parameter", "setpu", "Skip:now",
                                  "task:", "after:", "tasks:load", "stpe:load"])
def test_misspelled_tags_are_reported_with_the_valid_ones(tmp_path: Path, typo: str) -> None:
    got = one_cell(tmp_path, typo)
    found = got.only("NB201")
    assert found.location == Location("nb.ipynb", 2)
    assert found.severity is Severity.WARNING
    assert repr(typo) in found.message
    for valid in ("task:NAME", "parameters", "setup", "skip", "test[:NAME]", "after:NAME"):
        assert valid in found.fix
    assert got.tasks() == {"first": (1, 2)}  # the cell is treated as untagged


def test_valid_tags_lists_every_row_of_the_table() -> None:
    assert tags.valid_tags() == "task:NAME, parameters, setup, skip, test[:NAME], after:NAME"


def test_a_notebook_tagged_only_with_typos_has_no_task(tmp_path: Path) -> None:
    got = laid(tmp_path, '# %% [markdown]\n# # Load\n# %% tags=["taks:load"]\nx = 1\n')
    assert not got.layout.inferred
    assert got.at("NB201") == [2]
    assert got.at("NB212") == [None]


@pytest.mark.parametrize("tag,name", [
    ("task:Load", "Load"), ("task:1x", "1x"), ("task:class", "class"),
    ("task:../../x", "../../x"), ("task:load-data", "load-data"), ("task:a b", "a b"),
    ("step:Train", "Train"), ("task:naïve", "naïve"), ("after:Load", "Load"),
    ("prev:for", "for"), ("test:Bad", "Bad"), ("task:a:b", "a:b"),
    ("task:test_model", "test_model"), ("task:model_test", "model_test"),
])
def test_invalid_names_are_errors(tmp_path: Path, tag: str, name: str) -> None:
    got = one_cell(tmp_path, tag)
    found = got.only("NB202")
    assert found.location == Location("nb.ipynb", 2)
    assert found.severity is Severity.ERROR
    assert repr(name) in found.message
    assert "NB201" not in got.codes()


def test_invalid_task_name_never_becomes_a_section_name(tmp_path: Path) -> None:
    got = one_cell(tmp_path, "task:../../x")
    assert all(_IDENTIFIER.fullmatch(s.name) for s in got.layout.sections)


def test_duplicate_task_names_the_first_cell(tmp_path: Path) -> None:
    got = laid(tmp_path, """\
# %% tags=["task:load"]
a = 1
# %% tags=["task:other"]
b = 2
# %% tags=["step:load"]
c = 3
""")
    found = got.only("NB203")
    assert found.location == Location("nb.ipynb", 3)
    assert found.related == Location("nb.ipynb", 1)
    assert "'load'" in found.message and "nb.ipynb:cell 1" in found.message
    assert found.severity is Severity.ERROR


def test_after_an_unknown_task(tmp_path: Path) -> None:
    got = one_cell(tmp_path, "task:b", "after:nowhere")
    found = got.only("NB204")
    assert found.location == Location("nb.ipynb", 2)
    assert "after:nowhere" in found.message


@pytest.mark.parametrize("edge", ["after:later", "prev:later"])
def test_after_a_later_task_is_a_cycle(tmp_path: Path, edge: str) -> None:
    got = laid(tmp_path, f"""\
# %% tags=["task:first", "{edge}"]
x = 1
# %% tags=["task:later"]
y = x
""")
    found = got.only("NB205")
    assert found.location == Location("nb.ipynb", 1)
    assert "'later'" in found.message
    assert "NB204" not in got.codes()


def test_after_itself_is_a_cycle(tmp_path: Path) -> None:
    got = one_cell(tmp_path, "task:b", "after:b")
    found = got.only("NB205")
    assert found.location == Location("nb.ipynb", 2)
    assert "itself" in found.message


def test_after_on_an_untagged_cell_joins_the_task(tmp_path: Path) -> None:
    got = laid(tmp_path, """\
# %% tags=["task:a"]
x = 1
# %% tags=["task:b"]
y = 2
# %% tags=["after:a"]
z = y
# %% tags=["after:c"]
w = z
# %% tags=["task:c"]
v = w
""")
    assert got.task("b").after == ("a", "c")
    assert got.at("NB205") == [2]


def test_after_before_the_first_task_is_still_checked(tmp_path: Path) -> None:
    got = laid(tmp_path, '# %% tags=["after:nowhere"]\nx = 1\n# %% tags=["task:a"]\ny = x\n')
    assert got.at("NB208") == [1]
    assert got.tasks() == {"a": (1, 2)}
    assert got.task("a").after == ("nowhere",)
    assert got.at("NB204") == [2]


@pytest.mark.parametrize("before", [
    "",
    '# %% tags=["setup"]\nimport os\n',
    '# %% tags=["parameters"]\nn = 1\n# %% tags=["skip"]\nprint(n)\n',
])
def test_test_before_any_task(tmp_path: Path, before: str) -> None:
    text = before + '# %% tags=["test"]\nassert True\n# %% tags=["task:a"]\nx = 1\n'
    got = laid(tmp_path, text)
    number = text[:text.index('["test"]')].count("# %%")
    found = got.only("NB206")
    assert found.location == Location("nb.ipynb", number)
    assert found.severity is Severity.ERROR


def test_test_of_an_unknown_task(tmp_path: Path) -> None:
    got = one_cell(tmp_path, "test:nowhere")
    found = got.only("NB204")
    assert found.location == Location("nb.ipynb", 2)
    assert "test:nowhere" in found.message
    assert "NB206" not in got.codes()


@pytest.mark.parametrize("pair", [
    ("task:a", "skip"), ("setup", "parameters"), ("step:a", "task:b"),
    ("pipeline-metrics", "task:x"), ("test", "skip"), ("imports", "task:c"),
])
def test_two_section_tags_on_one_cell(tmp_path: Path, pair: tuple[str, str]) -> None:
    got = one_cell(tmp_path, *pair)
    found = got.only("NB207")
    assert found.location == Location("nb.ipynb", 2)
    assert all(tag in found.message for tag in pair)
    assert found.severity is Severity.ERROR


def test_untagged_code_before_the_first_task_joins_it(tmp_path: Path) -> None:
    got = laid(tmp_path, """\
# %% [markdown]
# # Title
# %%
import os
# %%
base = os.getcwd()
# %% tags=["task:load"]
path = os.path.join(base, "x")
# %%
n = len(path)
""")
    found = got.only("NB208")
    assert found.location == Location("nb.ipynb", 2)
    assert found.severity is Severity.WARNING
    assert "'load'" in found.message
    assert got.tasks() == {"load": (2, 3, 4, 5)}


@pytest.mark.parametrize("text", [
    '# %% tags=["setup"]\nimport os\n# %% tags=["skip"]\nprint(os)\n',
    '# %% tags=["parameters"]\nn = 1\n# %%\nm = n\n',
    '# %% tags=["test"]\nassert True\n',
])
def test_no_task_at_all(tmp_path: Path, text: str) -> None:
    got = laid(tmp_path, text)
    found = got.only("NB212")
    assert found.location == Location("nb.ipynb")
    assert found.severity is Severity.ERROR
    assert got.layout.tasks == ()


def test_a_correct_notebook_has_no_tag_findings() -> None:
    notebook, found = read_notebook(FIXTURES / "churn.ipynb")
    assert notebook is not None
    layout, more = tags.layout(notebook)
    assert [d.code for d in [*found, *more] if d.code.startswith("NB2")] == []
    assert [(t.name, _numbers(t)) for t in layout.tasks] == [
        ("load", (5,)), ("clean", (8, 9)), ("features", (12,)), ("train", (14,)),
        ("report", (15,))]


# --- untagged notebooks: split at headings ---------------------------------------------------


def test_untagged_notebook_splits_at_h1_and_h2_headings(tmp_path: Path) -> None:
    got = laid(tmp_path, """\
# %%
import math
# %% [markdown]
# # Sales report
#
# Some text.
# %%
rows = [1, 2]
# %% [markdown]
# ### A sub-heading does not split
# %%
rows.append(3)
# %% [markdown]
# ## 1. Load data
# %%
total = sum(rows)
# %% [markdown]
# ## Nothing under this one
# %% [markdown]
# ## Report
# %%
print(math.sqrt(total))
""")
    assert got.layout.inferred
    assert got.sections() == [("task", "start", (1,)), ("task", "sales_report", (3, 5)),
                              ("task", "load_data", (7,)), ("task", "report", (10,))]
    found = got.only("NB209")
    assert found.location == Location("nb.ipynb")
    assert found.severity is Severity.INFO
    assert "start, sales_report, load_data, report" in found.message


def test_untagged_notebook_without_headings_is_one_task(tmp_path: Path) -> None:
    got = laid(tmp_path, "# %%\nx = 1\n# %%\ny = x\n")
    assert got.tasks() == {"start": (1, 2)}
    assert got.codes() == ["NB209"]


def test_code_in_markdown_does_not_split(tmp_path: Path) -> None:
    got = laid(tmp_path, """\
# %% [markdown]
# # Load
# %%
x = 1
# %% [markdown]
# Install first:
#
# ```bash
# # not a heading
# pip install x
# ```
#
#     # indented code, not a heading
# %%
y = x
""")
    assert got.tasks() == {"load": (2, 4)}


@pytest.mark.parametrize("headings,names", [
    (["Load", "Load", "load!"], ["load", "load_2", "load_3"]),
    (["Select"], ["select_step"]),
    (["Class", "import", "Print", "Run", "Helpers"],
     ["class_step", "import_step", "print_step", "run_step", "helpers_step"]),
    (["1. Load data", "2) Clean", "Step 3: Train"], ["load_data", "clean", "train"]),
    (["Café crème", "Größe & Straße", "日本語"], ["cafe_creme", "grosse_strasse", "section"]),
    (["3D plots", "-- Intro --", "!!!", "__init__"],
     ["section_3d_plots", "intro", "section", "init"]),
    (["Load ##", "C#", "Data `df`"], ["load", "c", "data_df"]),
])
def test_derived_task_names(tmp_path: Path, headings: list[str], names: list[str]) -> None:
    text = "".join(f"# %% [markdown]\n# ## {h}\n# %%\nv{i} = {i}\n" for i, h in enumerate(headings))
    got = laid(tmp_path, text)
    assert got.sections() == [("task", name, (2 * i + 2,)) for i, name in enumerate(names)]
    assert got.codes() == ["NB209"]


def test_code_before_the_first_heading_is_its_own_task(tmp_path: Path) -> None:
    got = laid(tmp_path, "# %%\nv = 0\n# %% [markdown]\n# # Start\n# %%\nw = v\n")
    assert got.sections() == [("task", "start", (1,)), ("task", "start_2", (3,))]


def test_derived_names_are_valid_task_tags(tmp_path: Path) -> None:
    headings = ["Load", "load", "Select", "1. Load data", "Über", "日本語", "", "class", "3D",
                "--x--", "a" * 60, "x " * 40, "`df.head()`", "Test", "Run", "product"]
    text = "".join(f"# %% [markdown]\n# ## {h}\n# %%\nv{i} = {i}\n" for i, h in enumerate(headings))
    got = laid(tmp_path, text)
    names = [s.name for s in got.layout.tasks]
    assert len(names) == len(set(names))
    for name in names:
        assert _IDENTIFIER.fullmatch(name), name
        assert not keyword.iskeyword(name)
        assert name not in tags.RESERVED
        # ...and each one reads back as a valid `task:` tag
        cell = Cell(index=0, kind="code", source="x = 1", code="x = 1", tags=(f"task:{name}",))
        parsed, problems = tags.parse_cell_tags(cell, "one.ipynb")
        assert problems == [] and (parsed.kind, parsed.name) == (TaskKind.TASK, name)


# --- task_name ---------------------------------------------------------------------------------


@pytest.mark.parametrize("heading,expected", [
    ("Load data", "load_data"),
    ("Select", "select_step"),
    ("json", "json_step"),
    ("Class", "class_step"),
    ("list", "list_step"),
    ("upstream", "upstream_step"),
    ("1. Load data", "load_data"),
    ("12.3 Load data", "load_data"),
    ("Step 2: Clean", "clean"),
    ("2) Clean", "clean"),
    ("3D plots", "section_3d_plots"),
    ("Déjà vu", "deja_vu"),
    ("Straße", "strasse"),
    ("Ørsted Æble", "orsted_aeble"),
    ("日本語", "section"),
    ("", "section"),
    ("   ", "section"),
    ("---", "section"),
    ("-leading dash", "leading_dash"),
    ("**Bold** and `code`", "bold_and_code"),
    ("MiXeD CaSe", "mixed_case"),
])
def test_task_name(heading: str, expected: str) -> None:
    assert tags.task_name(heading) == expected


def test_task_name_is_unique_against_taken_names() -> None:
    assert tags.task_name("Load", {"load"}) == "load_2"
    assert tags.task_name("Load", {"load", "load_2"}) == "load_3"
    assert tags.task_name("Select", {"select_step"}) == "select_step_2"
    assert tags.task_name("", {"section"}) == "section_2"


def test_task_name_stays_short() -> None:
    name = tags.task_name("one two three four five six seven eight nine ten eleven twelve")
    assert len(name) <= 40
    assert name.startswith("one_two_three")
    assert not name.endswith("_")


def test_heading_names_do_not_shadow_what_the_notebook_imports_or_defines(tmp_path: Path) -> None:
    got = laid(tmp_path, """
# %%
from sklearn.model_selection import train_test_split
# %% [markdown]
# ## Train test split
# %%
parts = train_test_split([1, 2, 3, 4])
# %% [markdown]
# ## Helper
# %%
def helper(x):
    return x
y = helper(1)
""")
    assert list(got.tasks()) == ["start", "train_test_split_step", "helper_step"]


def test_names_pytest_would_collect_are_refused_or_renamed() -> None:
    from nb2pipe.tags import task_name

    assert task_name("Test dataset performance") == "step_test_dataset_performance"
    assert task_name("Model test") == "model_test_step"
    assert task_name("Testing") == "step_testing"
    assert task_name("Latest results") == "latest_results"
