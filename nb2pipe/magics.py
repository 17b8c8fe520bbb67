"""Mask IPython syntax in a code cell so that the cell parses as plain Python.

A notebook cell may hold things Python cannot parse: line magics (``%time``),
cell magics (``%%capture``), shell escapes (``!pip install x``), help
(``df?``) and the ``get_ipython().run_line_magic(...)`` calls that exports
produce.  Every later stage works on Python's ``ast``, so this module turns a
cell's source into *masked code*:

* the masked code has exactly as many lines as the source, and untouched lines
  are byte-identical, so a ``(line, col)`` found in the masked code points at
  the same place in the cell the author sees;
* what a magic *does* decides what replaces it, and that decision lives in one
  table, ``TABLE``: one row per magic with its action and a note (the hint of
  the error, or why dropping it is safe).  There is no chain of ``if name ==``.

Only statement starts are looked at: a ``%`` inside a string, a modulo on a
continuation line or a ``!=`` is not IPython syntax.  A small scanner keeps
track of open brackets, strings and backslash continuations for that.

The functions here know nothing about files or diagnostics objects; they
return ``Mark`` values (code, line, col, detail, hint) that ``read`` turns into
``Diagnostic``\\ s with a location.
"""

from __future__ import annotations

import ast
import enum
import re
import shlex
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace


class Action(enum.Enum):
    """What replacing a magic does to the code."""

    DROP = "drop"  # display, timing or session setup: becomes a comment (NB401)
    RUN = "run"  # runs code in the namespace: keep that code, drop the magic (NB401)
    REQUIRE = "require"  # installs packages: comment + requirement (NB403)
    REFUSE = "refuse"  # changes state or runs a shell: comment + error (NB402)


@dataclass(frozen=True)
class Magic:
    """One row of the table.

    ``note`` is the fix shown with an NB402 error (for ``REFUSE``) or, for the
    other actions, the reason the replacement is safe (documentation).
    ``refine`` lets a row depend on its arguments (``%env`` shows, ``%env X=1``
    sets); it returns the row that applies.  ``options`` lists the one-letter
    options that take a value, so that ``RUN`` can skip them
    (``%prun -s time f()`` keeps ``f()``).
    """

    action: Action
    note: str
    refine: Callable[[str], Magic] | None = None
    options: str = ""
    requires: tuple[str, ...] = ()

    def resolve(self, args: str) -> Magic:
        """The row that applies to this use of the magic."""
        return self.refine(args) if self.refine else self


@dataclass(frozen=True)
class Mark:
    """A finding about one line of the cell, before it gets a file location."""

    code: str
    line: int
    col: int
    detail: str
    hint: str = ""


@dataclass(frozen=True)
class Masked:
    """The result of masking one cell.

    ``shifts`` records, for lines where a magic prefix was removed
    (``%time x = f()`` → ``x = f()``), ``(line, from_col, delta)``: columns
    (0-based) at or after ``from_col`` in the masked line are ``delta`` columns
    further right in the source.
    """

    code: str
    marks: tuple[Mark, ...] = ()
    requirements: tuple[str, ...] = ()
    shifts: tuple[tuple[int, int, int], ...] = ()

    def source_col(self, line: int, col: int) -> int:
        """Map a 0-based column of the masked code back onto the source."""
        for shift_line, from_col, delta in self.shifts:
            if shift_line == line and col >= from_col:
                return col + delta
        return col


# --- hints shared by several rows ---------------------------------------------

SHELL = "run it before the pipeline, or use subprocess.run in the cell"
CD = "use paths relative to the notebook's folder"
DELETE = "delete names with `del`, or leave them"
FILES = "use pathlib or shutil in the cell"
OTHER_LANGUAGE = "nb2pipe converts Python only: move this code to its own script"
UNKNOWN = "remove it, or replace it with plain Python"

DISPLAY = "only changes what the notebook shows"
SESSION = "only configures the interactive session"
TIMING = "only measures; the pipeline does not need it"


# --- refinements: rows whose effect depends on their arguments --------------------

