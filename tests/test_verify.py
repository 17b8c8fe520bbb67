"""`nb2pipe verify` builds the pipeline for real and must catch an edited task."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES, run_cli


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(FIXTURES / "churn.ipynb", tmp_path / "churn.ipynb")
    shutil.copytree(FIXTURES / "data", tmp_path / "data")
    out = tmp_path / "out"
    assert run_cli("convert", str(tmp_path / "churn.ipynb"), "-o", str(out)).returncode == 0
    return out


@pytest.mark.slow
def test_verify_passes_then_catches_an_edited_task(project: Path) -> None:
    done = run_cli("verify", str(project))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all 12 products match the notebook" in done.stdout
    assert not (project / "products").exists(), "verify builds in a copy by default"
    assert not [p for p in project.parent.iterdir() if ".verify-" in p.name]

    clean = project / "churn" / "tasks" / "clean.py"
    text = clean.read_text()
    edited = text.replace('raw.dropna(subset=["monthly_charges"], inplace=True)',
                          'raw.fillna({"monthly_charges": 0.0}, inplace=True)')
    assert edited != text
    clean.write_text(edited)
    done = run_cli("verify", str(project))
    assert done.returncode == 1
    assert "first divergence: task 'clean', variable 'raw'" in done.stderr
    assert "load      raw" in done.stdout and "same" in done.stdout


def test_verify_outside_a_project_is_one_clear_error(tmp_path: Path) -> None:
    done = run_cli("verify", str(tmp_path))
    assert done.returncode == 1
    assert "no .nb2pipe/manifest.json" in done.stderr
    assert "Traceback" not in done.stderr
