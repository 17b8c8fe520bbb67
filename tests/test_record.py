"""run_and_capture(): real notebooks, real kernels (nbclient + ipykernel)."""

from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from nb2pipe.record import run_and_capture  # noqa: E402


def write_notebook(path: Path, cells: list) -> Path:
    """Cells are code strings, or ``("md", text)`` for Markdown."""
    nb = nbformat.v4.new_notebook()
    for cell in cells:
        if isinstance(cell, tuple):
            nb.cells.append(nbformat.v4.new_markdown_cell(cell[1]))
        else:
            nb.cells.append(nbformat.v4.new_code_cell(cell))
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def load(capture, boundary: int, name: str):
    file_name = capture.captured[boundary][name]
    with open(capture.values_dir / str(boundary) / file_name, "rb") as f:
        return pickle.load(f)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


def test_captures_values_as_they_were_at_each_boundary(folder, tmp_path):
    nb = write_notebook(
        folder / "nb.ipynb",
        [
            "x = 1\nitems = [1, 2]",
            ("md", "# Next"),
            "x = x + 1\nitems.append(3)\ntotal = sum(items)",
        ],
    )
    boundaries = [(0, ["x", "items"]), (2, ["x", "items", "total"]), (2, ["total"])]
    cap = run_and_capture(nb, boundaries, tmp_path / "values")
    assert cap.ok, cap.error
    assert cap.error == "" and cap.failed_cell is None
    assert cap.captured == {
        0: {"x": "x.pkl", "items": "items.pkl"},
        1: {"x": "x.pkl", "items": "items.pkl", "total": "total.pkl"},
        2: {"total": "total.pkl"},
    }
    assert (load(cap, 0, "x"), load(cap, 0, "items")) == (1, [1, 2])
    assert (load(cap, 1, "x"), load(cap, 1, "items"), load(cap, 1, "total")) == (
        2,
        [1, 2, 3],
        6,
    )
    assert load(cap, 2, "total") == 6
    assert cap.missing == {0: (), 1: (), 2: ()}
    assert cap.unpicklable == {0: {}, 1: {}, 2: {}}
    assert cap.values_dir == tmp_path / "values"
    assert cap.seconds > 0


def test_capture_leaves_no_trace_in_the_kernel(folder, tmp_path):
    nb = write_notebook(
        folder / "nb.ipynb",
        [
            "x = 1\nbefore = set(globals())",
            "new_names = sorted(set(globals()) - before - {'before'})\n"
            "history = len(In)\ncount = get_ipython().execution_count",
        ],
    )
    cap = run_and_capture(
        nb,
        [(0, ["x"]), (0, ["x"]), (1, ["new_names", "history", "count"])],
        tmp_path / "v",
    )
    assert cap.ok, cap.error
    # Only IPython's own input record of cell 2 appears: no helper, no extra history.
    assert load(cap, 2, "new_names") == ["_i2"]
    assert load(cap, 2, "history") == 3  # '', cell 1, cell 2
    # The execution counter is what it is without the earlier captures.
    alone = run_and_capture(nb, [(1, ["count"])], tmp_path / "alone")
    assert load(cap, 2, "count") == load(alone, 0, "count")


def test_missing_names_are_reported_per_boundary(folder, tmp_path):
    nb = write_notebook(folder / "nb.ipynb", ["a = 1", "b = 2\ndel a"])
    cap = run_and_capture(nb, [(0, ["a", "b"]), (1, ["a", "b"])], tmp_path / "v")
    assert cap.ok, cap.error
    assert cap.missing == {0: ("b",), 1: ("a",)}
    assert cap.captured == {0: {"a": "a.pkl"}, 1: {"b": "b.pkl"}}
    assert not (tmp_path / "v" / "0" / "b.pkl").exists()


def test_unpicklable_values_are_reported_with_the_reason(folder, tmp_path):
    nb = write_notebook(
        folder / "nb.ipynb",
        [
            "handle = open('data.txt', 'w')\n"
            "numbers = (i for i in range(3))\n"
            "fine = {'k': [1.5]}",
        ],
    )
    cap = run_and_capture(nb, [(0, ["handle", "numbers", "fine"])], tmp_path / "v")
    assert cap.ok, cap.error
    assert set(cap.unpicklable[0]) == {"handle", "numbers"}
    assert "TextIOWrapper" in cap.unpicklable[0]["handle"]
    assert "generator" in cap.unpicklable[0]["numbers"]
    assert cap.captured[0] == {"fine": "fine.pkl"}
    assert load(cap, 0, "fine") == {"k": [1.5]}
    assert sorted(p.name for p in (tmp_path / "v" / "0").iterdir()) == ["fine.pkl"]