_INSTALLERS = re.compile(r"^(pip[0-9.]*|conda|mamba|micromamba)$")
_PYTHON = re.compile(r"^(python[0-9.]*|\{sys\.executable\}|\$\{?PYTHON\}?|.*/python[0-9.]*)$")
_SHELL_OPERATORS = {"&&", "||", ";", "|", ">", ">>", "<", "&"}
# Shell commands that only print (no redirection): `!head data.csv` is display.
SHOW_ONLY_COMMANDS = frozenset({"ls", "cat", "head", "tail", "wc", "pwd", "echo", "du", "df",
                                "file", "nvidia-smi", "which", "date", "whoami", "tree",
                                "more", "less", "type", "dir"})
_OPTIONS_WITH_VALUE = {
    "-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i",
    "--index-url", "--extra-index-url", "-f", "--find-links", "-t", "--target",
    "--prefix", "--root", "--trusted-host", "--platform", "--python-version",
    "--implementation", "--abi", "--src", "--upgrade-strategy", "--progress-bar",
    "--log", "--cache-dir", "--proxy", "--retries", "--timeout", "--exists-action",
    "--no-binary", "--only-binary", "-C", "--config-settings", "--python", "-n",
    "--name", "-p", "--channel",
}
_INSPECT = {"list", "freeze", "show", "check", "--version", "-V", "search", "info"}


def _installer_words(words: list[str]) -> list[str] | None:
    """The words after the installer (`pip`, `python -m pip`, `uv pip`, `conda`).

    None when the command is not a package installer at all.
    """
    if words and _INSTALLERS.match(words[0]):
        return words[1:]
    if words[:2] == ["uv", "pip"]:
        return words[2:]
    if len(words) >= 3 and _PYTHON.match(words[0]) and words[1:3] == ["-m", "pip"]:
        return words[3:]
    return None


def _packages(words: list[str]) -> tuple[str, ...]:
    """Package specifiers of `install ...`, without options and their values."""
    found: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word.startswith("-"):
            skip = word in _OPTIONS_WITH_VALUE
        elif word not in found:
            found.append(word)
    return tuple(found)


def _shell(command: str) -> Magic:
    """`!cmd`: package installs become requirements, listings are display only."""
    try:
        words = shlex.split(command)
    except ValueError:
        return Magic(Action.REFUSE, SHELL)
    if words and words[0] in SHOW_ONLY_COMMANDS and not _SHELL_OPERATORS & set(words) \
            and not any(w.startswith(("$", "{")) for w in words):
        return Magic(Action.DROP, "only shows something")
    rest = _installer_words(words)
    if rest is None or _SHELL_OPERATORS & set(words):
        return Magic(Action.REFUSE, SHELL)
    if rest[:1] == ["install"]:
        packages = _packages(rest[1:])
        if any("{" in p or "$" in p for p in packages):
            return Magic(Action.REFUSE, "write the package names literally so they can go to requirements.txt")
        return Magic(Action.REQUIRE, "installs packages: they go to requirements.txt", requires=packages)
    if rest[:1] and rest[0] in _INSPECT:
        return Magic(Action.DROP, "only shows the installed packages")
    return Magic(Action.REFUSE, "manage the environment outside the pipeline (requirements.txt)")


def _pip(args: str) -> Magic:
    """`%pip ...` is `!pip ...` run in the kernel's own environment."""
    return _shell("pip " + args)


def _conda(args: str) -> Magic:
    """`%conda ...` is `!conda ...` run in the kernel's own environment."""
    return _shell("conda " + args)


def _env(args: str) -> Magic:
    """`%env` alone shows the environment; `%env X=1` or `%env X 1` sets it."""
    words = args.replace("=", " ", 1).split(None, 1)
    if len(words) < 2:
        return Magic(Action.DROP, "only shows environment variables")
    key, value = words[0], words[1].strip()
    return Magic(Action.REFUSE, f'use os.environ["{key}"] = "{value}"')


def _capture(args: str) -> Magic:
    """`%%capture` hides output; `%%capture out` also defines `out`."""
    names = [w for w in args.split() if not w.startswith("-")]
    if not names:
        return Magic(Action.RUN, "only hides the cell's output")
    return Magic(
        Action.REFUSE,
        f"remove `{names[0]}` from `%%capture` (its captured output is not available in the pipeline)",
    )


