"""Tests of the read stage: files → Notebook, IPython syntax → masked code.

The malformed inputs live in ``fixtures/notebooks/bad/`` with their expected
diagnostic in that folder's README table; valid notebooks are built here in
``tmp_path`` so that each test shows the input it is about.
"""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nb2pipe import magics
from nb2pipe.codes import CODES
from nb2pipe.magics import Action, mask
from nb2pipe.model import Severity
from nb2pipe.read import package_name, read_notebook

ROOT = Path(__file__).resolve().parents[1]
BAD = ROOT / "fixtures" / "notebooks" / "bad"


# --- helpers -------------------------------------------------------------------------------


def code_cell(source, tags=None, count=None):
    """An nbformat 4 code cell as Jupyter writes it."""
    metadata = {} if tags is None else {"tags": tags}
    return {"cell_type": "code", "execution_count": count, "metadata": metadata,
            "outputs": [], "source": source}


def md_cell(source):
    return {"cell_type": "markdown", "metadata": {}, "source": source}


def write_ipynb(path: Path, cells, metadata=None, **top) -> Path:
    """Write a minimal valid notebook around ``cells``."""
    data = {"nbformat": 4, "nbformat_minor": 5, "cells": cells,
            "metadata": metadata if metadata is not None else {"kernelspec": {"language": "python"}}}
    data.update(top)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def codes(diagnostics):
    return [d.code for d in diagnostics]


def masked(source: str) -> magics.Masked:
    """Mask ``source`` and check the invariants every masking must keep."""
    result = mask(source)
    assert result.code.count("\n") == source.count("\n"), "line count changed"
    ast.parse(result.code)
    return result


def marks(source: str):
    return [(m.code, m.line, m.col) for m in masked(source).marks]


# --- the bad-input fixtures ------------------------------------------------------------------


def fixture_table():
    """Rows of the README table in fixtures/notebooks/bad/."""
    rows = []
    for line in (BAD / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0] not in ("file", "---"):
            name, code, cell, lineno, col, fatal, _ = cells
            as_int = lambda text: int(text) if text else None  # noqa: E731
            rows.append(pytest.param(name, code, as_int(cell), as_int(lineno), as_int(col),
                                     fatal == "yes", id=name))
    return rows


def test_every_bad_fixture_is_in_the_table():
    listed = {row.values[0] for row in fixture_table()}
    present = {p.name for p in BAD.iterdir() if p.name != "README.md"}
    assert listed == present


@pytest.mark.parametrize("name, code, cell, line, col, fatal", fixture_table())
def test_bad_fixture(name, code, cell, line, col, fatal):
    notebook, diagnostics = read_notebook(BAD / name)  # must not raise
    assert (notebook is None) == fatal
    if code == "ok":
        assert diagnostics == []
        return
    found = [d for d in diagnostics if d.code == code]
    assert found, f"expected {code}, got {codes(diagnostics)}"
    location = found[0].location
    assert (location.path, location.cell, location.line, location.col) == (name, cell, line, col)
    assert found[0].message and (found[0].fix or found[0].severity is not Severity.ERROR)


def test_fatal_errors_come_alone_with_their_fix():
    _, diagnostics = read_notebook(BAD / "nbformat3.ipynb")
    assert codes(diagnostics) == ["NB103"]
    assert "3" in diagnostics[0].message and "nbconvert" in diagnostics[0].fix


def test_truncated_json_names_the_position():
    _, diagnostics = read_notebook(BAD / "truncated.ipynb")
    assert "line" in diagnostics[0].message and "column" in diagnostics[0].message


def test_crlf_is_normalised():
    notebook, _ = read_notebook(BAD / "crlf.ipynb")
    source = notebook.cells[0].source
    assert "\r" not in source and source.count("\n") == 2
    assert notebook.cells[0].tags == ("task:load",)


