"""The ``read`` stage: a notebook file → a ``Notebook`` of cells with masked code.

    raw bytes → text → notebook dict → checked structure → cells → masked code

``.ipynb`` files are parsed with ``json`` and checked by hand: nbformat's
validator costs about two seconds of import time, and the CLI must start in
well under one.  Jupytext text notebooks (``.py``, ``.md``, MyST) go through
jupytext, imported only when such a file is read.  Both paths meet at the same
notebook dict, so one set of checks covers them.

User mistakes never raise: a fatal one returns ``(None, diagnostics)``, the
others come back next to the notebook.  ``_Stop`` carries the fatal ones out
of nested helpers and never leaves this module.
"""

from __future__ import annotations

import ast
import hashlib
import json
import keyword
import re
import sys
import unicodedata
import warnings
from pathlib import Path
from typing import Any

from . import magics
from .codes import make
from .model import Cell, Diagnostic, Location, Notebook

MAX_BYTES = 256 * 1024 * 1024
"""Larger files are refused: real notebooks this big are nearly all outputs."""

CELL_KINDS = ("code", "markdown", "raw")

#: Text notebook extensions → the jupytext format to read them with.
TEXT_FORMATS = {".py": "py", ".md": "md", ".markdown": "md", ".myst": "myst",
                ".mystnb": "myst", ".mnb": "myst"}
SUPPORTED = (".ipynb", *TEXT_FORMATS)

#: Names a generated package must not take: they would shadow what the
#: pipeline imports (``tests`` is the generated test folder next to it).
SHADOWED = frozenset({
    "tests", "pandas", "numpy", "scipy", "sklearn", "matplotlib", "seaborn", "ploomber",
    "pytest", "nb2pipe", "joblib", "yaml", "requests", "torch", "tensorflow", "polars",
    "pyarrow", "notebook", "jupyter", "jupyter_core", "jupyter_client", "ipykernel", "ipython",
    "nbformat", "nbclient", "jupytext", "papermill", "jinja2", "click", "black", "networkx",
    "tqdm", "statsmodels", "xgboost", "lightgbm", "plotly", "sympy", "conftest", "products",
    "ploomber_cli", "ploomber_core", "pyflakes", "cloudpickle",
})


class _Stop(Exception):
    """Fatal findings: reading cannot go on.  Caught in ``read_notebook``."""

    def __init__(self, *diagnostics: Diagnostic) -> None:
        super().__init__(diagnostics)
        self.diagnostics = list(diagnostics)


def read_notebook(path: Path) -> tuple[Notebook | None, list[Diagnostic]]:
    """Read ``path`` into a ``Notebook``; ``None`` plus errors when it cannot be used."""
    path = Path(path)
    where = Location(path.name)
    try:
        raw = _read_bytes(path, where)
        data, fmt = _load(path, _decode(raw, where), where)
        cell_dicts = _check_notebook(data, where)
    except _Stop as stop:
        return None, stop.diagnostics
    cells, diagnostics = _cells(cell_dicts, where)
    diagnostics += _hidden_state(cells, where)
    if not any(_has_code(cell.code) for cell in cells):
        return None, [*diagnostics, make("NB105", where)]
    notebook = Notebook(path=path, name=package_name(path.stem), cells=tuple(cells),
                        content_hash="sha256:" + hashlib.sha256(raw).hexdigest(), format=fmt)
    return notebook, diagnostics


def package_name(stem: str) -> str:
    """A safe Python package name for a notebook called ``stem``.

    The name becomes a folder that tests import, so it must be an identifier
    and must not shadow the standard library or what the pipeline imports.
    """
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    name = re.sub(r"[^a-z0-9_]+", "_", ascii_stem.lower())
    name = re.sub(r"_+", "_", name).strip("_") or "notebook"
    if name[0].isdigit():
        name = "nb_" + name
    stdlib = {module.lower() for module in sys.stdlib_module_names}
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in stdlib | SHADOWED:
        name += "_nb"
    return name


# --- bytes and text ----------------------------------------------------------------------