def _debug(args: str) -> Magic:
    """`%debug` opens the debugger; `%debug stmt` also runs stmt."""
    if args.strip():
        return Magic(Action.REFUSE, "remove `%debug` and keep the statement")
    return Magic(Action.DROP, "opens the interactive debugger")


def _misplaced(name: str) -> Magic:
    """A cell magic that is not on the first line of its cell."""
    return Magic(Action.REFUSE, f"move `%%{name}` to the first line of its own cell")


# --- the table -------------------------------------------------------------------------


def _rows(action: Action, note: str, *keys: str, options: str = "") -> dict[str, Magic]:
    """Several table keys that share one row."""
    return {key: Magic(action, note, options=options) for key in keys}


D, R, X = Action.DROP, Action.RUN, Action.REFUSE

TABLE: dict[str, Magic] = {
    # display, timing and session set-up: safe to drop
    **_rows(D, "selects how plots are shown", "%matplotlib"),
    **_rows(D, SESSION, "%config", "%load_ext", "%reload_ext", "%unload_ext", "%autoreload",
            "%aimport", "%xmode", "%pdb", "%colors", "%automagic", "%autocall", "%autosave",
            "%doctest_mode", "%gui", "%logstart", "%logstop", "%logon", "%logoff",
            "%logstate", "%alias_magic", "%unalias", "%killbgscripts", "%connect_info",
            "%qtconsole", "%tensorflow_version", "%bookmark", "%recall", "%clear", "%cls"),
    **_rows(D, DISPLAY, "%who", "%who_ls", "%whos", "%precision", "%pprint", "%history",
            "%hist", "%lsmagic", "%magic", "%quickref", "%pwd", "%tb", "%page", "%pinfo",
            "%pinfo2", "%pdef", "%pdoc", "%psource", "%pfile", "%psearch", "%dhist", "%dirs",
            "%ls", "%ll", "%lf", "%lk", "%lx", "%cat", "%less", "%more", "%man",
            "%version_information", "%watermark"),
    **_rows(D, TIMING, "%timeit", "%memit"),
    "%debug": Magic(D, "opens the interactive debugger", refine=_debug),
    "%env": Magic(D, "only shows environment variables", refine=_env),
    # running a statement: keep the statement
    **_rows(R, TIMING, "%time"),
    **_rows(R, "profiles the statement; the statement itself is kept", "%prun", options="slTD"),
    # package installation
    "%pip": Magic(Action.REQUIRE, "installs packages: they go to requirements.txt", refine=_pip),
    **{k: Magic(Action.REQUIRE, "installs packages", refine=_conda)
       for k in ("%conda", "%mamba", "%micromamba")},
    "!": Magic(X, SHELL, refine=_shell),
    **{k: Magic(X, SHELL, refine=_shell) for k in ("%sx", "%system", "%sc")},
    # unsafe to drop
    "!!": Magic(X, SHELL),
    "%cd": Magic(X, CD),
    "%pushd": Magic(X, CD),
    "%popd": Magic(X, CD),
    "%set_env": Magic(X, 'set it in the cell with os.environ["NAME"] = "value"'),
    "%run": Magic(X, "import the functions you need from the script instead of running it"),
    "%store": Magic(X, "save the value to a file in one task and read it in the other"),
    "%pylab": Magic(X, "import numpy and matplotlib explicitly (`import numpy as np`, "
                       "`import matplotlib.pyplot as plt`)"),
    "%load": Magic(X, "paste the file's code into the cell (run `%load` once in Jupyter)"),
    "%macro": Magic(X, "define a function instead of a macro"),
    "%rerun": Magic(X, "copy the code you want to run again into the cell"),
    "%save": Magic(X, "keep the code in the notebook or in a module of the repository"),
    "%edit": Magic(X, "keep the code in the notebook or in a module of the repository"),
    "%ed": Magic(X, "keep the code in the notebook or in a module of the repository"),
    "%paste": Magic(X, "paste the code into the cell"),
    "%cpaste": Magic(X, "paste the code into the cell"),
    "%alias": Magic(X, SHELL),
    "%dotenv": Magic(X, "call `dotenv.load_dotenv()` in the cell"),
    "%lprun": Magic(X, "remove the profiler and keep the statement"),
    "%mprun": Magic(X, "remove the profiler and keep the statement"),
    **_rows(X, DELETE, "%reset", "%reset_selective", "%xdel"),
    **_rows(X, FILES, "%rm", "%rmdir", "%mkdir", "%mv", "%cp"),
    **_rows(X, "query with a database client (e.g. pandas.read_sql)", "%sql", "%%sql"),
    **_rows(X, OTHER_LANGUAGE, "%R", "%%R", "%%perl", "%%ruby", "%%julia", "%%js_kernel"),
    # help and autocall escapes
    "?": Magic(D, "only shows help"),
    **_rows(X, "write the call in plain Python, e.g. `f(x)`", "/", ",", ";"),
    # cell magics
    **_rows(D, DISPLAY, "%%html", "%%HTML", "%%markdown", "%%latex", "%%javascript", "%%js",
            "%%svg"),
    **_rows(D, "runs the cell in a scratch namespace: nothing it defines survives",
            "%%timeit", "%%memit"),
    **_rows(R, TIMING, "%%time"),
    **_rows(R, "profiles the cell; the code is kept", "%%prun"),
    "%%debug": Magic(R, "runs the cell under the debugger; the code is kept"),
    "%%capture": Magic(R, "only hides the cell's output", refine=_capture),
    **_rows(X, SHELL, "%%bash", "%%sh", "%%script", "%%cmd", "%%powershell", "%%system"),
    **_rows(X, "it runs in a separate process: put the code in the cell itself",
            "%%python", "%%python2", "%%python3", "%%pypy"),
    **_rows(X, "put the file in the repository (or write it with open() in a task)",
            "%%writefile", "%%file"),
    "%%cython": Magic(X, "move the code into a compiled module of the repository and import it"),
}

