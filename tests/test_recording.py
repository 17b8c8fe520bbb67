"""`convert --record`: real kernels, real fixtures, generated tests that really run.

Every test here runs notebooks in fresh kernels (nbclient + ipykernel), so they
are marked slow.  The generated projects' own pytest is run in a subprocess,
exactly as a user would run it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES, run_cli, run_in

pytestmark = pytest.mark.slow


def notebook(folder: Path, cells: list[tuple[list[str], str]], name: str = "nb") -> Path:
    """An .ipynb of code cells with the given tags."""
    path = folder / f"{name}.ipynb"
    path.write_text(json.dumps({
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                    "display_name": "Python 3"},
                     "language_info": {"name": "python"}},
        "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {"tags": tags},
                   "source": source, "outputs": [], "execution_count": None}
                  for i, (tags, source) in enumerate(cells)],
    }))
    return path


def pytest_in(project: Path, *args: str) -> subprocess.CompletedProcess:
    return run_in(project, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore",
                  *args)


def manifest_values(out: Path) -> list[dict]:
    manifest = json.loads((out / ".nb2pipe" / "manifest.json").read_text())
    return manifest["notebooks"][0]["recording"]["values"]


def copy_beside(project: Path, tmp_path: Path) -> Path:
    """A copy next to the original: its `workdir` (relative) still finds the notebook."""
    copy = project.parent / f"copy-{tmp_path.name}"
    shutil.copytree(project, copy)
    return copy


@pytest.fixture(scope="module")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The churn example converted with --record (once for the module)."""
    tmp = tmp_path_factory.mktemp("churn")
    shutil.copy(FIXTURES / "churn.ipynb", tmp / "churn.ipynb")
    shutil.copytree(FIXTURES / "data", tmp / "data")
    done = run_cli("convert", str(tmp / "churn.ipynb"), "-o", str(tmp / "out"), "--record")
    assert done.returncode == 0, done.stdout + done.stderr
    return tmp / "out"


def test_recorded_tests_pass_and_a_one_line_change_fails_only_its_task(
        churn: Path, tmp_path: Path) -> None:
    project = copy_beside(churn, tmp_path)
    done = pytest_in(project, "-k", "recorded")
    assert done.returncode == 0, done.stdout
    assert "5 passed" in done.stdout  # one recorded test per task, no build needed

    clean = project / "churn" / "tasks" / "clean.py"
    text = clean.read_text()
    changed = text.replace("n_customers += len(raw)", "n_customers += len(raw) - 1")
    assert changed != text
    clean.write_text(changed)
    done = pytest_in(project, "-k", "recorded")
    assert done.returncode == 1
    assert "FAILED tests/test_clean.py::test_reproduces_the_recorded_run" in done.stdout
    assert "n_customers: " in done.stdout
    assert "1 failed, 4 passed" in done.stdout


def test_a_changed_dataframe_names_the_column(churn: Path, tmp_path: Path) -> None:
    project = copy_beside(churn, tmp_path)
    clean = project / "churn" / "tasks" / "clean.py"
    text = clean.read_text()
    clean.write_text(text.replace('.astype("category")', '.astype("str")'))
    done = pytest_in(project, "-k", "recorded")
    assert "1 failed, 4 passed" in done.stdout
    assert "raw: " in done.stdout and "plan" in done.stdout


def test_signatures_are_typed_from_the_recording(churn: Path) -> None:
    clean = (churn / "churn" / "tasks" / "clean.py").read_text()
    assert ("def clean(raw: pd.DataFrame, *, call_limit: int = 3) -> tuple[pd.DataFrame, int]:"
            in clean)
    train = (churn / "churn" / "tasks" / "train.py").read_text()
    assert ") -> LogisticRegression:" in train
    load = (churn / "churn" / "tasks" / "load.py").read_text()
    assert 'def load(*, data_path: str = "data/customers.csv") -> pd.DataFrame:' in load