def _read_bytes(path: Path, where: Location) -> bytes:
    """The file's bytes, after checking that it is a readable, supported file."""
    try:
        if path.is_dir():
            raise _Stop(make("NB107", where, detail=f"{path} is a directory"))
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise _Stop(make("NB107", where, detail=f"{size // 2**20} MB is more than the "
                                                    f"{MAX_BYTES // 2**20} MB nb2pipe reads"))
        _format_of(path, where)
        return path.read_bytes()
    except FileNotFoundError:
        raise _Stop(make("NB107", where, detail=f"{path} does not exist")) from None
    except OSError as error:
        raise _Stop(make("NB107", where, detail=f"{path}: {error.strerror or error}")) from None


def _format_of(path: Path, where: Location) -> str:
    """``ipynb`` or the jupytext format to read the file with."""
    suffix = path.suffix.lower()
    if suffix == ".ipynb":
        return "ipynb"
    if suffix in TEXT_FORMATS:
        return TEXT_FORMATS[suffix]
    supported = ", ".join(SUPPORTED)
    raise _Stop(make("NB107", where, detail=f"unsupported file type {path.suffix or '(none)'!r}; "
                                            f"nb2pipe reads {supported}"))


def _decode(raw: bytes, where: Location) -> str:
    """UTF-8 text (a BOM is accepted); binary files and other encodings are refused."""
    nul = raw.find(b"\0")
    if nul >= 0:
        raise _Stop(make("NB107", where, detail=f"binary content (a NUL byte at offset {nul})"))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        bad = raw[error.start : error.start + 1].hex()
        raise _Stop(make("NB107", where, detail=f"not UTF-8 text (byte 0x{bad} at offset "
                                                f"{error.start}); re-save it as UTF-8")) from None


# --- text → notebook dict ------------------------------------------------------------


def _load(path: Path, text: str, where: Location) -> tuple[dict[str, Any], str]:
    """The notebook as a dict, and the name of its format."""
    fmt = _format_of(path, where)
    if fmt == "ipynb":
        return _load_json(text, where), "ipynb"
    return _load_text(text, fmt, path.suffix, where)


def _load_json(text: str, where: Location) -> dict[str, Any]:
    """Parse an .ipynb file's JSON; the location of a syntax error goes in the message."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        detail = f"{error.msg} at line {error.lineno}, column {error.colno}"
        raise _Stop(make("NB101", where, detail=detail)) from None
    except RecursionError:
        raise _Stop(make("NB101", where, detail="it is nested too deeply")) from None
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        raise _Stop(make("NB101", where, detail=str(error))) from None
    if not isinstance(data, dict):
        raise _Stop(make("NB102", where, detail=f"the top level is {_kind(data)}, not an object"))
    return data


def _load_text(text: str, family: str, suffix: str, where: Location) -> tuple[dict[str, Any], str]:
    """Read a jupytext text notebook; its format is the one jupytext recognises."""
    import jupytext  # slow import: only text notebooks pay for it
    from jupytext.formats import guess_format

    ext = suffix.lower()
    name = guess_format(text, ext)[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            notebook = jupytext.reads(text, fmt=f"{ext[1:]}:{name}" if name else ext[1:])
    except Exception as error:  # noqa: BLE001 - any jupytext failure means a bad input file
        raise _Stop(make("NB102", where, detail=f"jupytext could not read it ({error})")) from None
    representation = notebook.metadata.get("jupytext", {}).get("text_representation", {})
    return notebook, _format_name(family, representation.get("format_name") or name)


def _format_name(family: str, name: str | None) -> str:
    """``py:percent``, ``md``, ``md:myst``: jupytext's names for the formats."""
    if name == "myst" or family == "myst":
        return "md:myst"
    if family == "md" and name in (None, "markdown"):
        return "md"
    return f"{family}:{name or 'light'}"


# --- checking the structure ------------------------------------------------------------


def _check_notebook(data: dict[str, Any], where: Location) -> list[dict[str, Any]]:
    """The cells of a structurally valid nbformat 4 Python notebook."""
    _check_version(data, where)
    metadata = data.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _Stop(make("NB102", where, detail="`metadata` is not an object"))
    _check_language(metadata, where)
    cells = data.get("cells")
    if not isinstance(cells, list):
        what = "missing" if cells is None else f"{_kind(cells)}, not a list"
        raise _Stop(make("NB102", where, detail=f"`cells` is {what}"))
    errors = [e for index, cell in enumerate(cells) for e in _check_cell(cell, index, where)]
    if errors:
        raise _Stop(*errors)
    return cells


