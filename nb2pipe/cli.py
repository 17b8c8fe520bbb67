"""The ``nb2pipe`` command: parse arguments, call the library, print results.

Kept thin on purpose: every decision is made in ``convert.py`` and the
stages; this module only formats ``Result`` values and maps failures to
exit codes (0 ok, 1 findings or failed conversion, 2 usage, 123 internal).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 123


def _print(result) -> None:
    for diagnostic in result.diagnostics:
        click.echo(diagnostic.format(), err=diagnostic.severity.name == "ERROR")


def _summary(diagnostics) -> str:
    counts = {}
    for d in diagnostics:
        key = d.severity.name.lower()
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} {k}{'s' if n > 1 else ''}" for k, n in sorted(counts.items())) \
        or "no findings"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nb2pipe")
def main() -> None:
    """Turn tagged Jupyter notebooks into tested Ploomber pipelines."""


@main.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="Folder of the generated project (created if missing).")
@click.option("--force", is_flag=True,
              help="Overwrite generated files even if you edited them since.")
@click.option("--record", is_flag=True,
              help="Run the notebook and record the values crossing every task boundary: "
                   "typed signatures, fixtures under tests/data/ and characterization tests.")
@click.option("--repeat", type=click.IntRange(1, 10), default=2, show_default=True,
              help="With --record: runs of the notebook, to find values that differ between "
                   "runs.")
@click.option("--timeout", type=click.IntRange(1), default=600, show_default=True,
              help="With --record: seconds each cell may run.")
@click.option("--fixture-cap", type=click.FloatRange(0), default=20.0, show_default=True,
              help="With --record: megabytes of fixtures per notebook; larger outputs are "
                   "stored as fingerprints.")
@click.option("--python", "python", type=click.Path(exists=True, dir_okay=False),
              help="With --record: the interpreter to run the notebook's kernel with "
                   "(default: the notebook's python3 kernel).")
def convert(source: Path, out: Path, force: bool, record: bool, repeat: int, timeout: int,
            fixture_cap: float, python: str | None) -> None:
    """Convert NOTEBOOK (or every notebook in a FOLDER) into a pipeline project."""
    from .convert import RecordOptions, convert as run

    _require(source)
    options = RecordOptions(repeat=repeat, timeout=timeout, cap=int(fixture_cap * 1024 * 1024),
                            python=python) if record else None
    result = run(source, out, force=force, record=options)
    _print(result)
    if not result.ok:
        click.echo(f"nb2pipe: nothing written ({_summary(result.diagnostics)})", err=True)
        sys.exit(EXIT_FINDINGS)
    for package, seconds in result.extra.get("record_seconds", {}).items():
        runs = ", ".join(f"{s:.1f} s" for s in seconds)
        click.echo(f"recorded {package}: {len(seconds)} runs of the notebook ({runs})")
    click.echo(f"wrote {len(result.files)} files to {out} (tasks: {', '.join(result.tasks)})")
    click.echo(f"next: cd {out} && ploomber build && pytest")


@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
def check(sources: tuple[Path, ...]) -> None:
    """Lint tags and data flow of notebooks without writing anything.

    Exits 1 if any error or warning is found (usable as a pre-commit hook).
    """
    from .convert import check as run
    from .model import Severity

    worst = Severity.INFO
    for source in sources:
        _require(source)
        for result in run(source):
            _print(result)
            for d in result.diagnostics:
                worst = max(worst, d.severity)
    sys.exit(EXIT_FINDINGS if worst >= Severity.WARNING else EXIT_OK)


@main.command()
@click.argument("code")
def explain(code: str) -> None:
    """Explain a diagnostic CODE, such as NB304, and how to fix it."""
    from .codes import CODES, explain as text

    found = text(code)
    if found is None:
        raise click.UsageError(f"unknown code {code!r}; known codes: {', '.join(CODES)}")
    click.echo(found)


@main.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--in-place", is_flag=True,
              help="Build in OUT itself instead of a temporary copy next to it.")
@click.option("--timeout", type=int, default=600, show_default=True,
              help="Seconds each notebook cell may run.")
@click.option("--rerun", is_flag=True,
              help="Run the notebook again even for products recorded by convert --record.")
def verify(out: Path, in_place: bool, timeout: int, rerun: bool) -> None:
    """Build the pipeline in OUT and compare every product with the notebook.

    Builds the pipeline, then compares each product with the notebook's value
    at the end of its task: the value recorded by `convert --record` where
    there is one, else the value of a fresh run of the notebook.
    Exits 1 and names the first diverging task and variable on any difference.
    """
    from .verify import verify as run

    _require(out)
    failed = False
    for verified in run(out, in_place=in_place, timeout=timeout, live=rerun):
        failed |= _show_verified(verified)
    sys.exit(EXIT_FINDINGS if failed else EXIT_OK)


def _show_verified(verified) -> bool:
    """Print one notebook's table; True when it failed."""
    report = verified.report
    click.echo(f"== {verified.notebook}")
    if verified.notebook_changed:
        click.echo("   note: the notebook changed since it was converted; convert it again")
    if not report.ran:
        click.echo(f"   the notebook itself failed:\n{report.error}", err=True)
        return True
    if not report.built:
        click.echo(f"   ploomber build failed:\n{report.error}", err=True)
        return True
    width = max([len(r.task) for r in report.rows] + [4])
    click.echo(f"   {'task':<{width}}  {'variable':<24} {'against':<10} verdict")
    for row in report.rows:
        reason = f"  ({row.reason})" if row.reason else ""
        click.echo(f"   {row.task:<{width}}  {row.variable:<24} {row.against:<10} "
                   f"{row.verdict}{reason}")
    first = report.first_divergence
    if first is not None:
        click.echo(f"first divergence: task {first.task!r}, variable {first.variable!r}: "
                   f"{first.reason}", err=True)
        return True
    click.echo(f"   all {len(report.rows)} products match the notebook")
    return False