def test_bom_is_accepted_and_hashed_as_is():
    raw = (BAD / "bom.ipynb").read_bytes()
    notebook, _ = read_notebook(BAD / "bom.ipynb")
    assert notebook.content_hash == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_tabs_spaces_snippet_has_a_caret():
    _, diagnostics = read_notebook(BAD / "tabs_spaces.ipynb")
    (error,) = [d for d in diagnostics if d.code == "NB106"]
    assert error.snippet.splitlines() == ["    \treturn 1", "    ^"]


def test_directory_and_missing_file(tmp_path):
    folder = tmp_path / "folder.ipynb"
    folder.mkdir()
    for path, words in ((folder, "directory"), (tmp_path / "nope.ipynb", "does not exist")):
        notebook, diagnostics = read_notebook(path)
        assert notebook is None and codes(diagnostics) == ["NB107"]
        assert words in diagnostics[0].message


def test_unsupported_extension_lists_supported_ones(tmp_path):
    path = tmp_path / "analysis.Rmd"
    path.write_text("```{r}\nx <- 1\n```\n")
    _, diagnostics = read_notebook(path)
    assert codes(diagnostics) == ["NB107"] and ".ipynb" in diagnostics[0].message


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("bytes") / "x.ipynb"
    path.write_bytes(data)
    notebook, diagnostics = read_notebook(path)
    assert notebook is None and diagnostics


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5)
    | st.sampled_from(["code", "markdown", "raw", "cells", 4, "python", "R"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["nbformat", "cells", "cell_type", "source", "metadata", "tags",
                         "execution_count", "kernelspec", "language", "nbformat_minor"]),
        inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(JSON)
def test_random_json_never_raises(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("json") / "x.ipynb"
    path.write_text(json.dumps(data))
    notebook, diagnostics = read_notebook(path)
    assert notebook is not None or any(d.severity is Severity.ERROR for d in diagnostics)


# --- valid notebooks -------------------------------------------------------------------------


def test_ipynb_cells(tmp_path):
    path = write_ipynb(tmp_path / "Churn Model.ipynb", [
        md_cell(["# Load\n", "data"]),
        code_cell(["%pip install -q polars==1.2\n", "import polars as pl\n"], ["task:load"], 1),
        {"cell_type": "raw", "metadata": {}, "source": "raw text"},
        code_cell("x = 1\n", count=2),
    ])
    notebook, diagnostics = read_notebook(path)
    assert codes(diagnostics) == ["NB403"]
    assert notebook.name == "churn_model" and notebook.format == "ipynb"
    assert notebook.language == "python"
    assert notebook.content_hash == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    md, load, raw, last = notebook.cells
    assert (md.index, md.kind, md.source, md.code) == (0, "markdown", "# Load\ndata", "")
    assert (raw.kind, raw.code) == ("raw", "")
    assert load.tags == ("task:load",) and load.execution_count == 1
    assert load.requirements == ("polars==1.2",)
    assert load.code == "# %pip install -q polars==1.2\nimport polars as pl\n"
    assert diagnostics[0].location.path == "Churn Model.ipynb"
    assert (diagnostics[0].location.cell, diagnostics[0].location.line) == (2, 1)
    assert last.number == 4


@pytest.mark.parametrize("metadata", [
    {}, {"language_info": {"name": "python"}}, {"kernelspec": {"language": "Python3"}},
    {"kernelspec": {"name": "python3"}},
])
def test_python_or_unknown_language_is_accepted(tmp_path, metadata):
    notebook, _ = read_notebook(write_ipynb(tmp_path / "n.ipynb", [code_cell("x = 1")], metadata))
    assert notebook is not None


def test_language_info_alone_can_refuse(tmp_path):
    path = write_ipynb(tmp_path / "n.ipynb", [code_cell("x = 1")], {"language_info": {"name": "julia"}})
    assert codes(read_notebook(path)[1]) == ["NB104"]


def test_hidden_state_is_reported_once(tmp_path):
    cells = [code_cell("a = 1", count=4), code_cell("b = 1", count=2),
             code_cell("c = 1", count=None), code_cell("d = 1", count=1)]
    _, diagnostics = read_notebook(write_ipynb(tmp_path / "n.ipynb", cells))
    assert codes(diagnostics) == ["NB406"]
    assert "cell 2 ran before cell 1" in diagnostics[0].message


def test_increasing_counts_with_gaps_are_fine(tmp_path):
    cells = [code_cell("a = 1", count=1), code_cell("b = 1"), code_cell("c = 1", count=7)]
    assert read_notebook(write_ipynb(tmp_path / "n.ipynb", cells))[1] == []


def test_bad_tags_keep_the_strings(tmp_path):
    path = write_ipynb(tmp_path / "n.ipynb", [code_cell("x = 1", ["task:a", 3])])
    notebook, diagnostics = read_notebook(path)
    assert codes(diagnostics) == ["NB210"] and notebook.cells[0].tags == ("task:a",)


def test_syntax_error_position_through_a_magic(tmp_path):
    path = write_ipynb(tmp_path / "n.ipynb", [code_cell("%matplotlib inline\n%time x = )\n")])
    _, diagnostics = read_notebook(path)
    (error,) = [d for d in diagnostics if d.code == "NB106"]
    assert (error.location.line, error.location.col) == (2, 11)
    assert error.snippet.splitlines() == ["    %time x = )", "              ^"]


PERCENT = """# %% [markdown]
# # Churn

# %% tags=["task:load"]
# %matplotlib inline
import pandas as pd
df = pd.DataFrame()

# %% tags=["skip"]
df.head()
"""

LIGHT = """import pandas as pd

# + tags=["task:clean"]
df = pd.DataFrame()
df = df.dropna()
"""

MARKDOWN = """# Churn

```python
x = 1
```
"""

MYST = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Churn

```{code-cell} ipython3
:tags: [task:load]

%matplotlib inline
x = 1
```
"""


@pytest.mark.parametrize("name, text, fmt, tags", [
    ("percent.py", PERCENT, "py:percent", [(), ("task:load",), ("skip",)]),
    ("light.py", LIGHT, "py:light", [(), ("task:clean",)]),
    ("plain.md", MARKDOWN, "md", [(), ()]),
    ("myst.md", MYST, "md:myst", [(), ("task:load",)]),
    ("myst.myst", MYST, "md:myst", [(), ("task:load",)]),
])
def test_text_notebooks(tmp_path, name, text, fmt, tags):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    notebook, diagnostics = read_notebook(path)
    assert notebook.format == fmt
    assert [cell.tags for cell in notebook.cells] == tags
    assert all(d.severity is Severity.INFO for d in diagnostics)
    assert notebook.content_hash == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_percent_magics_are_uncommented_then_masked(tmp_path):
    path = tmp_path / "nb.py"
    path.write_text(PERCENT)
    notebook, diagnostics = read_notebook(path)
    load = notebook.cells[1]
    assert load.source.startswith("%matplotlib inline\n")
    assert load.code.startswith("# %matplotlib inline\n")
    assert (diagnostics[0].code, diagnostics[0].location.cell) == ("NB401", 2)


def test_text_notebook_in_another_language(tmp_path):
    path = tmp_path / "r.md"
    path.write_text(MYST.replace("language: python", "language: R"))
    assert codes(read_notebook(path)[1]) == ["NB104"]


def test_reading_ipynb_imports_neither_nbformat_nor_jsonschema():
    script = (
        "import sys\nfrom pathlib import Path\nfrom nb2pipe.read import read_notebook\n"
        f"notebook, _ = read_notebook(Path({str(BAD / 'out_of_order.ipynb')!r}))\n"
        "assert notebook is not None\n"
        "print(sorted(m for m in ('nbformat', 'jsonschema', 'jupytext', 'IPython') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- package names ---------------------------------------------------------------------------


@pytest.mark.parametrize("stem, name", [
    ("churn", "churn"), ("Churn Model (1)", "churn_model_1"), ("01-load", "nb_01_load"),
    ("random", "random_nb"), ("json", "json_nb"), ("class", "class_nb"), ("match", "match_nb"),
    ("tests", "tests_nb"), ("pandas", "pandas_nb"), ("", "notebook_nb"), ("---", "notebook_nb"),
    ("Übersicht", "ubersicht"), ("a.b-c", "a_b_c"), ("cProfile", "cprofile_nb"),
])
def test_package_name(stem, name):
    assert package_name(stem) == name
    assert name.isidentifier() and name.isascii()


# --- magics: one test per table row --------------------------------------------------------

SPECIAL_SOURCES = {"!": "!ls", "!!": "!!ls", "?": "df?", "/": "/f 1", ",": ",f a", ";": ";f a"}


def row_source(key: str) -> str:
    """A small cell that uses the magic of table row ``key``."""
    if key in SPECIAL_SOURCES:
        return SPECIAL_SOURCES[key]
    if key.startswith("%%"):
        return f"{key}\nx = 1\n"
    return f"{key} x = 1"


EXPECTED_CODE = {Action.DROP: "NB401", Action.RUN: "NB401", Action.REQUIRE: "NB403",
                 Action.REFUSE: "NB402"}


@pytest.mark.parametrize("key", sorted(magics.TABLE))
def test_every_table_row(key):
    row = magics.TABLE[key]
    assert row.note, "every row says why (or what to do instead)"
    source = row_source(key)
    result = masked(source)
    args = source.split("\n")[0][len(key):].strip() if key not in SPECIAL_SOURCES else ""
    expected = row.resolve(args) if key not in SPECIAL_SOURCES else row.resolve(source[len(key):])
    assert [m.code for m in result.marks][:1] == [EXPECTED_CODE[expected.action]]
    assert result.marks[0].line == 1 and result.marks[0].col == 1
    if expected.action is Action.REFUSE:
        assert result.marks[0].hint
    if key.startswith("%%") and expected.action is Action.RUN:
        assert result.code == f"# {key}\nx = 1\n"
    elif key.startswith("%") and not key.startswith("%%") and expected.action is Action.RUN:
        assert result.code == "x = 1"
    else:
        assert all(not line.strip() or line.lstrip().startswith("#") for line in result.code.split("\n"))


def test_codes_used_by_magics_exist():
    for code in EXPECTED_CODE.values():
        assert code in CODES


@pytest.mark.parametrize("source, code", [
    ("%matplotlib inline\nx = 1", "# %matplotlib inline\nx = 1"),
    ("%config InlineBackend.figure_format = 'retina'", "# %config InlineBackend.figure_format = 'retina'"),
    ("%load_ext autoreload\n%autoreload 2", "# %load_ext autoreload\n# %autoreload 2"),
    ("%timeit f()", "# %timeit f()"),
    ("%time x = f()", "x = f()"),
    ("x = %time f()", "x = f()"),
    ("%prun -s cumulative -l 10 f()", "f()"),
    ("for i in range(3):\n    %time f(i)", "for i in range(3):\n    f(i)"),
    ("if x:\n    %matplotlib inline", "if x:\n    pass  # %matplotlib inline"),
    ("%%time\ny = 2\nz = 3", "# %%time\ny = 2\nz = 3"),
    ("\n%%capture\ny = 2", "\n# %%capture\ny = 2"),
    ("%%capture --no-stderr\ny = 2", "# %%capture --no-stderr\ny = 2"),
    ("%%timeit\ny = 2", "# %%timeit\n# y = 2"),
    ("%%html\n<b>x</b>\n", "# %%html\n# <b>x</b>\n"),
    ("%%time\n%matplotlib inline\nx = 1", "# %%time\n# %matplotlib inline\nx = 1"),
    ("df.head?", "# df.head?"),
    ("??pd.read_csv", "# ??pd.read_csv"),
    ("%env", "# %env"),
    ("get_ipython().run_line_magic('matplotlib', 'inline')",
     "# get_ipython().run_line_magic('matplotlib', 'inline')"),
    ("get_ipython().run_line_magic('time', 'x = f()')", "x = f()"),
    ("matplotlib inline", "# matplotlib inline"),
])
def test_masked_code(source, code):
    assert masked(source).code == code


@pytest.mark.parametrize("source, code, line, col", [
    ("%matplotlib inline", "NB401", 1, 1),
    ("x = 1\n  \nif x:\n    %time f()", "NB401", 4, 5),
    ("%%html\n<b>", "NB401", 1, 1),
    ("!pip install pandas", "NB403", 1, 1),
    ("%cd data", "NB402", 1, 1),
    ("import os\n!rm -rf build", "NB402", 2, 1),
    ("import os\n!head data.csv", "NB401", 2, 1),
    ("!ls data/ > files.txt", "NB402", 1, 1),
    ("files = !ls", "NB402", 1, 1),
    ("x = %pwd", "NB402", 1, 1),
    ("%%bash\necho hi", "NB402", 1, 1),
    ("%%writefile a.py\nx = 1", "NB402", 1, 1),
    ("%%capture out\nx = 1", "NB402", 1, 1),
    ("x = 1\n%%time\ny = 1", "NB402", 2, 1),
    ("%run other.py", "NB402", 1, 1),
    ("%store x", "NB402", 1, 1),
    ("%pylab inline", "NB402", 1, 1),
    ("%load script.py", "NB402", 1, 1),
    ("%frobnicate 3", "NB402", 1, 1),
    ("get_ipython().run_cell_magic('time', '', 'x = 1\\n')", "NB402", 1, 1),
    ("get_ipython().run_line_magic(name, '')", "NB402", 1, 1),
    ("out = get_ipython().getoutput('ls')", "NB402", 1, 1),
    ("get_ipython().system('pip install x')", "NB403", 1, 1),
])
def test_marks(source, code, line, col):
    assert marks(source)[0] == (code, line, col)


@pytest.mark.parametrize("source, hint", [
    ("%cd data", "relative to the notebook"),
    ("%%writefile helper.py\nx = 1", "put the file in the repository"),
    ("!wget http://x", "subprocess.run"),
    ("%env X=1", 'os.environ["X"] = "1"'),
    ("%env LEVEL debug", 'os.environ["LEVEL"] = "debug"'),
    ("!pip install {pkg}", "literally"),
    ("!pip install x && ls", "subprocess.run"),
    ("%%capture out\nx = 1", "`out`"),
])
def test_refusal_hints(source, hint):
    assert hint in masked(source).marks[0].hint


@pytest.mark.parametrize("source, requirements", [
    ("!pip install pandas", ("pandas",)),
    ("%pip install -q -U numpy==1.26 'scikit-learn>=1.3'", ("numpy==1.26", "scikit-learn>=1.3")),
    ("!pip3 install --quiet polars", ("polars",)),
    ("!python -m pip install seaborn", ("seaborn",)),
    ("!{sys.executable} -m pip install xgboost", ("xgboost",)),
    ("%pip install -r requirements.txt tqdm", ("tqdm",)),
    ("%pip install a \\\n    b", ("a", "b")),
    ("!pip install a\n!pip install a b", ("a", "b")),
    ("%conda install -y -c conda-forge lightgbm", ("lightgbm",)),
    ("!pip list", ()),
])
def test_requirements(source, requirements):
    assert masked(source).requirements == requirements


@pytest.mark.parametrize("source", [
    "x = 5 % 3",
    "y = (a\n     % b)",
    "z = a \\\n    % b",
    "s = '''\n%matplotlib inline\n!ls\n'''",
    's = "%d items" % n',
    "print('!ls')",
    "x != 3",
    "x = 1  # really?",
    "d = {'a': 1,\n     'b': 2}\n",
    "if a == b:\n    pass",
    "f(x=1)",
    "s = 'it''s'\n%s",
])
def test_python_is_left_alone(source):
    if source.endswith("%s"):  # a statement start after a closed string is a magic again
        assert masked(source).marks[0].line == 2
        return
    result = masked(source)
    assert result.code == source and not result.marks


def test_magic_inside_a_triple_quoted_f_string_is_not_masked():
    source = 'query = f"""\n%{name}\n"""'
    assert masked(source).code == source


def test_columns_map_back_to_the_source():
    result = masked("x = %time compute(a, b)")
    column = result.code.index("compute")
    assert result.source_col(1, column) == "x = %time compute(a, b)".index("compute")


# --- masking invariants, by property -----------------------------------------------------------

LINES = [
    "x = 1", "%matplotlib inline", "%time y = x + 1", "!pip install pandas", "!ls", "df?",
    "for i in range(2):", "    %time z = i", "    w = i % 2", "s = '%d' % 3", "t = (1 +",
    "     2)", "%%time", "%%html", "u = !ls", "# comment?", "v = x \\", "    + 1", "",
    "get_ipython().run_line_magic('matplotlib', 'inline')", "if x:", "    !echo hi",
    "    pass", "q = '''", "%not a magic here", "'''",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(LINES), max_size=12))
def test_masking_keeps_lines_and_untouched_text(lines):
    source = "\n".join(lines)
    result = mask(source)
    out = result.code.split("\n")
    assert len(out) == len(source.split("\n"))
    touched = {m.line for m in result.marks}
    for number, (before, after) in enumerate(zip(source.split("\n"), out), start=1):
        if before != after:
            assert number in touched or after.lstrip().startswith("#"), (before, after)


VALID = ["x = 1", "y = x % 2", "s = '%s!' % x", "z = (x\n     % 2)", "if x != 2:\n    x = 3",
         "t = '''\n!ls\n%time\n'''", "u = x \\\n    % 3", "print('a?')", "w = x  # ok?",
         "d = {'k': 1}", "l = [i for i in range(3)]", "def f(a=1):\n    return a % 2"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(VALID), max_size=8))
def test_valid_python_is_unchanged(snippets):
    source = "\n".join(snippets)
    result = mask(source)
    assert result.code == source and not result.marks and not result.requirements


# --- odds and ends ------------------------------------------------------------------------------


def test_huge_file_is_refused_without_reading_it(tmp_path):
    from nb2pipe.read import MAX_BYTES

    path = tmp_path / "huge.ipynb"
    with path.open("wb") as handle:
        handle.truncate(MAX_BYTES + 1)  # sparse: costs no disk
    notebook, diagnostics = read_notebook(path)
    assert notebook is None and codes(diagnostics) == ["NB107"] and "MB" in diagnostics[0].message


def test_accepts_a_string_path(tmp_path):
    path = write_ipynb(tmp_path / "n.ipynb", [code_cell("x = 1")])
    notebook, _ = read_notebook(str(path))
    assert notebook.path == path


@pytest.mark.parametrize("top, code", [
    ({"nbformat_minor": -1}, "NB103"), ({"nbformat": "4"}, "NB103"), ({"metadata": []}, "NB102"),
])
def test_header_fields(tmp_path, top, code):
    path = write_ipynb(tmp_path / "n.ipynb", [code_cell("x = 1")], **top)
    assert codes(read_notebook(path)[1]) == [code]


def test_cell_magic_call_that_only_displays_is_dropped():
    assert marks("get_ipython().run_cell_magic('html', '', '<b>x</b>')") == [("NB401", 1, 1)]
