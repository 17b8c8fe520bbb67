"""Golden tests of the generator: one folder per behaviour.

``tests/golden/<case>/case.py`` is a py:percent notebook (converted as
``<case>.py``, so its package is named after the case);
``expected/`` holds the files nb2pipe must generate from it (byte for
byte) and ``expected/diagnostics.txt`` what it must report.  After an
intended change, rewrite them with ``pytest tests/test_golden.py
--update-golden`` and review the diff like any code change.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nb2pipe.convert import convert

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "case.py").exists())
# Files that depend on the machine (installed versions, hashes of those) are not golden.
NOT_GOLDEN = {"requirements.txt", ".nb2pipe/manifest.json"}


def _generate(case: str, tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "nb"
    folder.mkdir()
    shutil.copy(GOLDEN / case / "case.py", folder / f"{case}.py")
    out = tmp_path / "out"
    result = convert(folder / f"{case}.py", out)
    files = {"diagnostics.txt": "".join(d.format() + "\n" for d in result.diagnostics)}
    if result.ok:
        for path in sorted(out.rglob("*")):
            rel = path.relative_to(out).as_posix()
            if path.is_file() and rel not in NOT_GOLDEN and not rel.endswith("serializers.py"):
                files[rel] = path.read_text(encoding="utf-8")
    return files


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, tmp_path: Path, update_golden: bool) -> None:
    files = _generate(case, tmp_path)
    expected_dir = GOLDEN / case / "expected"
    if update_golden:
        shutil.rmtree(expected_dir, ignore_errors=True)
        for rel, text in files.items():
            target = expected_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    expected = {p.relative_to(expected_dir).as_posix(): p.read_text(encoding="utf-8")
                for p in sorted(expected_dir.rglob("*")) if p.is_file()}
    assert sorted(files) == sorted(expected), "generated files differ from the golden list"
    for rel in expected:
        assert files[rel] == expected[rel], f"{case}/{rel} differs from its golden copy"


@pytest.mark.parametrize("cells, text", [
    ((0,), "1"),
    ((0, 1), "1, 2"),
    ((0, 1, 2), "1-3"),
    ((0, 1, 2, 5, 7, 8, 9, 10), "1-3, 6, 8-11"),
])
def test_cell_numbers_in_headers_and_docstrings(cells: tuple[int, ...], text: str) -> None:
    # a task of a hundred cells names them as a range, not a hundred numbers
    from nb2pipe.plan import cell_numbers

    assert cell_numbers(cells) == text