UNKNOWN_MAGIC = Magic(X, UNKNOWN)


def lookup(key: str) -> Magic:
    """The table row for a magic, the refusing default for unknown ones."""
    return TABLE.get(key, UNKNOWN_MAGIC)


# --- recognising IPython syntax at a statement start -----------------------------------


@dataclass(frozen=True)
class Escape:
    """A piece of IPython syntax found at the start of a statement.

    ``key`` is the table key (``%time``, ``%%html``, ``!``, ``?``), ``args``
    what follows the magic name, ``lhs`` the ``x = `` of ``x = %magic``,
    ``start`` the 0-based column where ``args`` begins in the line (None when
    the arguments came from a string literal, as in ``run_line_magic``).
    """

    key: str
    args: str
    text: str
    lhs: str = ""
    start: int | None = None
    call: bool = False


_NAME = r"[A-Za-z_][\w.]*"
_HELP = re.compile(r"^(\?{1,2})?(%{0,2}[A-Za-z_*][\w*]*(?:\.[A-Za-z_*][\w*]*)*)(\?{1,2})?$")
_PREFIX = re.compile(rf"^(%%|%)({_NAME})(\s+|$)|^(!!|!|/|,|;)")
_CALL = re.compile(
    r"^get_ipython\(\)\.(run_line_magic|run_cell_magic|magic|system|getoutput)\((.*)\)\s*(#.*)?$"
)


def _help(line: str) -> Escape | None:
    """`obj?`, `obj??`, `?obj`, `%magic?`: IPython's help."""
    stripped = line.strip()
    match = _HELP.match(stripped)
    if match and (match.group(1) or match.group(3)):
        return Escape("?", match.group(2), stripped)
    return None


def _prefixed(line: str, lhs: str = "") -> Escape | None:
    """`%name args`, `%%name args`, `!cmd`, `!!cmd` and the autocall escapes."""
    body = line.lstrip()
    indent = len(line) - len(body)
    match = _PREFIX.match(body)
    if not match:
        return None
    if match.group(1):
        key, end = match.group(1) + match.group(2), match.end(2)
    else:
        key, end = match.group(4), match.end(4)
    args = body[end:]
    start = indent + end + len(args) - len(args.lstrip())
    return Escape(key, args.strip(), body.rstrip(), lhs=lhs, start=start)


