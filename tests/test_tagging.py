"""``nb2pipe tag`` and the promise that no other command touches the notebook.

Every test works on a copy of a fixture in ``tmp_path``: the fixtures
themselves must never change.  Commands run as real subprocesses
(``run_cli``), as a user would run them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path

import nbformat
import pytest

from conftest import FIXTURES, run_cli
from nb2pipe import tags
from nb2pipe.read import read_notebook

SALES_CHANGES = [
    "untagged_sales.ipynb:cell 2: + setup",
    "untagged_sales.ipynb:cell 4: + task:load_the_orders",
    "untagged_sales.ipynb:cell 7: + task:clean",
    "untagged_sales.ipynb:cell 9: + task:summarise_by_region",
]
OLD = 1_000_000_000  # an mtime in 2001: any write shows


def copy(name: str, folder: Path) -> Path:
    """A copy of fixtures/notebooks/NAME with an old mtime."""
    target = folder / name
    shutil.copyfile(FIXTURES / name, target)
    os.utime(target, ns=(OLD * 10**9, OLD * 10**9))
    return target


def snapshot(path: Path) -> tuple[bytes, int, int]:
    info = path.stat()
    return path.read_bytes(), info.st_mtime_ns, stat.S_IMODE(info.st_mode)


def changes(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if ": + " in line]


def cell_tags(path: Path) -> list[list[str]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [cell.get("metadata", {}).get("tags", []) for cell in data["cells"]]


def tasks_line(stdout: str) -> list[str]:
    found = re.search(r"\(tasks: ([^)]*)\)", stdout)
    assert found, stdout
    return found.group(1).split(", ")


@pytest.fixture
def sales(tmp_path: Path) -> Path:
    return copy("untagged_sales.ipynb", tmp_path)


# --- nb2pipe tag ---------------------------------------------------------------------------


def test_tag_prints_and_writes_each_change(sales: Path) -> None:
    done = run_cli("tag", str(sales))
    assert done.returncode == 0, done.stderr
    assert changes(done.stdout) == SALES_CHANGES
    assert f"wrote 4 tags to {sales}" in done.stdout
    assert cell_tags(sales) == [[], ["setup"], [], ["task:load_the_orders"], [], [],
                                ["task:clean"], [], ["task:summarise_by_region"]]


def test_tag_changes_only_the_tags(sales: Path) -> None:
    before = json.loads(sales.read_text(encoding="utf-8"))
    assert run_cli("tag", str(sales)).returncode == 0
    after = json.loads(sales.read_text(encoding="utf-8"))
    for cell in after["cells"]:
        cell["metadata"].pop("tags", None)
    assert after == before


def test_tagged_file_is_a_valid_notebook(sales: Path) -> None:
    assert run_cli("tag", str(sales)).returncode == 0
    text = sales.read_text(encoding="utf-8")
    json.loads(text)
    assert text.endswith("}\n")
    notebook = nbformat.reads(text, as_version=4)
    nbformat.validate(notebook)
    assert notebook.cells[3].metadata.tags == ["task:load_the_orders"]


def test_tag_keeps_the_file_mode(sales: Path) -> None:
    sales.chmod(0o640)
    assert run_cli("tag", str(sales)).returncode == 0
    assert stat.S_IMODE(sales.stat().st_mode) == 0o640
    assert not [p for p in sales.parent.iterdir() if p.name.startswith(".nb2pipe-")]


def test_tag_twice_has_nothing_to_do(sales: Path) -> None:
    assert run_cli("tag", str(sales)).returncode == 0
    os.utime(sales, ns=(OLD * 10**9, OLD * 10**9))
    before = snapshot(sales)
    done = run_cli("tag", str(sales))
    assert done.returncode == 0, done.stderr
    assert "nothing to do" in done.stdout
    assert changes(done.stdout) == []
    assert snapshot(sales) == before


def test_dry_run_prints_but_writes_nothing(sales: Path) -> None:
    before = snapshot(sales)
    done = run_cli("tag", "--dry-run", str(sales))
    assert done.returncode == 0, done.stderr
    assert changes(done.stdout) == SALES_CHANGES
    assert "wrote" not in done.stdout
    assert snapshot(sales) == before
    assert sorted(p.name for p in sales.parent.iterdir()) == ["untagged_sales.ipynb"]


def test_tagged_notebook_passes_check(sales: Path) -> None:
    assert run_cli("tag", str(sales)).returncode == 0
    done = run_cli("check", str(sales))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "NB209" not in done.stdout + done.stderr  # no longer inferred


def test_tagged_notebook_converts_to_the_same_tasks(sales: Path, tmp_path: Path) -> None:
    (tmp_path / "original").mkdir()
    original = copy("untagged_sales.ipynb", tmp_path / "original")
    first = run_cli("convert", str(original), "-o", str(tmp_path / "out1"))
    assert first.returncode == 0, first.stderr
    assert run_cli("tag", str(sales)).returncode == 0
    second = run_cli("convert", str(sales), "-o", str(tmp_path / "out2"))
    assert second.returncode == 0, second.stderr
    assert tasks_line(second.stdout) == tasks_line(first.stdout) == \
        ["load_the_orders", "clean", "summarise_by_region"]
    yaml_tasks = [re.findall(r"^  name: (\w+)$", (out / "pipeline.yaml").read_text(), re.M)
                  for out in (tmp_path / "out1", tmp_path / "out2")]
    assert yaml_tasks[0] == yaml_tasks[1] == ["load_the_orders", "clean", "summarise_by_region"]


@pytest.mark.parametrize("name", ["churn.ipynb", "kale_style.ipynb"])
def test_tag_leaves_a_tagged_notebook_alone(tmp_path: Path, name: str) -> None:
    notebook = copy(name, tmp_path)
    before = snapshot(notebook)
    done = run_cli("tag", str(notebook))
    assert done.returncode == 0, done.stderr
    assert "already tagged, nothing to do" in done.stdout
    assert changes(done.stdout) == []
    assert snapshot(notebook) == before


def test_tag_refuses_an_untagged_text_notebook(tmp_path: Path) -> None:
    notebook = tmp_path / "legacy.py"
    notebook.write_text("# %% [markdown]\n# # Load\n\n# %%\nx = 1\n\n"
                        "# %% [markdown]\n# ## Use\n\n# %%\ny = x + 1\n", encoding="utf-8")
    os.utime(notebook, ns=(OLD * 10**9, OLD * 10**9))
    before = snapshot(notebook)
    done = run_cli("tag", str(notebook))
    assert done.returncode == 2
    assert ".ipynb" in done.stderr and "by hand" in done.stderr
    assert "Traceback" not in done.stderr
    assert changes(done.stdout) == []
    assert snapshot(notebook) == before


def test_tag_reports_a_broken_notebook_and_writes_nothing(tmp_path: Path) -> None:
    notebook = tmp_path / "broken.ipynb"
    notebook.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": [
        {"cell_type": "markdown", "metadata": {}, "source": "# Load"},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "x = (1,"},
    ]}), encoding="utf-8")
    before = snapshot(notebook)
    done = run_cli("tag", str(notebook))
    assert done.returncode == 1
    assert re.search(r"broken\.ipynb:cell 2:\d+:\d+: NB106 ", done.stderr), done.stderr
    assert changes(done.stdout) == []
    assert snapshot(notebook) == before


def test_tag_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    done = run_cli("tag", str(tmp_path / "nope.ipynb"))
    assert done.returncode == 2
    assert "no such file" in done.stderr


def _notebook(path: Path, cells: list[tuple[str, str, list[str]]]) -> Path:
    """Write an .ipynb of (kind, source, tags) cells, as Jupyter 4.5 writes it."""
    def cell(i: int, kind: str, source: str, cell_tags: list[str]) -> dict:
        data = {"cell_type": kind, "id": f"c{i}", "metadata": {"tags": cell_tags} if cell_tags
                else {}, "source": source}
        if kind == "code":
            data.update(execution_count=None, outputs=[])
        return data
    notebook = {"nbformat": 4, "nbformat_minor": 5, "cells": [cell(i, *c) for i, c in
                                                               enumerate(cells)],
                "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                            "display_name": "Python 3"}}}
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def test_tag_round_trips_awkward_headings(tmp_path: Path) -> None:
    """Derived names survive as tags: the tagged layout is the inferred one."""
    notebook = _notebook(tmp_path / "legacy.ipynb", [
        ("code", "import math", ["hide-input"]),
        ("markdown", "# Select", []),
        ("code", "values = [1.0, 4.0]", []),
        ("markdown", "## 1. Données brutes", []),
        ("code", "values.append(9.0)", []),
        ("code", "n = len(values)", []),
        ("markdown", "## Helpers", []),
        ("code", "def root(v):\n    return math.sqrt(v)", []),
        ("markdown", "## Select", []),
        ("code", "roots = [root(v) for v in values]", []),
    ])
    inferred, _ = tags.layout(read_notebook(notebook)[0])
    done = run_cli("tag", str(notebook))
    assert done.returncode == 0, done.stderr
    assert changes(done.stdout) == [
        "legacy.ipynb:cell 1: + setup",
        "legacy.ipynb:cell 3: + task:select_step",
        "legacy.ipynb:cell 5: + task:donnees_brutes",
        "legacy.ipynb:cell 8: + setup",
        "legacy.ipynb:cell 10: + task:select_step_2",
    ]
    assert cell_tags(notebook)[0] == ["hide-input", "setup"]  # foreign tags kept
    nbformat.validate(nbformat.read(notebook, as_version=4))
    tagged, found = tags.layout(read_notebook(notebook)[0])
    assert not tagged.inferred
    assert [d.code for d in found] == []
    kept = [(s.name, s.cells) for s in inferred.tasks if s.name not in ("start", "helpers_step")]
    assert [(s.name, s.cells) for s in tagged.tasks] == kept
    assert [s.cells for s in tagged.sections if s.kind.value == "setup"] == [(0, 7)]
    assert run_cli("check", str(notebook)).returncode == 0


# --- every other command leaves the notebook alone -------------------------------------------


@pytest.mark.parametrize("name", ["churn.ipynb", "untagged_sales.ipynb", "kale_style.ipynb"])
@pytest.mark.parametrize("command", ["convert", "check"])
def test_other_commands_never_touch_the_notebook(tmp_path: Path, name: str,
                                                 command: str) -> None:
    notebook = copy(name, tmp_path)
    before = snapshot(notebook)
    args = [command, str(notebook)] + (["-o", str(tmp_path / "out")] if command == "convert"
                                       else [])
    done = run_cli(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot(notebook) == before


@pytest.mark.parametrize("command", ["convert", "check"])
def test_failing_commands_never_touch_the_notebook(tmp_path: Path, command: str) -> None:
    notebook = _notebook(tmp_path / "dup.ipynb", [
        ("code", "x = 1", ["task:load"]),
        ("code", "y = x", ["task:load"]),
    ])
    os.utime(notebook, ns=(OLD * 10**9, OLD * 10**9))
    before = snapshot(notebook)
    args = [command, str(notebook)] + (["-o", str(tmp_path / "out")] if command == "convert"
                                       else [])
    done = run_cli(*args)
    assert done.returncode == 1
    assert "dup.ipynb:cell 2: NB203 " in done.stderr
    assert snapshot(notebook) == before