def _check_version(data: dict[str, Any], where: Location) -> None:
    """nbformat 4.x only: v3 has another layout, and v5 does not exist yet."""
    version, minor = data.get("nbformat"), data.get("nbformat_minor", 0)
    if version is None and "cells" not in data:
        raise _Stop(make("NB102", where, detail="it has neither `nbformat` nor `cells`"))
    if version is None:
        raise _Stop(make("NB103", where, detail="(the `nbformat` field is missing); "
                                                "nb2pipe reads version 4"))
    if not _is_int(version) or version != 4:
        raise _Stop(make("NB103", where, detail=f"{version!r}; nb2pipe reads version 4"))
    if not _is_int(minor) or minor < 0:
        raise _Stop(make("NB103", where, detail=f"4.{minor!r}; nb2pipe reads version 4.x"))


def _check_language(metadata: dict[str, Any], where: Location) -> None:
    """Refuse notebooks whose kernel is not Python (a missing language means Python)."""
    language = _language(metadata)
    if language is not None and not _is_python(language):
        raise _Stop(make("NB104", where, detail=repr(language)))


def _language(metadata: dict[str, Any]) -> str | None:
    """``kernelspec.language``, else ``language_info.name``, else None."""
    for section, key in (("kernelspec", "language"), ("language_info", "name")):
        value = metadata.get(section)
        if isinstance(value, dict) and isinstance(value.get(key), str) and value[key].strip():
            return value[key].strip()
    return None


def _is_python(language: str) -> bool:
    """`python`, `python3`, `ipython3`... are all Python."""
    return re.fullmatch(r"i?python[0-9.]*", language.lower()) is not None


def _check_cell(cell: object, index: int, where: Location) -> list[Diagnostic]:
    """NB102 for a cell that lacks what every nbformat 4 cell has."""
    at = _at(where, index)
    if not isinstance(cell, dict):
        return [make("NB102", at, detail=f"cell {index + 1} is {_kind(cell)}, not an object")]
    problems = []
    if cell.get("cell_type") not in CELL_KINDS:
        problems.append(f"cell {index + 1} has cell_type {cell.get('cell_type')!r} "
                        f"(expected one of {', '.join(CELL_KINDS)})")
    source = cell.get("source")
    if not (isinstance(source, str) or isinstance(source, list)
            and all(isinstance(part, str) for part in source)):
        problems.append(f"cell {index + 1}: `source` is {_kind(source)}, "
                        "not a string or a list of strings")
    if not isinstance(cell.get("metadata", {}), dict):
        problems.append(f"cell {index + 1}: `metadata` is not an object")
    return [make("NB102", at, detail=problem) for problem in problems]


# --- cells -----------------------------------------------------------------------------------


def _cells(cell_dicts: list[dict[str, Any]], where: Location) -> tuple[list[Cell], list[Diagnostic]]:
    """Build every cell, collecting the findings about their tags and code."""
    cells: list[Cell] = []
    diagnostics: list[Diagnostic] = []
    for index, data in enumerate(cell_dicts):
        cell, found = _cell(data, index, where)
        cells.append(cell)
        diagnostics += found
    return cells, diagnostics


def _cell(data: dict[str, Any], index: int, where: Location) -> tuple[Cell, list[Diagnostic]]:
    """One ``Cell``; code cells are masked and parsed."""
    source = _source(data["source"])
    tags, diagnostics = _tags(data.get("metadata", {}), _at(where, index))
    kind = data["cell_type"]
    if kind != "code":
        return Cell(index=index, kind=kind, source=source, code="", tags=tags), diagnostics
    masked = magics.mask(source)
    diagnostics += [_from_mark(mark, where, index) for mark in masked.marks]
    error = _syntax_error(masked, source, where, index)
    diagnostics += [error] if error else []
    cell = Cell(index=index, kind=kind, source=source, code=masked.code, tags=tags,
                execution_count=_count(data.get("execution_count")),
                requirements=masked.requirements)
    return cell, diagnostics


