"""Nothing a notebook holds can inject into generated code, YAML or paths.

Task names, notebook file names, folder names and parameter values are
attacker-controlled when nb2pipe runs in CI over notebooks it did not write.
The tests convert for real and run ``ploomber build`` (its CLI entry point,
once per pipeline, in one interpreter because importing Ploomber is slow):
every task must receive exactly the notebook's values, nothing may be
written outside the output folder, and the source notebooks never change.
"""

from __future__ import annotations

import ast
import io
import json
import pickle
import shlex
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES, run_cli
from test_write import make_notebook

# `ploomber build -e SPEC` for each SPEC, through Ploomber's own CLI entry point.
BUILD_EACH = """
import sys
from ploomber_cli.cli import cmd_router
failed = []
for spec in sys.argv[1:]:
    sys.argv = ["ploomber", "build", "--force", "-e", spec]
    try:
        cmd_router()
    except SystemExit as done:
        if done.code:
            failed.append(spec)
print("failed:", failed)
sys.exit(1 if failed else 0)
"""

NAMES = ["a b;rm.ipynb", "x'\"{{y}}.ipynb", "$(touch pwned).ipynb", "é-ü ✓ 中.ipynb",
         "new\nline.ipynb", "tab\there.ipynb", "x\x85y\u2028z.ipynb", "{% raw %}[[x]].ipynb",
         "-n.ipynb", 'end".ipynb', "a'b.ipynb"]
# Names that break out of the docstrings nb2pipe writes into every module.
DOCSTRING_BREAKERS = ['x"""+__import__("os").system("touch pwned")+""".ipynb', "x\\N.ipynb",
                      "back\\slash.ipynb"]  # an invalid escape: SyntaxWarning, later an error
TEMPLATE_FOLDER = "d{{x}} [[y]] {%'é"
PARAMETERS = {
    "s_plain": "abc", "s_int": "1", "s_float": "1.5", "s_true": "true", "s_null": "null",
    "s_none": "None", "s_list": "[1, 2]", "s_dict": "{'a': 1}", "s_quoted": "'x'",
    "s_here": "{{here}}", "s_jinja": "{{ x }}", "s_filter": "{{ x|upper }}",
    "s_block": "{% if %}", "s_comment": "a{#b", "s_runtime": "[[x]]",
    "s_raw": "{% raw %}x{% endraw %}", "s_escape": "{{ '{{' }}",
    "s_yaml": "a: b\n- c: [d]\n? e\n&anchor *ref !!python/object:os.system",
    "s_quotes": "it's \"q\" '''", "s_newlines": "l1\nl2\r\nl3\r", "s_backslash": "a\\nb\\",
    "s_unicode": "héllo ✓ 中", "s_emoji": "😀 x", "s_control": "a\x00b\x85c\u2028d\te",
    "s_surrogate": "\ud800", "s_empty": "", "s_spaces": " 1 ", "s_hash": "# x",
    "s_long": "word " * 40, "s_python": "__import__('os').system('touch pwned')",
    "i": 7, "i_big": 10**30, "f": 0.1, "f_neg": -0.0, "b": False, "n": None,
    "l_mixed": [1, "2", True, None, "{{here}}", [["[[x]]"]], []],
    "d_keys": {"{{here}}": 1, "true": "[[x]]", "": {"{% x": ["1"]}},
    "l_empty": [], "d_empty": {}, "größe": "ü", "λ": 1,
}


def snapshot(folder: Path, skip: Path | None = None) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime of every file under ``folder`` (minus ``skip``)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        if path.is_file() or path.is_symlink():
            found[path.relative_to(folder).as_posix()] = (path.read_bytes(),
                                                          path.lstat().st_mtime_ns)
    return found


def show_notebook(path: Path) -> Path:
    """A notebook whose task saves what it received: ``seen = repr(p)``."""
    return make_notebook(path, [(["parameters"], "p = 'v'"), (["task:show"], "seen = repr(p)")])


def product(out: Path, package: str, task: str, variable: str) -> object:
    """The value a task saved (json or pickle for plain values)."""
    [path] = (out / "products" / package / task).glob(f"{variable}.*")
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    return pickle.loads(path.read_bytes())