def test_notebook_classes_are_never_pickled_by_reference(folder, tmp_path):
    nb = write_notebook(folder / "nb.ipynb", ["class Box:\n    pass\n\nbox = Box()"])
    cap = run_and_capture(nb, [(0, ["box"])], tmp_path / "v")
    assert cap.ok, cap.error
    if (
        importlib.util.find_spec("cloudpickle") is None
    ):  # the kernel runs sys.executable
        assert "defined in the notebook" in cap.unpicklable[0]["box"]
        assert "cloudpickle" in cap.unpicklable[0]["box"]
    else:  # captured by value: loads in a process that never saw the class
        assert cap.captured[0] == {"box": "box.pkl"}
        path = tmp_path / "v" / "0" / "box.pkl"
        code = f"import pickle; print(type(pickle.load(open({str(path)!r}, 'rb'))).__name__)"
        assert (
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True
            ).stdout
            == "Box\n"
        )


def test_failing_cell_is_reported_by_its_original_index(folder, tmp_path):
    nb = write_notebook(
        folder / "nb.ipynb",
        [("md", "# Intro"), "x = 1", "y = 1 / 0", ("md", "## After"), "z = 3"],
    )
    cap = run_and_capture(nb, [(1, ["x"]), (2, ["y"]), (4, ["z"])], tmp_path / "v")
    assert not cap.ok
    assert cap.failed_cell == 2
    first = cap.error.splitlines()[0]
    assert first == "cell 2 failed: ZeroDivisionError: division by zero"
    assert "----> 1 y = 1 / 0" in cap.error
    assert "\x1b[" not in cap.error
    assert cap.captured == {0: {"x": "x.pkl"}}  # later boundaries never ran
    assert 1 not in cap.missing and 2 not in cap.missing


def test_failed_cell_index_counts_skipped_and_markdown_cells(folder, tmp_path):
    nb = write_notebook(
        folder / "nb.ipynb",
        [("md", "# A"), "ok = 1", "skipped = 1", "raise ValueError('boom')"],
    )
    cap = run_and_capture(nb, [(3, [])], tmp_path / "v", skip_cells={2})
    assert cap.failed_cell == 3
    assert cap.error.startswith("cell 3 failed: ValueError: boom")


def test_timeout_names_the_running_cell(folder, tmp_path):
    nb = write_notebook(
        folder / "nb.ipynb", ["x = 1", "import time\ntime.sleep(10)", "y = 2"]
    )
    cap = run_and_capture(nb, [(0, ["x"]), (2, ["y"])], tmp_path / "v", timeout=2)
    assert not cap.ok
    assert cap.failed_cell == 1
    assert cap.error.startswith("cell 1 timed out after 2 s")
    assert "time.sleep(10)" in cap.error
    assert cap.captured == {0: {"x": "x.pkl"}}
    assert cap.seconds < 10


def test_skip_cells_are_not_executed(folder, tmp_path):
    nb = write_notebook(
        folder / "nb.ipynb",
        ["x = 1", "x = 100\nraise RuntimeError('should be skipped')", "y = x + 1"],
    )
    cap = run_and_capture(
        nb, [(1, ["x"]), (2, ["x", "y"])], tmp_path / "v", skip_cells=[1]
    )
    assert cap.ok, cap.error
    assert load(cap, 0, "x") == 1  # the boundary after a skipped cell still runs
    assert (load(cap, 1, "x"), load(cap, 1, "y")) == (1, 2)


def test_runs_in_the_notebook_folder_with_agg_backend(folder, tmp_path):
    nb = write_notebook(
        folder / "nb.ipynb",
        [
            "import os\ncwd = os.getcwd()\nbackend = os.environ.get('MPLBACKEND')\nopen('written.txt', 'w').write('hi')"
        ],
    )
    cap = run_and_capture(nb, [(0, ["cwd", "backend"])], tmp_path / "v")
    assert cap.ok, cap.error
    assert Path(load(cap, 0, "cwd")).resolve() == folder.resolve()
    assert load(cap, 0, "backend") == "Agg"
    assert (folder / "written.txt").read_text() == "hi"