def _literal_args(text: str) -> list[object] | None:
    """The arguments of a call if they are all literals, else None."""
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        return [ast.literal_eval(arg) for arg in call.args]  # type: ignore[attr-defined]
    except (SyntaxError, ValueError, TypeError, RecursionError, MemoryError):
        return None


_CALL_KEYS: dict[str, Callable[[list[object]], tuple[str, str]]] = {
    "run_line_magic": lambda a: ("%" + str(a[0]), str(a[1]) if len(a) > 1 else ""),
    "run_cell_magic": lambda a: ("%%" + str(a[0]), str(a[1]) if len(a) > 1 else ""),
    "magic": lambda a: ("%" + str(a[0]).lstrip("%").split(" ", 1)[0],
                        str(a[0]).lstrip("%").partition(" ")[2]),
    "system": lambda a: ("!", str(a[0])),
    "getoutput": lambda a: ("!", str(a[0])),
}


def _call(line: str, lhs: str = "") -> Escape | None:
    """`get_ipython().run_line_magic('time', 'f()')`, as jupytext/nbconvert export."""
    match = _CALL.match(line.strip())
    if not match:
        return None
    args = _literal_args(match.group(2))
    if not args or not isinstance(args[0], str) or not all(isinstance(a, str) for a in args):
        return Escape("get_ipython", "", line.strip(), lhs=lhs, call=True)
    key, rest = _CALL_KEYS[match.group(1)](args)
    return Escape(key, rest.strip(), line.strip(), lhs=lhs, call=True)


def _assigned(line: str) -> Escape | None:
    """`x = %magic args`, `x = !cmd`, `x = get_ipython()....`."""
    at = _assignment(line)
    if at is None:
        return None
    lhs, rhs = line[: at + 1], line[at + 1 :]
    lhs = lhs.strip() + " "
    found = _call(rhs, lhs) or _prefixed(rhs, lhs)
    if found is None or found.key in {"/", ",", ";"}:
        return None
    if found.start is not None:
        found = replace(found, start=found.start + at + 1)
    return replace(found, text=line.strip())


def _assignment(line: str) -> int | None:
    """Index of the first top-level `=` that is an assignment, if any."""
    scanner = Scanner()
    index = 0
    while index < len(line):
        outside = scanner.depth == 0 and scanner.quote is None
        if outside and line[index] == "#":
            return None
        if outside and line[index] == "=" and _is_assign(line, index):
            return index
        index = scanner.step(line, index)
    return None


def _is_assign(line: str, index: int) -> bool:
    """True for `=` itself, not `==`, `!=`, `<=`, `+=`, `:=` and friends."""
    before = line[index - 1] if index else ""
    after = line[index + 1] if index + 1 < len(line) else ""
    return after != "=" and before not in set("=!<>+-*/%&|^@:~")


ESCAPE_PARSERS: tuple[Callable[[str], Escape | None], ...] = (_help, _call, _prefixed, _assigned)


def find_escape(line: str) -> Escape | None:
    """The IPython syntax this statement-start line begins with, if any."""
    for parser in ESCAPE_PARSERS:
        found = parser(line)
        if found:
            return found
    return None


# --- a tiny scanner: where do statements start? -------------------------------------


@dataclass
class Scanner:
    """Tracks brackets, strings and backslashes across lines.

    A line is a statement start only when no bracket or string is open and the
    previous line did not end with a backslash; only there can IPython syntax
    begin.  This is deliberately simpler than ``tokenize``, which stops at the
    first piece of IPython syntax it meets.
    """

    depth: int = 0
    quote: str | None = None
    continued: bool = False

    @property
    def at_start(self) -> bool:
        """True when the next line begins a new statement."""
        return self.depth == 0 and self.quote is None and not self.continued

    def feed(self, line: str) -> None:
        """Advance over one physical line."""
        index, comment = 0, False
        while index < len(line):
            if self.quote is None and line[index] == "#":
                comment = True
                break
            index = self.step(line, index)
        if self.quote is not None and len(self.quote) == 1 and index <= len(line):
            self.quote = None  # an unterminated one-line string: Python reports it
        self.continued = not comment and self.quote is None and line.endswith("\\")

    def step(self, line: str, index: int) -> int:
        """Advance over one character, escape pair or quote; return the next index.

        Past ``len(line)`` means a backslash escaped the end of the line.
        """
        char = line[index]
        if self.quote is not None:
            if char == "\\":
                return index + 2
            if line.startswith(self.quote, index):
                index, self.quote = index + len(self.quote), None
                return index
            return index + 1
        if char in "([{":
            self.depth += 1
        elif char in ")]}":
            self.depth = max(0, self.depth - 1)
        elif char in "'\"":
            self.quote = char * 3 if line.startswith(char * 3, index) else char
            return index + len(self.quote)
        return index + 1


