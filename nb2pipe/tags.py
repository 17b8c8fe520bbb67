"""Stage 2: cell tags -> sections (tasks, setup, parameters, skip, tests).

The grammar is one table, ``TAGS``: each row names a tag, its aliases from
other tools (Kale, papermill) and what it does.  ``layout()`` walks the code
cells once and groups them; an untagged notebook is split at its Markdown
H1/H2 headings instead, so legacy notebooks convert with zero annotation.
"""

from __future__ import annotations

import builtins
import difflib
import keyword
import re
import sys
import unicodedata
from dataclasses import dataclass

from . import codes
from .model import Cell, Diagnostic, Layout, Location, Notebook, Section, TaskKind


@dataclass(frozen=True)
class Tag:
    """One row of the tag table."""

    word: str                 # canonical spelling, without the ``:NAME`` part
    kind: TaskKind | None     # the section it starts; None for a modifier
    named: str                # "required", "optional" or "no"
    aliases: tuple[str, ...]  # spellings of other tools that mean the same
    doc: str


TAGS: tuple[Tag, ...] = (
    Tag("task", TaskKind.TASK, "required", ("step", "block"),
        "starts task NAME; untagged code cells below join it"),
    Tag("parameters", TaskKind.PARAMETERS, "no", ("pipeline-parameters",),
        "literal assignments that become pipeline parameters"),
    Tag("setup", TaskKind.SETUP, "no", ("imports", "functions"),
        "imports and helper functions shared by tasks (helpers.py)"),
    Tag("skip", TaskKind.SKIP, "no", (),
        "exploration kept in the notebook only"),
    Tag("test", TaskKind.TEST, "optional", (),
        "the cell's asserts become a pytest test of the task above (or of NAME)"),
    Tag("after", None, "required", ("prev",),
        "an extra ordering edge: this task runs after task NAME"),
)

# Kale's metrics cell becomes a task with this name.
KALE_METRICS = ("pipeline-metrics", "pipeline_metrics")

# Tags of other tools that we recognise and deliberately ignore.
FOREIGN_PREFIXES = ("limit:", "annotation:", "label:", "image:", "volume:", "hide", "remove")