def test_source_notebook_is_never_written(folder, tmp_path):
    nb = write_notebook(folder / "nb.ipynb", ["x = 1", "print(x)", "1 / 0"])
    os.utime(nb, (1_000_000_000, 1_000_000_000))
    before = nb.read_bytes()
    run_and_capture(nb, [(0, ["x"]), (1, ["x"])], tmp_path / "v")
    assert nb.read_bytes() == before
    assert nb.stat().st_mtime == 1_000_000_000
    assert sorted(p.name for p in folder.iterdir()) == ["nb.ipynb"]


def test_stale_values_from_an_earlier_run_are_removed(folder, tmp_path):
    nb = write_notebook(folder / "nb.ipynb", ["x = 1"])
    stale = tmp_path / "v" / "0" / "gone.pkl"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    cap = run_and_capture(nb, [(0, ["x"])], tmp_path / "v")
    assert cap.ok, cap.error
    assert not stale.exists()


def test_text_notebooks_are_read_with_jupytext(folder, tmp_path):
    pytest.importorskip("jupytext")
    script = folder / "nb.py"
    script.write_text("# %%\nx = 1\n\n# %% [markdown]\n# Title\n\n# %%\ny = x + 1\n")
    cap = run_and_capture(script, [(2, ["y"])], tmp_path / "v")
    assert cap.ok, cap.error
    assert load(cap, 0, "y") == 2


def test_python_interpreter_runs_the_kernel(folder, tmp_path):
    nb = write_notebook(folder / "nb.ipynb", ["import sys\nexe = sys.executable"])
    cap = run_and_capture(nb, [(0, ["exe"])], tmp_path / "v", python=sys.executable)
    assert cap.ok, cap.error
    assert load(cap, 0, "exe") == sys.executable


def test_interpreter_without_ipykernel_says_how_to_install(folder, tmp_path):
    env = tmp_path / "bare"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(env)], check=True
    )
    nb = write_notebook(folder / "nb.ipynb", ["x = 1"])
    cap = run_and_capture(
        nb, [(0, ["x"])], tmp_path / "v", python=str(env / "bin" / "python")
    )
    assert not cap.ok
    assert "pip install ipykernel" in cap.error
    assert cap.captured == {}


def test_missing_interpreter_is_an_error_not_an_exception(folder, tmp_path):
    nb = write_notebook(folder / "nb.ipynb", ["x = 1"])
    cap = run_and_capture(
        nb, [(0, ["x"])], tmp_path / "v", python=str(tmp_path / "no-such-python")
    )
    assert not cap.ok
    assert "cannot run the kernel interpreter" in cap.error


def test_unknown_kernel_says_how_to_install(folder, tmp_path):
    nb = write_notebook(folder / "nb.ipynb", ["x = 1"])
    cap = run_and_capture(
        nb, [(0, ["x"])], tmp_path / "v", kernel_name="no-such-kernel"
    )
    assert not cap.ok
    assert "no such kernel: 'no-such-kernel'" in cap.error
    assert "pip install ipykernel" in cap.error


def test_bad_boundaries_are_programming_errors(folder, tmp_path):
    nb = write_notebook(folder / "nb.ipynb", ["x = 1"])
    with pytest.raises(ValueError, match="boundary cell 5"):
        run_and_capture(nb, [(5, ["x"])], tmp_path / "v")
    with pytest.raises(ValueError, match="identifiers"):
        run_and_capture(nb, [(0, ["not a name"])], tmp_path / "v")


def test_unreadable_notebook_is_an_error_not_an_exception(folder, tmp_path):
    bad = folder / "bad.ipynb"
    bad.write_text("{not json")
    cap = run_and_capture(bad, [(0, ["x"])], tmp_path / "v")
    assert not cap.ok
    assert cap.error.startswith(f"cannot read {bad}")


def test_relative_destination_is_relative_to_the_caller(folder, tmp_path, monkeypatch):
    nb = write_notebook(folder / "nb.ipynb", ["x = 1"])
    monkeypatch.chdir(tmp_path)
    cap = run_and_capture(nb, [(0, ["x"])], Path("values"))
    assert cap.ok, cap.error
    assert cap.values_dir == tmp_path / "values"
    assert (tmp_path / "values" / "0" / "x.pkl").exists()
    assert not (folder / "values").exists()