# --- masking ---------------------------------------------------------------------------


@dataclass
class _Work:
    """The state of masking one cell: output lines and what was found."""

    lines: list[str]
    out: list[str]
    marks: list[Mark] = field(default_factory=list)
    requirements: list[str] = field(default_factory=list)
    shifts: list[tuple[int, int, int]] = field(default_factory=list)
    scanner: Scanner = field(default_factory=Scanner)


def mask(source: str) -> Masked:
    """Masked code for a code cell (see the module docstring)."""
    lines = source.split("\n")
    work = _Work(lines=lines, out=list(lines))
    start = _cell_magic(work)
    _mask_lines(work, start, automagic=_single_statement(lines))
    return Masked(
        code="\n".join(work.out),
        marks=tuple(work.marks),
        requirements=tuple(work.requirements),
        shifts=tuple(work.shifts),
    )


def _single_statement(lines: list[str]) -> bool:
    """True for a one-line cell, where IPython's automagic applies (`pip install x`)."""
    return sum(1 for line in lines if line.strip()) == 1


def _first_code_line(lines: list[str]) -> int | None:
    """Index of the first non-blank line."""
    return next((i for i, line in enumerate(lines) if line.strip()), None)


def _cell_magic(work: _Work) -> int:
    """Handle a `%%magic` on the cell's first line; return where line masking starts."""
    first = _first_code_line(work.lines)
    if first is None or not work.lines[first].lstrip().startswith("%%"):
        return 0
    escape = _prefixed(work.lines[first])
    if escape is None:
        return 0
    magic = lookup(escape.key).resolve(escape.args)
    _mark(work, magic, escape, first, work.lines[first])
    if magic.action is Action.RUN:
        work.out[first] = _comment(work.lines[first])
        return first + 1
    for index in range(first, len(work.lines)):
        work.out[index] = _comment(work.lines[index])
    return len(work.lines)


def _mask_lines(work: _Work, start: int, *, automagic: bool) -> None:
    """Walk the lines, masking IPython syntax found at statement starts."""
    index = start
    while index < len(work.lines):
        line = work.lines[index]
        escape = find_escape(line) if work.scanner.at_start else None
        if escape is None and automagic and work.scanner.at_start:
            escape = _automagic(line)
        if escape is None:
            work.scanner.feed(line)
            index += 1
            continue
        index = _apply(work, escape, index)


def _automagic(line: str) -> Escape | None:
    """`pip install x` alone in a cell: IPython runs it as `%pip install x`."""
    word = line.strip().split(" ", 1)[0]
    if "%" + word not in TABLE or _parses(line.strip()):
        return None
    indent = line[: len(line) - len(line.lstrip())]
    found = _prefixed(indent + "%" + line.lstrip())
    return replace(found, text=line.strip(), start=None) if found else None