_BY_SPELLING: dict[str, Tag] = {
    spelling: tag for tag in TAGS for spelling in (tag.word, *tag.aliases)
}
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
# An ATX heading (CommonMark): up to 3 spaces, 1-2 '#', text, optional closing '#'s.
# ``[ \t]`` rather than ``\s`` so that a match never spans two lines.
_HEADING_RE = re.compile(r"^[ \t]{0,3}(#{1,2})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
# Fenced code blocks in Markdown: a ``# comment`` inside one is not a heading.
_FENCE_RE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,}).*?(?:^[ \t]{0,3}\1[`~]*[ \t]*$|\Z)",
                       re.MULTILINE | re.DOTALL)
# Letters that NFKD does not decompose into ASCII.
_TRANSLITERATE = str.maketrans({"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O",
                                "œ": "oe", "Œ": "OE", "ł": "l", "Ł": "L", "đ": "d",
                                "Đ": "D", "þ": "th", "Þ": "TH", "ð": "d", "Ð": "D"})
# Names a task must not take: they would shadow what its code uses.
RESERVED = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | frozenset(
    sys.stdlib_module_names) | {"product", "upstream", "run", "helpers", "serializers", "tasks"}


def valid_tags() -> str:
    """The list printed when a tag is unknown."""
    words = []
    for tag in TAGS:
        suffix = {"required": ":NAME", "optional": "[:NAME]", "no": ""}[tag.named]
        words.append(tag.word + suffix)
    return ", ".join(words)


@dataclass(frozen=True)
class ParsedTags:
    """What one cell's tags say."""

    kind: TaskKind | None = None
    name: str = ""
    after: tuple[str, ...] = ()


def parse_cell_tags(cell: Cell, path: str) -> tuple[ParsedTags, list[Diagnostic]]:
    """Read one cell's tags; unknown tags that look like ours are reported."""
    starts: list[tuple[TaskKind, str, str]] = []
    after: list[str] = []
    found: list[Diagnostic] = []
    where = Location(path, cell.number)
    for raw in cell.tags:
        tag = raw.strip()
        if tag in KALE_METRICS:
            starts.append((TaskKind.TASK, "pipeline_metrics", tag))
            continue
        word, _, name = tag.partition(":")
        row = _BY_SPELLING.get(word.lower())
        if row is None or (row.named == "no" and name) or (row.named == "required" and not name):
            if _looks_like_ours(tag):
                found.append(codes.make("NB201", where, detail=repr(tag), valid=valid_tags()))
            continue
        if name and not _NAME_RE.match(name) or name in keyword.kwlist:
            found.append(codes.make("NB202", where, detail=repr(name)))
            continue
        if name and _collected_by_pytest(name):
            found.append(codes.make("NB202", where,
                                    detail=f"{name!r}: pytest would collect it as a test"))
            continue
        if row.kind is None:
            after.append(name)
        else:
            starts.append((row.kind, name, tag))
    if len(starts) > 1:
        detail = ", ".join(t for _, _, t in starts)
        found.append(codes.make("NB207", where, detail=detail))
    kind, name = (starts[0][0], starts[0][1]) if starts else (None, "")
    return ParsedTags(kind, name, tuple(after)), found


def _looks_like_ours(tag: str) -> bool:
    """True for misspellings of our tags; other tools' tags are left alone."""
    low = tag.lower()
    if low.startswith(FOREIGN_PREFIXES):
        return False
    head = low.partition(":")[0]
    spellings = list(_BY_SPELLING) + list(KALE_METRICS)
    return head in _BY_SPELLING or bool(difflib.get_close_matches(head, spellings, n=1, cutoff=0.75))


def layout(notebook: Notebook) -> tuple[Layout, list[Diagnostic]]:
    """Group the notebook's code cells into sections, by tags or by headings."""
    if any(_is_ours(t) for c in notebook.cells for t in c.tags):
        return _layout_from_tags(notebook)
    return _layout_from_headings(notebook)


def _is_ours(tag: str) -> bool:
    word = tag.partition(":")[0]
    return word in _BY_SPELLING or tag in KALE_METRICS or _looks_like_ours(tag)


@dataclass
class _Open:
    """A section being built (mutable while walking; frozen at the end)."""

    kind: TaskKind
    name: str
    cells: list[int]
    after: list[str]
    target: str = ""
    tag_cell: int = 0

    def freeze(self) -> Section:
        return Section(self.kind, self.name, tuple(self.cells), tuple(self.after),
                       self.target, self.tag_cell)


def _layout_from_tags(notebook: Notebook) -> tuple[Layout, list[Diagnostic]]:
    """Walk code cells: tagged cells open sections, untagged ones join the open one.

    ``skip`` and ``test`` apply to their own cell only: untagged cells after
    them continue the section above (Kale's convention).
    """
    path = notebook.display
    found: list[Diagnostic] = []
    sections: list[_Open] = []
    current: _Open | None = None
    pending: list[int] = []
    pending_after: list[str] = []
    for cell in notebook.cells:
        if cell.kind != "code" or not cell.code.strip():
            continue
        parsed, problems = parse_cell_tags(cell, path)
        found += problems
        if parsed.kind in (TaskKind.SKIP, TaskKind.TEST):
            sections.append(_own_section(parsed, cell, current, path, found))
            continue
        if parsed.kind is not None:
            current = _Open(parsed.kind, parsed.name or parsed.kind.value, [cell.index],
                            list(parsed.after), tag_cell=cell.index)
            if pending and parsed.kind is TaskKind.TASK:
                found.append(codes.make("NB208", Location(path, pending[0] + 1),
                                        detail=repr(current.name)))
                current.cells[:0] = pending
                current.after[:0] = pending_after
                pending, pending_after = [], []
            sections.append(current)
        elif current is None:
            pending.append(cell.index)
            pending_after += parsed.after
        else:
            current.cells.append(cell.index)
            current.after += parsed.after
    frozen = _merge_singletons([s.freeze() for s in sections])
    if not any(s.kind is TaskKind.TASK for s in frozen):
        found.append(codes.make("NB212", Location(path)))
    found += _check_names(frozen, path)
    return Layout(tuple(frozen)), found


def _own_section(parsed: ParsedTags, cell: Cell, current: _Open | None, path: str,
                 found: list[Diagnostic]) -> _Open:
    """A one-cell ``skip`` or ``test`` section; a test targets the task above."""
    if parsed.kind is TaskKind.SKIP:
        return _Open(TaskKind.SKIP, "skip", [cell.index], [], tag_cell=cell.index)
    target = parsed.name
    if not target:
        if current is None or current.kind is not TaskKind.TASK:
            found.append(codes.make("NB206", Location(path, cell.number)))
        else:
            target = current.name
    return _Open(TaskKind.TEST, f"test_{target or 'orphan'}", [cell.index], [], target,
                 tag_cell=cell.index)


def _merge_singletons(sections: list[Section]) -> list[Section]:
    """All setup cells form one section, and so do all parameters cells.

    The merged section takes the place of the first one so that notebook
    order (which decides what a name means) is kept for everything else.
    """
    merged: list[Section] = []
    first: dict[TaskKind, int] = {}
    for section in sections:
        if section.kind in (TaskKind.SETUP, TaskKind.PARAMETERS):
            if section.kind in first:
                i = first[section.kind]
                old = merged[i]
                merged[i] = Section(old.kind, old.name, old.cells + section.cells,
                                    old.after, old.target, old.tag_cell)
                continue
            first[section.kind] = len(merged)
        merged.append(section)
    return merged


def _check_names(sections: list[Section], path: str) -> list[Diagnostic]:
    """Duplicate tasks, and ``after:``/``test:`` edges to unknown or later tasks."""
    found: list[Diagnostic] = []
    seen: dict[str, Section] = {}
    for section in sections:
        where = Location(path, section.tag_cell + 1)
        if section.kind is TaskKind.TASK:
            if section.name in seen:
                first = Location(path, seen[section.name].tag_cell + 1)
                found.append(codes.make("NB203", where, detail=repr(section.name),
                                        other=str(first), related=first))
                continue
            for name in section.after:
                found += _check_after(section, name, seen, sections, where)
            seen[section.name] = section
    names = {s.name for s in sections if s.kind is TaskKind.TASK}
    for section in sections:
        if section.kind is TaskKind.TEST and section.target and section.target not in names:
            found.append(codes.make("NB204", Location(path, section.tag_cell + 1),
                                    detail=f"test:{section.target} names no task"))
    return found


def _check_after(section: Section, name: str, seen: dict[str, Section],
                 sections: list[Section], where: Location) -> list[Diagnostic]:
    if name in seen:
        return []
    if name == section.name:
        return [codes.make("NB205", where,
                           detail=f"task {section.name!r} is tagged after:{name}, itself")]
    if any(s.kind is TaskKind.TASK and s.name == name for s in sections):
        return [codes.make("NB205", where,
                           detail=f"task {section.name!r} is tagged after:{name}, "
                                  f"but {name!r} comes later in the notebook")]
    return [codes.make("NB204", where, detail=f"after:{name} names no task")]


# --- zero-annotation split ---------------------------------------------------

def _layout_from_headings(notebook: Notebook) -> tuple[Layout, list[Diagnostic]]:
    """Split an untagged notebook at Markdown H1/H2 headings.

    Code before the first heading forms a task of its own.  Names come from
    the heading text and are made valid and unique (see ``task_name``).
    """
    sections: list[_Open] = []
    taken: set[str] = set()
    avoid = _imported_and_defined(notebook)
    heading = "start"
    opened = False
    for cell in notebook.cells:
        if cell.kind == "markdown":
            found = _HEADING_RE.search(_FENCE_RE.sub("", cell.source))
            if found:
                heading, opened = found.group(2), False
            continue
        if cell.kind != "code" or not cell.code.strip():
            continue
        if not opened:
            name = task_name(heading, taken, avoid)
            taken.add(name)
            sections.append(_Open(TaskKind.TASK, name, [], [], tag_cell=cell.index))
            opened = True
        sections[-1].cells.append(cell.index)
    frozen = [s.freeze() for s in sections]
    found: list[Diagnostic] = []
    if frozen:
        names = ", ".join(s.name for s in frozen)
        found.append(codes.make("NB209", Location(notebook.display), detail=names))
    else:
        found.append(codes.make("NB212", Location(notebook.display)))
    return Layout(tuple(frozen), inferred=True), found


def _imported_and_defined(notebook: Notebook) -> frozenset[str]:
    """Names imports and defs bind: a task function named so would shadow them."""
    import ast

    found: set[str] = set()
    for cell in notebook.cells:
        if cell.kind != "code" or not cell.code.strip():
            continue
        try:
            tree = ast.parse(cell.code)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.add(node.name)
    return frozenset(found)


def _collected_by_pytest(name: str) -> bool:
    """``test*`` functions and ``test_*.py``/``*_test.py`` modules are pytest's:
    a task so named would run as a (broken) test of the generated project."""
    return name.startswith("test") or name.endswith("_test")


def task_name(heading: str, taken: set[str] | frozenset[str] = frozenset(),
              avoid: frozenset[str] = frozenset()) -> str:
    """A valid, unique, non-shadowing identifier from a heading's text."""
    text = re.sub(r"[`*_\[\]()]", " ", heading)
    text = re.sub(r"^\s*(step\s+)?[\d.]+[:.)]?\s+", "", text, flags=re.IGNORECASE)
    text = unicodedata.normalize("NFKD", text.translate(_TRANSLITERATE))
    text = text.encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", text.lower())
    name = ""
    for word in words:
        if len(name) + len(word) > 40 and name:
            break
        name = f"{name}_{word}" if name else word
    if not name:
        name = "section"
    if name[0].isdigit():
        name = "section_" + name
    if name in RESERVED or name in avoid:
        name += "_step"
    if _collected_by_pytest(name):  # "## Test performance": a task, not a test
        name = "step_" + name if name.startswith("test") else name
        name = name + "_step" if _collected_by_pytest(name) else name
    unique, n = name, 2
    while unique in taken:
        unique, n = f"{name}_{n}", n + 1
    return unique