@main.command()
@click.argument("notebook", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Only show the tags that would be written.")
def tag(notebook: Path, dry_run: bool) -> None:
    """Write the task tags inferred from headings into an untagged NOTEBOOK.

    The only command that modifies a notebook: it adds `task:NAME` tags to the
    first code cell under each H1/H2 heading and prints each change.
    """
    from .tagging import apply, infer

    _require(notebook)
    changes, found = infer(notebook)
    errors = [d for d in found if d.severity.name == "ERROR"]
    for diagnostic in errors:
        click.echo(diagnostic.format(), err=True)
    if errors:
        sys.exit(EXIT_FINDINGS)
    if not changes:
        click.echo(f"{notebook}: already tagged, nothing to do")
        return
    if notebook.suffix != ".ipynb":
        raise click.UsageError("nb2pipe tag writes .ipynb notebooks only; "
                               "add the tags to a text notebook by hand")
    for change in changes:
        click.echo(f"{notebook.name}:cell {change.cell + 1}: + {change.tag}")
    if not dry_run:
        apply(notebook, changes)
        click.echo(f"wrote {len(changes)} tags to {notebook}")


def _require(path: Path) -> None:
    if not path.exists():
        raise click.UsageError(f"{path}: no such file or folder")


def run() -> None:
    """Entry point: map every failure to one message and an exit code."""
    from .errors import Nb2pipeError

    try:
        main(standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_FINDINGS)
    except click.ClickException as error:
        error.show()
        sys.exit(EXIT_USAGE if isinstance(error, click.UsageError) else EXIT_FINDINGS)
    except Nb2pipeError as error:
        click.echo(f"nb2pipe: {error}", err=True)
        sys.exit(error.exit_code)
    except Exception as error:  # a bug: say so, with what to report
        import traceback

        traceback.print_exc()
        click.echo(f"nb2pipe: internal error ({type(error).__name__}: {error}); "
                   "please report it with the notebook", err=True)
        sys.exit(EXIT_INTERNAL)
