"""Shared fixtures: paths, and the --update-golden flag for golden tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures" / "notebooks"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/*/expected from the current output")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def run_cli(*args: str, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the real `nb2pipe` command in a subprocess."""
    return subprocess.run([sys.executable, "-m", "nb2pipe", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MPLBACKEND": "Agg", **(env or {})})


def run_in(project: Path, *command: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run a command in a generated project with this interpreter."""
    return subprocess.run([sys.executable, *command], cwd=project, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "MPLBACKEND": "Agg"})
