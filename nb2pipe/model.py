"""The data that crosses stage boundaries.

Every stage of the converter is a function from one of these frozen values to
the next (see ARCHITECTURE.md).  Keeping them immutable means a stage can never
quietly change what an earlier stage decided, and makes results easy to hand to
the CLI, a server endpoint or a batch runner as plain data.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path


class Severity(enum.IntEnum):
    """How bad a finding is; errors stop a conversion, the rest are reported."""

    INFO = 0
    WARNING = 1
    ERROR = 2


@dataclass(frozen=True)
class Location:
    """Where a finding points: ``notebook.ipynb:cell 7:3:5``.

    ``cell`` is the 1-based position of the cell in the notebook (as a person
    counts them), ``line`` and ``col`` are 1-based inside that cell's source.
    """

    path: str
    cell: int | None = None
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        parts = [self.path]
        if self.cell is not None:
            parts.append(f"cell {self.cell}")
            if self.line is not None:
                parts.append(str(self.line))
                if self.col is not None:
                    parts.append(str(self.col))
        return ":".join(parts)


@dataclass(frozen=True)
class Diagnostic:
    """One finding, pyflakes-style: a stable code, a message and a location."""

    code: str
    message: str
    location: Location
    severity: Severity
    fix: str = ""
    related: Location | None = None
    snippet: str = ""

    def format(self) -> str:
        """The one-line form printed by the CLI (plus the fix and a caret)."""
        text = f"{self.location}: {self.code} {self.message}"
        if self.snippet:
            text += "\n" + self.snippet
        if self.fix:
            text += f"\n    fix: {self.fix}"
        return text


@dataclass(frozen=True)
class Cell:
    """A notebook cell as nb2pipe sees it.

    ``code`` is ``source`` with IPython syntax masked so that it parses as
    Python and keeps the same line numbers (magics become comments or their
    plain-Python equivalent); it is empty for Markdown and raw cells.
    """

    index: int
    kind: str
    source: str
    code: str
    tags: tuple[str, ...] = ()
    execution_count: int | None = None
    requirements: tuple[str, ...] = ()

    @property
    def number(self) -> int:
        """1-based position used in messages."""
        return self.index + 1


@dataclass(frozen=True)
class Notebook:
    """The parsed notebook: its cells and where it came from."""

    path: Path
    name: str
    cells: tuple[Cell, ...]
    content_hash: str
    format: str = "ipynb"
    language: str = "python"

    @property
    def display(self) -> str:
        return self.path.name


class TaskKind(enum.Enum):
    """What a group of cells becomes in the pipeline."""

    TASK = "task"
    SETUP = "setup"
    PARAMETERS = "parameters"
    SKIP = "skip"
    TEST = "test"


@dataclass(frozen=True)
class Section:
    """A run of cells that the tags put together (a task, setup, test...)."""

    kind: TaskKind
    name: str
    cells: tuple[int, ...]
    after: tuple[str, ...] = ()
    target: str = ""
    tag_cell: int = 0


@dataclass(frozen=True)
class Layout:
    """The result of reading the tags: sections in notebook order."""

    sections: tuple[Section, ...]
    inferred: bool = False

    @property
    def tasks(self) -> tuple[Section, ...]:
        return tuple(s for s in self.sections if s.kind is TaskKind.TASK)


@dataclass(frozen=True)
class Result:
    """What ``convert()``/``check()`` hand back to every front end."""

    notebook: str
    diagnostics: tuple[Diagnostic, ...]
    files: tuple[str, ...] = ()
    out: Path | None = None
    tasks: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def ok(self) -> bool:
        return not any(d.severity is Severity.ERROR for d in self.diagnostics)