def test_serializers_follow_the_observed_types(churn: Path) -> None:
    manifest = json.loads((churn / ".nb2pipe" / "manifest.json").read_text())
    formats = {(t["name"], p["variable"]): p["format"]
               for t in manifest["tasks"] for p in t["products"]}
    # statically unknown, observed as arrays: npy rather than pickle
    assert formats[("features", "target")] == "npy"
    assert formats[("train", "model")] == "joblib"
    assert formats[("load", "raw")] == "parquet"


def test_the_manifest_says_how_each_value_is_stored(churn: Path) -> None:
    manifest = json.loads((churn / ".nb2pipe" / "manifest.json").read_text())
    recording = manifest["notebooks"][0]["recording"]
    assert recording["runs"] == 2
    assert recording["tested"] == ["load", "clean", "features", "train", "report"]
    stored = 0
    for value in recording["values"]:
        assert value["strategy"] in {"full", "fingerprint", "loose", "sample", "recomputed",
                                     "none"}
        if value["strategy"] != "none":
            path = churn / recording["data"] / value["path"]
            assert path.is_file(), value
            stored += 1
    assert stored >= 15
    files = [p for p in (churn / recording["data"]).rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) == recording["bytes"] < 20 * 1024 * 1024
    # the input of a task is the file its producer's output was stored in: stored once
    inputs = {v["path"] for v in recording["values"] if v["side"] == "input"}
    outputs = {v["path"] for v in recording["values"] if v["side"] == "output"}
    assert inputs <= outputs


