"""Real end-to-end runs: convert, `ploomber build`, pytest in the generated
project, and the proof that every product equals the notebook's value."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES, run_cli, run_in
from nb2pipe.equivalence import check as check_equivalence

EXAMPLES = ["churn.ipynb", "kale_style.ipynb", "untagged_sales.ipynb"]


def _copy_fixture(name: str, tmp_path: Path) -> Path:
    """Work on a copy next to its data, as a user's notebook folder."""
    folder = tmp_path / "nb"
    shutil.copytree(FIXTURES, folder, ignore=shutil.ignore_patterns("bad"))
    return folder / name


@pytest.fixture(scope="module")
def churn_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("churn")
    notebook = _copy_fixture("churn.ipynb", tmp)
    out = tmp / "out"
    done = run_cli("convert", str(notebook), "-o", str(out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_pipeline_reproduces_every_value_of_the_notebook(name: str, tmp_path: Path) -> None:
    notebook = _copy_fixture(name, tmp_path)
    before = notebook.read_bytes()
    out = tmp_path / "out"
    done = run_cli("convert", str(notebook), "-o", str(out))
    assert done.returncode == 0, done.stderr
    report = check_equivalence(notebook, out)
    assert report.ran and report.built, report.error
    assert report.rows, "a pipeline without products proves nothing"
    assert report.same, report.first_divergence
    tests = run_in(out, "-m", "pytest", "-q", "-p", "no:cacheprovider")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert " passed" in tests.stdout and "skipped" not in tests.stdout
    assert notebook.read_bytes() == before


@pytest.mark.slow
def test_generated_test_fails_when_the_contract_breaks(churn_project: Path,
                                                       tmp_path: Path) -> None:
    project = churn_project.parent / "broken"  # next to the original: same workdir
    shutil.copytree(churn_project, project, dirs_exist_ok=True)
    module = project / "churn" / "tasks" / "clean.py"
    text = module.read_text()
    assert "def clean(raw, *, call_limit=3):" in text
    module.write_text(text.replace("def clean(raw, *, call_limit=3):",
                                   "def clean(frame, *, call_limit=3):"))
    done = run_in(project, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                  "tests/test_clean.py")
    assert done.returncode == 1
    assert "test_function_signature FAILED" in done.stdout or "1 failed" in done.stdout
    untouched = run_in(project, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                       "tests/test_load.py")
    assert untouched.returncode == 0, untouched.stdout


def test_a_test_cell_can_fail(churn_project: Path, tmp_path: Path) -> None:
    """The `test` cell of task clean runs on the products and can fail."""
    project = churn_project.parent / "failing"  # next to the original: same workdir
    shutil.copytree(churn_project, project, dirs_exist_ok=True)
    build = run_in(project, "-c", "import sys; from ploomber_cli.cli import cmd_router;"
                   " sys.exit(cmd_router())", "build")
    assert build.returncode == 0, build.stderr
    product = project / "products" / "churn" / "clean" / "n_customers.json"
    product.write_text("1")
    done = run_in(project, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_clean.py")
    assert done.returncode == 1 and "test_cell_" in done.stdout


def test_generated_code_passes_pyflakes_and_black(churn_project: Path) -> None:
    import black
    from pyflakes.api import check
    from pyflakes.reporter import Reporter
    import io

    files = sorted(churn_project.rglob("*.py"))
    assert len(files) >= 8
    for path in files:
        text = path.read_text()
        out, err = io.StringIO(), io.StringIO()
        assert check(text, str(path), Reporter(out, err)) == 0, out.getvalue() + err.getvalue()
        assert black.format_str(text, mode=black.Mode()) == text, path
        assert "nb2pipe" in text.splitlines()[0] + text[:400], f"{path} has no header"


def test_converting_twice_gives_the_same_bytes(churn_project: Path) -> None:
    notebook = (churn_project / ".." / "nb" / "churn.ipynb").resolve()
    first = {p: p.read_bytes() for p in churn_project.rglob("*") if p.is_file()}
    done = run_cli("convert", str(notebook), "-o", str(churn_project))
    assert done.returncode == 0, done.stderr
    assert {p: p.read_bytes() for p in churn_project.rglob("*") if p.is_file()} == first


@pytest.mark.parametrize("name", EXAMPLES)
def test_output_does_not_depend_on_hash_seed(name: str, tmp_path: Path) -> None:
    """Set iteration order changes with PYTHONHASHSEED; the output must not."""
    notebook = _copy_fixture(name, tmp_path)
    trees = []
    for seed in ("1", "2"):
        out = tmp_path / f"out{seed}"
        assert run_cli("convert", str(notebook), "-o", str(out),
                       env={"PYTHONHASHSEED": seed}).returncode == 0
        trees.append({p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()})
    assert trees[0] == trees[1]


def test_edited_files_are_never_overwritten_without_force(churn_project: Path,
                                                          tmp_path: Path) -> None:
    notebook = (churn_project / ".." / "nb" / "churn.ipynb").resolve()
    out = tmp_path / "out"
    assert run_cli("convert", str(notebook), "-o", str(out)).returncode == 0
    edited = out / "churn" / "tasks" / "train.py"
    edited.write_text(edited.read_text() + "\n# my change\n")
    mine = out / "notes.txt"
    mine.write_text("keep me")
    done = run_cli("convert", str(notebook), "-o", str(out))
    assert done.returncode == 1
    assert "NB502" in done.stderr and "churn/tasks/train.py" in done.stderr
    assert edited.read_text().endswith("# my change\n")
    done = run_cli("convert", str(notebook), "-o", str(out), "--force")
    assert done.returncode == 0
    assert "# my change" not in edited.read_text()
    assert mine.read_text() == "keep me"


def test_foreign_output_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "important.csv").write_text("a,b\n")
    done = run_cli("convert", str(FIXTURES / "churn.ipynb"), "-o", str(out))
    assert done.returncode == 1 and "NB501" in done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["important.csv"]


def test_folder_conversion_makes_one_pipeline_per_notebook(tmp_path: Path) -> None:
    folder = tmp_path / "nbs"
    folder.mkdir()
    for name in ("churn.ipynb", "kale_style.ipynb"):
        shutil.copy(FIXTURES / name, folder / name)
    shutil.copytree(FIXTURES / "data", folder / "data")
    out = tmp_path / "out"
    done = run_cli("convert", str(folder), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert (out / "pipeline.churn.yaml").exists() and (out / "pipeline.kale_style.yaml").exists()
    assert (out / "churn" / "tasks" / "load.py").exists()
    assert (out / "kale_style" / "tasks").is_dir()


def test_manifest_has_the_spec_fields(churn_project: Path) -> None:
    import json

    manifest = json.loads((churn_project / ".nb2pipe" / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["nb2pipe_version"]
    assert manifest["source"].endswith("churn.ipynb")
    assert manifest["content_hash"].startswith("sha256:")
    names = [t["name"] for t in manifest["tasks"]]
    assert names == ["load", "clean", "features", "train", "report"]
    clean = manifest["tasks"][1]
    assert clean["upstream"] == ["load"]
    assert {"variable": "raw", "path": "products/churn/clean/raw.parquet",
            "format": "parquet"} in clean["products"]
    assert all(isinstance(c, int) for c in clean["cells"])
    assert manifest["notebooks"][0]["tasks"] == manifest["tasks"]
    for path, recorded in manifest["files"].items():
        assert (churn_project / path).is_file(), path
        assert recorded.startswith("sha256:")