def _parses(code: str) -> bool:
    """True when ``code`` is valid Python."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _logical_end(lines: list[str], index: int) -> int:
    """Last line of a magic continued with backslashes."""
    while lines[index].endswith("\\") and index + 1 < len(lines):
        index += 1
    return index


def _apply(work: _Work, escape: Escape, index: int) -> int:
    """Replace the magic starting at ``index``; return the next line to scan."""
    end = _logical_end(work.lines, index)
    full = _joined(work.lines, index, end)
    whole = find_escape(full) or escape
    magic = _resolve(whole)
    _mark(work, magic, whole, index, work.lines[index])
    if magic.action is Action.RUN and _run_statement(escape, magic):
        _keep_statement(work, escape, magic, index)
        for line in work.out[index : end + 1]:
            work.scanner.feed(line)
    else:
        _comment_out(work, index, end)
    work.requirements.extend(r for r in magic.requires if r not in work.requirements)
    return end + 1


def _joined(lines: list[str], index: int, end: int) -> str:
    """A backslash-continued magic as one line (as IPython assembles it)."""
    parts = [line[:-1] if line.endswith("\\") else line for line in lines[index : end + 1]]
    return " ".join([parts[0], *(p.strip() for p in parts[1:])])


def _resolve(escape: Escape) -> Magic:
    """The row that applies, taking the context of the magic into account."""
    if escape.key == "get_ipython":
        return Magic(X, "call the magic by its name with a literal string, or use plain Python")
    magic = lookup(escape.key).resolve(escape.args)
    if escape.key.startswith("%%"):
        return _cell_magic_in_line(escape, magic)
    if escape.lhs and magic.action in (Action.DROP, Action.REQUIRE):
        return Magic(X, "the magic's result is used: compute the value in plain Python")
    return magic


def _cell_magic_in_line(escape: Escape, magic: Magic) -> Magic:
    """A cell magic met inside a cell: a `run_cell_magic` call, or misplaced."""
    if not escape.call:
        return _misplaced(escape.key[2:])
    if magic.action is Action.RUN:
        return Magic(X, "replace the call with the cell's code")
    return magic


def _run_statement(escape: Escape, magic: Magic) -> bool:
    """True when a RUN magic has a statement to keep."""
    return bool(_strip_options(escape.args, magic.options))


def _strip_options(args: str, options: str) -> str:
    """`-s time f()` → `f()`: skip the magic's own options."""
    rest = args
    while options and rest.startswith("-"):
        option, _, rest = rest.partition(" ")
        if option[1:2] in options and len(option) == 2:
            _, _, rest = rest.lstrip().partition(" ")
        rest = rest.lstrip()
    return rest


def _keep_statement(work: _Work, escape: Escape, magic: Magic, index: int) -> None:
    """`%time x = f()` → `x = f()` at the magic's indentation."""
    line = work.lines[index]
    indent = line[: len(line) - len(line.lstrip())]
    if escape.start is None:
        work.out[index] = indent + escape.lhs + _strip_options(escape.args, magic.options)
        return
    statement = _strip_options(line[escape.start :].strip(), magic.options)
    new_start = len(indent) + len(escape.lhs)
    work.out[index] = indent + escape.lhs + statement
    delta = len(line.rstrip()) - len(statement) - new_start
    work.shifts.append((index + 1, new_start, delta))


def _comment_out(work: _Work, index: int, end: int) -> None:
    """Turn the magic's lines into comments (`pass` keeps a block non-empty)."""
    for number in range(index, end + 1):
        work.out[number] = _comment(work.lines[number])
    first = work.out[index]
    indent = first[: len(first) - len(first.lstrip())]
    if indent:
        work.out[index] = indent + "pass  " + first.lstrip()


def _comment(line: str) -> str:
    """`    %time` → `    # %time`: same indentation, so columns stay close."""
    body = line.lstrip()
    if not body:
        return line
    return line[: len(line) - len(body)] + "# " + body


_CODES = {Action.DROP: "NB401", Action.RUN: "NB401", Action.REQUIRE: "NB403", Action.REFUSE: "NB402"}


def _mark(work: _Work, magic: Magic, escape: Escape, index: int, line: str) -> None:
    """Record the finding for the magic at ``index`` (0-based line)."""
    col = len(line) - len(line.lstrip()) + 1
    detail = _short(escape.text if magic.action is not Action.RUN else _magic_name(escape))
    hint = magic.note if magic.action is Action.REFUSE else ""
    work.marks.append(Mark(_CODES[magic.action], index + 1, col, detail, hint))


def _magic_name(escape: Escape) -> str:
    """`%time` for `%time x = f()`: what is dropped when the code is kept."""
    return escape.text if escape.call else escape.key


def _short(text: str, limit: int = 60) -> str:
    """Keep messages on one line."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
