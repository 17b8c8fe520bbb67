"""The CLI as a user meets it: help, exit codes, one clear message, no traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import FIXTURES, run_cli
from nb2pipe.codes import CODES
from nb2pipe.model import Severity

BAD = FIXTURES / "bad"


def _bad_cases() -> list[tuple[str, str]]:
    rows = []
    for line in (BAD / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0].endswith((".ipynb", ".py", ".txt")) and \
                cells[1] in CODES and CODES[cells[1]].severity is Severity.ERROR:
            rows.append((cells[0], cells[1]))
    return rows


@pytest.mark.parametrize("command", [[], ["convert"], ["check"], ["explain"]])
def test_help_everywhere(command: list[str]) -> None:
    done = run_cli(*command, "--help")
    assert done.returncode == 0
    assert "Usage:" in done.stdout


def test_version() -> None:
    done = run_cli("--version")
    assert done.returncode == 0 and "nb2pipe" in done.stdout


@pytest.mark.parametrize("name,code", _bad_cases())
def test_bad_input_is_one_message_exit_1_nothing_written(name: str, code: str,
                                                         tmp_path: Path) -> None:
    source = BAD / name
    before = source.read_bytes()
    out = tmp_path / "out"
    done = run_cli("convert", str(source), "-o", str(out))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert code in done.stderr
    assert re.search(rf"{re.escape(name)}(:cell \d+(:\d+:\d+)?)?: {code} ", done.stderr)
    assert not out.exists()
    assert source.read_bytes() == before


def test_missing_path_is_usage_error(tmp_path: Path) -> None:
    done = run_cli("convert", str(tmp_path / "nope.ipynb"), "-o", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "no such file" in done.stderr


def test_explain_known_and_unknown() -> None:
    done = run_cli("explain", "nb304")
    assert done.returncode == 0 and "NB304" in done.stdout and "import" in done.stdout
    assert run_cli("explain", "NB999").returncode == 2


def test_the_diagnostics_page_is_the_table() -> None:
    # docs/diagnostics.md is generated from nb2pipe/codes.py; a code added to
    # the table without regenerating it would be missing from the docs
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "docs" / "gen_diagnostics.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    page = script.with_name("diagnostics.md").read_text(encoding="utf-8")
    assert all(code in page for code in CODES)


def test_check_reports_and_exits_1_on_errors(tmp_path: Path) -> None:
    nb = tmp_path / "star.py"
    nb.write_text('# %% tags=["task:a"]\nfrom os.path import *\nx = join("a", "b")\n')
    done = run_cli("check", str(nb))
    assert done.returncode == 1
    assert "star.py:cell 1:1:1: NB304" in done.stdout + done.stderr


def test_check_clean_notebook_exits_0() -> None:
    done = run_cli("check", str(FIXTURES / "churn.ipynb"))
    assert done.returncode == 0, done.stdout + done.stderr