def _source(source: str | list[str]) -> str:
    """The cell's text with `\\n` line ends, as the author sees it."""
    text = source if isinstance(source, str) else "".join(source)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _tags(metadata: dict[str, Any], at: Location) -> tuple[tuple[str, ...], list[Diagnostic]]:
    """``metadata.tags``; anything but a list of strings is reported (NB210)."""
    tags = metadata.get("tags", [])
    if isinstance(tags, list) and all(isinstance(tag, str) for tag in tags):
        return tuple(tags), []
    kept = tuple(tag for tag in tags if isinstance(tag, str)) if isinstance(tags, list) else ()
    return kept, [make("NB210", at, detail=_short(json.dumps(tags, default=repr)))]


def _count(value: object) -> int | None:
    """An execution count, or None when there is no usable one."""
    return value if _is_int(value) else None


def _from_mark(mark: magics.Mark, where: Location, index: int) -> Diagnostic:
    """A magic finding with its location in the notebook."""
    at = _at(where, index, mark.line, mark.col)
    return make(mark.code, at, detail=mark.detail, hint=mark.hint)


def _syntax_error(masked: magics.Masked, source: str, where: Location, index: int) -> Diagnostic | None:
    """NB106 with a caret under the offending column, or None when the code parses."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarning for "\d" and friends
            ast.parse(masked.code)
    except SyntaxError as error:  # also IndentationError and TabError
        return _syntax_diagnostic(error.msg, error.lineno, error.offset, masked, source,
                                  _at(where, index))
    except (ValueError, RecursionError, MemoryError) as error:
        return make("NB106", _at(where, index), detail=str(error) or "the cell is too complex")
    return None


def _syntax_diagnostic(message: str, lineno: int | None, offset: int | None,
                       masked: magics.Masked, source: str, at: Location) -> Diagnostic:
    """Place a syntax error on the source line the author wrote."""
    lines = source.split("\n")
    line = min(max(lineno or 1, 1), len(lines))
    text = lines[line - 1]
    col = masked.source_col(line, max((offset or 1) - 1, 0)) + 1
    col = min(col, len(text) + 1)
    located = Location(at.path, at.cell, line, col)
    return make("NB106", located, detail=message, snippet=_caret(text, col))


def _caret(text: str, col: int) -> str:
    """The line and a `^` under column ``col`` (tabs kept so that it lines up)."""
    pad = "".join("\t" if char == "\t" else " " for char in text[: col - 1])
    return f"    {text}\n    {pad}^"


# --- whole-notebook checks ----------------------------------------------------------------


def _hidden_state(cells: list[Cell], where: Location) -> list[Diagnostic]:
    """NB406 once when execution counts do not increase in notebook order."""
    latest: Cell | None = None
    for cell in cells:
        count = cell.execution_count
        if cell.kind != "code" or count is None:
            continue
        if latest is not None and count <= (latest.execution_count or 0):
            return [make("NB406", _at(where, cell.index), detail=_order(cell, latest))]
        latest = cell
    return []


def _order(cell: Cell, earlier: Cell) -> str:
    """How two cells' execution counts contradict their order."""
    if cell.execution_count == earlier.execution_count:
        return f"cells {earlier.number} and {cell.number} have the same execution count"
    return f"cell {cell.number} ran before cell {earlier.number}"


def _has_code(code: str) -> bool:
    """True when masked code holds something other than comments and blanks."""
    return any(line.strip() and not line.lstrip().startswith("#") for line in code.split("\n"))


# --- small helpers -------------------------------------------------------------------------


def _at(where: Location, index: int, line: int | None = None, col: int | None = None) -> Location:
    """The location of cell ``index`` (0-based) in the file."""
    return Location(where.path, index + 1, line, col)


def _is_int(value: object) -> bool:
    """A JSON integer (``true`` is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


_KINDS: dict[type, str] = {dict: "an object", list: "a list", str: "a string", int: "a number",
                           float: "a number", bool: "a boolean", type(None): "null"}


def _kind(value: object) -> str:
    """How a JSON value is called in messages."""
    return _KINDS.get(type(value), type(value).__name__)


def _short(text: str, limit: int = 60) -> str:
    """Keep messages on one line."""
    return text if len(text) <= limit else text[: limit - 1] + "…"