def test_unseeded_randomness_is_reported_and_compared_loosely(tmp_path: Path) -> None:
    path = notebook(tmp_path, [
        (["task:draw"], "import numpy as np\nx = np.random.rand(5)\nsize = len(x)"),
        (["task:double"], "y = x * 2\nn = size + 1"),
    ])
    out = tmp_path / "out"
    done = run_cli("convert", str(path), "-o", str(out), "--record")
    assert done.returncode == 0, done.stderr
    assert "nb.ipynb:cell 1:2:1: NB604 `x` differs between two runs" in done.stdout
    assert "NB604 `y`" not in done.stdout, "reported where the randomness starts only"
    values = {(v["task"], v["side"], v["variable"]): v for v in manifest_values(out)}
    assert values[("draw", "output", "x")]["strategy"] == "loose"
    assert values[("double", "input", "x")]["strategy"] == "full"
    assert values[("double", "output", "y")]["strategy"] == "loose"
    # equal in both runs, but made by a random task: loose in its own test...
    assert values[("draw", "output", "size")]["stable"]
    assert values[("draw", "output", "size")]["strategy"] == "loose"
    # ...while a later task's test, from recorded inputs, stays exact
    assert values[("double", "output", "n")]["strategy"] == "full"
    assert not values[("double", "output", "n")]["repeatable"]
    for _ in range(2):  # never flaky
        assert pytest_in(out, "-k", "recorded").returncode == 0
    done = run_cli("verify", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recording  unstable" in done.stdout
    # loose still means something: a different dtype or number of dimensions fails
    # (not the number of rows: how many survive a random filter may vary)
    double = out / "nb" / "tasks" / "double.py"
    double.write_text(double.read_text().replace("y = x * 2", "y = (x * 2).astype(int)"))
    done = pytest_in(out, "-k", "recorded")
    assert "1 failed, 1 passed" in done.stdout and "dtype" in done.stdout


SHUFFLE = """import numpy as np


def centres(values):
    order = np.random.permutation(len(values))
    return sorted(values[i] for i in order)
"""


@pytest.mark.parametrize("load, fit", [
    ("import numpy as np\nfrom shuffle import centres\nnp.random.seed(0)\n", ""),
    ("import numpy as np\nfrom shuffle import centres\n", ""),
    # numpy first imported in the task that draws: no state before it to compare
    ("", "from shuffle import centres\n"),
], ids=["seeded", "unseeded", "imported-in-the-task"])
def test_a_draw_inside_a_local_module_is_seen_at_run_time(tmp_path: Path, load: str,
                                                          fit: str) -> None:
    # The analysis cannot see `np.random.permutation` inside shuffle.py, and both
    # runs give the same `result` (sorted), as k-means from a random start can
    # find the same clusters twice: the generator's state gives the draw away.
    (tmp_path / "shuffle.py").write_text(SHUFFLE)
    path = notebook(tmp_path, [
        (["task:load"], f"{load}values = [3, 1, 2]"),
        (["task:fit"], f"{fit}result = centres(values)"),
        (["task:report"], "total = sum(result)"),
    ])
    out = tmp_path / "out"
    done = run_cli("convert", str(path), "-o", str(out), "--record")
    assert done.returncode == 0, done.stderr
    values = {(v["task"], v["side"], v["variable"]): v for v in manifest_values(out)}
    assert values[("fit", "output", "result")]["stable"]
    if "seed" in load:
        assert "NB609" not in done.stdout
        assert values[("fit", "output", "result")]["strategy"] == "full"
        assert values[("report", "output", "total")]["repeatable"]
        return
    assert ("nb.ipynb:cell 2: NB609 task fit draws from the unseeded global generator "
            "`numpy.random`") in done.stdout
    assert done.stdout.count("NB609") == 1, "only the task that draws"
    assert values[("fit", "output", "result")]["strategy"] == "loose"
    assert values[("load", "output", "values")]["strategy"] == "full"
    assert values[("report", "output", "total")]["strategy"] == "full"
    assert not values[("report", "output", "total")]["repeatable"]
    assert pytest_in(out, "-k", "recorded").returncode == 0


def test_a_value_pickle_cannot_save_is_found_at_conversion(tmp_path: Path) -> None:
    path = notebook(tmp_path, [
        (["task:make"], "numbers = (n * n for n in range(4))"),
        (["task:use"], "total = sum(numbers)"),
    ])
    out = tmp_path / "out"
    done = run_cli("convert", str(path), "-o", str(out), "--record")
    assert done.returncode == 1
    assert "nb.ipynb:cell 1:1:1: NB605 `numbers` cannot be saved" in done.stderr
    assert "generator" in done.stderr
    assert "recreate it in the task that uses it, merge the two tasks" in done.stderr
    assert not out.exists()


def test_a_rebinding_the_analysis_cannot_see_is_an_error(tmp_path: Path) -> None:
    path = notebook(tmp_path, [
        (["task:first"], "data = [1, 2, 3]"),
        (["task:second"], "globals()['data'] = [4]\nextra = 1"),
        (["task:third"], "n = len(data) + extra"),
    ])
    out = tmp_path / "out"
    done = run_cli("convert", str(path), "-o", str(out), "--record")
    assert done.returncode == 1
    assert ("NB606 at run time task second rebinds `data`, which the static analysis did "
            "not see; task third reads it and would get it from task first") in done.stderr
    assert not out.exists()


def test_a_failing_cell_is_named_with_its_traceback(tmp_path: Path) -> None:
    path = notebook(tmp_path, [
        (["task:one"], "a = 1"),
        ([], "b = a + 1"),
        (["task:two"], "raise ValueError('boom at two')"),
    ])
    original = path.read_bytes()
    out = tmp_path / "out"
    done = run_cli("convert", str(path), "-o", str(out), "--record")
    assert done.returncode == 1
    assert "nb.ipynb:cell 3: NB601 the notebook failed while recording: cell 3 failed: " \
           "ValueError: boom at two" in done.stderr
    assert "raise ValueError" in done.stderr  # the kernel's traceback
    assert "Traceback (most recent call last)" not in done.stderr.split("NB601")[0]
    assert not out.exists()
    assert path.read_bytes() == original


def test_a_cell_over_the_timeout_is_stopped_and_named(tmp_path: Path) -> None:
    path = notebook(tmp_path, [
        (["task:one"], "a = 1"),
        (["task:slow"], "import time\ntime.sleep(60)\nb = a"),
    ])
    out = tmp_path / "out"
    done = run_cli("convert", str(path), "-o", str(out), "--record", "--timeout", "3")
    assert done.returncode == 1
    assert "nb.ipynb:cell 2: NB603 cell 2 timed out after 3 s" in done.stderr
    assert "time.sleep(60)" in done.stderr
    assert not out.exists()


def test_an_interpreter_without_ipykernel_says_how_to_install_it(tmp_path: Path) -> None:
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    path = notebook(tmp_path, [(["task:one"], "a = 1")])
    out = tmp_path / "out"
    done = run_cli("convert", str(path), "-o", str(out), "--record",
                   "--python", str(venv / "bin" / "python"))
    assert done.returncode == 1
    assert "NB602" in done.stderr and "pip install ipykernel" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()


def test_values_over_the_cap_become_fingerprints_and_samples_that_can_fail(
        tmp_path: Path) -> None:
    path = notebook(tmp_path, [
        (["task:big"], "import numpy as np\narr = np.arange(300_000.0)"),
        (["task:small"], "total = float(arr[::2].sum())"),
        (["task:pick"], "item = float(arr[250_000])"),
    ])
    out = tmp_path / "out"
    done = run_cli("convert", str(path), "-o", str(out), "--record", "--fixture-cap", "1")
    assert done.returncode == 0, done.stderr
    # 2.4 MB: the output is a fingerprint, the inputs row samples
    values = {(v["task"], v["side"], v["variable"]): v for v in manifest_values(out)}
    assert values[("big", "output", "arr")]["strategy"] == "fingerprint"
    assert values[("small", "input", "arr")]["strategy"] == "sample"
    assert values[("small", "output", "total")]["strategy"] == "recomputed"
    assert sum(v["bytes"] for v in values.values() if v["strategy"] != "none") <= 1024 * 1024
    # a task that fails on the sample gets no test, and says why
    assert ("NB607 task pick gets no recorded test: it fails on a row sample of its inputs "
            "(IndexError") in done.stdout
    assert values[("pick", "input", "arr")]["strategy"] == "none"
    assert "test_reproduces_the_recorded_run" not in (out / "tests" / "test_pick.py").read_text()
    assert "row sample" in (out / "tests" / "test_small.py").read_text()
    assert pytest_in(out, "-k", "recorded").returncode == 0

    big = out / "nb" / "tasks" / "big.py"
    big.write_text(big.read_text().replace("np.arange(300_000.0)", "np.arange(300_000.0) + 1"))
    small = out / "nb" / "tasks" / "small.py"
    small.write_text(small.read_text().replace("arr[::2]", "arr[1::2]"))
    done = pytest_in(out, "-k", "recorded")
    assert "2 failed" in done.stdout, done.stdout
    assert "arr: ['sum']" in done.stdout or "sum" in done.stdout
    assert "total: " in done.stdout


def test_verify_compares_with_the_recording_and_catches_an_edit(churn: Path,
                                                                tmp_path: Path) -> None:
    project = copy_beside(churn, tmp_path)
    done = run_cli("verify", str(project))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all 12 products match the notebook" in done.stdout
    assert "notebook " not in done.stdout.split("verdict", 1)[1], "no product needed a rerun"
    assert "recording  same" in done.stdout

    features = project / "churn" / "tasks" / "features.py"
    text = features.read_text()
    assert "test_fraction" in text
    features.write_text(text.replace("np.random.permutation(len(features))",
                                     "np.arange(len(features))"))
    done = run_cli("verify", str(project))
    assert done.returncode == 1
    assert "first divergence: task 'features', variable 'shuffled'" in done.stderr
    assert "load      raw                      recording  same" in done.stdout


def test_recorded_project_is_black_and_pyflakes_clean(churn: Path) -> None:
    from pyflakes.api import checkPath
    from pyflakes.reporter import Reporter
    import io

    import black

    for path in sorted(churn.rglob("*.py")):
        text = path.read_text()
        assert black.format_str(text, mode=black.Mode()) == text, path
        found = io.StringIO()
        assert checkPath(str(path), Reporter(found, found)) == 0, found.getvalue()
    assert (churn / "churn" / "compare.py").is_file()


def test_recording_again_gives_the_same_bytes(churn: Path) -> None:
    before = {p: p.read_bytes() for p in churn.rglob("*") if p.is_file()}
    source = churn.parent / "churn.ipynb"
    done = run_cli("convert", str(source), "-o", str(churn), "--record")
    assert done.returncode == 0, done.stderr
    assert "recorded churn: 2 runs of the notebook" in done.stdout
    after = {p: p.read_bytes() for p in churn.rglob("*") if p.is_file()}
    assert after == before