def assert_no_injected_code(path: Path) -> None:
    """A generated module compiles without warnings, passes pyflakes, and its only
    top-level expression is its docstring (injected code would be another)."""
    from pyflakes.api import check
    from pyflakes.reporter import Reporter

    text = path.read_text(encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # invalid escapes: errors in future Pythons
        compile(text, str(path), "exec", dont_inherit=True)
    report = io.StringIO()
    assert check(text, str(path), Reporter(report, report)) == 0, report.getvalue()
    body = ast.parse(text).body
    for i, node in enumerate(body):
        if isinstance(node, ast.Expr):
            assert i == 0 and isinstance(node.value, ast.Constant) and isinstance(
                node.value.value, str), f"{path}:{node.lineno}: code outside the docstring"


@dataclass(frozen=True)
class Built:
    """One folder of hostile notebooks, converted and built once for all tests."""

    root: Path
    out: Path
    outside_before: dict[str, tuple[bytes, int]]
    outside_after: dict[str, tuple[bytes, int]]
    convert: subprocess.CompletedProcess
    build: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("hostile")
    source = root / "notebooks"
    for name in NAMES:
        show_notebook(source / name)
    make_notebook(source / "params.ipynb", [
        (["parameters"], "\n".join(f"{k} = {v!r}" for k, v in PARAMETERS.items())),
        (["task:show"], "seen = repr({" + ", ".join(f"{k!r}: {k}" for k in PARAMETERS) + "})")])
    make_notebook(source / TEMPLATE_FOLDER / "where.ipynb", [
        (["setup"], "import os"), (["task:locate"], "folder = os.getcwd()")])
    out = root / "out"
    before = snapshot(root)
    convert = run_cli("convert", str(source), "-o", str(out))
    after = snapshot(root, skip=out)
    specs = sorted(p.name for p in out.glob("pipeline.*.yaml")) if out.exists() else []
    build = subprocess.run([sys.executable, "-c", BUILD_EACH, *specs], cwd=out if specs else root,
                           capture_output=True, text=True, timeout=900)
    return Built(root, out, before, after, convert, build)


def test_hostile_notebooks_convert_and_build(built: Built) -> None:
    assert built.convert.returncode == 0, built.convert.stderr
    assert built.build.returncode == 0, built.build.stdout[-3000:] + built.build.stderr[-3000:]
    assert len(list(built.out.glob("pipeline.*.yaml"))) == len(NAMES) + 2


def test_nothing_is_written_outside_the_output_folder(built: Built) -> None:
    assert built.outside_after == built.outside_before  # no lock, staging or stray file left
    assert not list(built.root.rglob("pwned"))


@pytest.mark.parametrize("name", NAMES)
def test_notebook_names_never_inject(built: Built, name: str) -> None:
    package = json.loads((built.out / ".nb2pipe/manifest.json").read_text())["notebooks"]
    [entry] = [nb for nb in package if nb["source"].endswith("/" + name)]
    pkg = entry["package"]
    assert pkg.isidentifier() and pkg.isascii() and (built.out / pkg / "__init__.py").is_file()
    for path in [*(built.out / pkg).rglob("*.py"), *(built.out / "tests").glob(f"test_{pkg}_*.py")]:
        assert_no_injected_code(path)
    for kind in ("pipeline", "env"):
        data = yaml.safe_load((built.out / f"{kind}.{pkg}.yaml").read_text(encoding="utf-8"))
        expected = {"meta", "tasks"} if kind == "pipeline" else {"workdir", "p"}
        assert set(data) == expected
    assert product(built.out, pkg, "show", "seen") == "'v'"


def test_parameter_values_reach_the_task_exactly(built: Built) -> None:
    env = (built.out / "env.params.yaml").read_text(encoding="utf-8")
    data = "\n".join(line for line in env.splitlines() if not line.startswith("#"))
    assert data.count("{{") == 1  # only workdir's {{here}}
    assert not any(mark in data for mark in ("[[", "{%", "{#"))
    assert product(built.out, "params", "show", "seen") == repr(PARAMETERS)


def test_folder_names_with_template_syntax_keep_the_workdir(built: Built) -> None:
    folder = (built.root / "notebooks" / TEMPLATE_FOLDER).resolve()
    assert product(built.out, "where", "locate", "folder") == str(folder)


BAD_TAGS = ["task:../../x", "task:a;import os", "task:a b", "task:A", "task:x/y",
            "task:x.y", "task:é", "task:{{x}}", 'task:x"', "task:class", "after:../x",
            "test:../x", "step:../../x"]


def test_tag_values_never_reach_code_or_paths(tmp_path: Path) -> None:
    source = tmp_path / "notebooks"
    for i, tag in enumerate(BAD_TAGS):
        make_notebook(source / f"t{i}.ipynb", [(["task:load"], "x = 1"), ([tag], "y = x + 1")])
    before = snapshot(tmp_path)
    done = run_cli("convert", str(source), "-o", str(tmp_path / "out"))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    for i, tag in enumerate(BAD_TAGS):
        assert (f"t{i}.ipynb:cell 2: NB202" in done.stderr
                or f"t{i}.ipynb:cell 2: NB204" in done.stderr), (tag, done.stderr)
    assert snapshot(tmp_path) == before  # nothing written anywhere


@pytest.mark.parametrize("name", DOCSTRING_BREAKERS)
def test_notebook_names_cannot_close_a_docstring(name: str, tmp_path: Path) -> None:
    notebook = show_notebook(tmp_path / "nb" / name)
    done = run_cli("convert", str(notebook), "-o", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    for path in (tmp_path / "out").rglob("*.py"):
        assert_no_injected_code(path)


def test_readme_command_is_shell_safe(tmp_path: Path) -> None:
    notebook = show_notebook(tmp_path / "nb" / "$(touch pwned) x.ipynb")
    assert run_cli("convert", str(notebook), "-o", str(tmp_path / "out")).returncode == 0
    readme = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    [line] = [line for line in readme.splitlines() if line.startswith("nb2pipe convert ")]
    assert shlex.split(line) == ["nb2pipe", "convert", "../nb/$(touch pwned) x.ipynb", "-o", "."]


def test_non_finite_float_parameter_is_refused(tmp_path: Path) -> None:
    notebook = make_notebook(tmp_path / "nb" / "p.ipynb", [
        (["parameters"], "big = 1e999"), (["task:show"], "seen = repr(big)")])
    done = run_cli("convert", str(notebook), "-o", str(tmp_path / "out"))
    assert done.returncode == 1 and "NB211" in done.stderr


@pytest.mark.parametrize("name", ["workdir", "here"])
def test_parameter_names_of_the_glue_are_refused(name: str, tmp_path: Path) -> None:
    notebook = make_notebook(tmp_path / "nb" / "p.ipynb", [
        (["parameters"], f"{name} = 'v'"), (["task:show"], f"seen = repr({name})")])
    done = run_cli("convert", str(notebook), "-o", str(tmp_path / "out"))
    assert done.returncode == 1 and "NB312" in done.stderr


# --- the source is never modified ---------------------------------------------------------------


def test_convert_and_check_never_touch_the_fixture_notebooks(tmp_path: Path) -> None:
    """Over the whole corpus, bad/ included: same files, bytes and mtimes after.

    Each file goes through the library (fast); the folder through the CLI.
    """
    from nb2pipe.convert import check, convert

    before = snapshot(FIXTURES)
    files = sorted(p for p in FIXTURES.rglob("*")
                   if p.is_file() and "data" not in p.relative_to(FIXTURES).parts)
    assert len(files) > 20
    converted = 0
    for i, source in enumerate(files):
        check(source)
        converted += convert(source, tmp_path / f"out{i}").ok
    assert converted >= 3  # the good notebooks did convert
    assert run_cli("check", *map(str, files)).returncode == 1
    done = run_cli("convert", str(FIXTURES), "-o", str(tmp_path / "all"))
    assert done.returncode == 1 and "Traceback" not in done.stderr  # bad/ is in the folder
    assert snapshot(FIXTURES) == before
