"""Measure `nb2pipe convert --record` on the real notebooks of ../shared/corpus/dev/.

For each notebook (copied to a work folder, since they write files):

1. run it once with plain nbclient (fresh kernel, its folder as cwd), in a copy
   of its own, for the baseline wall time;
2. convert it with ``--record`` (untagged: split at headings), which runs it
   ``--repeat`` times and writes fixtures and characterization tests;
3. run the generated tests with pytest in the project BEFORE any ploomber
   build (the recorded tests need no build; the product tests skip);
4. ``nb2pipe verify`` it (build in a temporary copy, compare every product
   with the notebook's values).

Prints a table and the summaries (converted, tests passing, verify passing,
fixture sizes, recording overhead = recording run / plain run, failures by
category); writes results.json in the work folder after every notebook, so
an interrupted run keeps what finished (``--report`` prints it again).

Run it with the interpreter of an environment that has the corpus's
requirements AND nb2pipe installed, e.g.:

    nice -n 10 /tmp/corpus-venv/bin/python benchmarks/record_corpus.py --work /tmp/record-bench
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from nb2pipe.convert import RecordOptions, convert
from nb2pipe.verify import verify

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "dev"
MB = 1024 * 1024
REPRODUCES = "test_reproduces_the_recorded_run"


def fresh_copy(folder: Path, dest: Path) -> Path:
    """A writable copy of a (read-only) corpus folder."""
    remove(dest)
    shutil.copytree(folder, dest, copy_function=shutil.copyfile)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    return dest


def remove(path: Path) -> None:
    if path.exists():
        for p in [path, *path.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                p.chmod(p.stat().st_mode | 0o700)
        shutil.rmtree(path, ignore_errors=True)


def notebook_files() -> dict[str, str]:
    """id -> the notebook's path inside its folder (the corpus manifest)."""
    manifest = CORPUS.parent / "manifest.csv"
    if not manifest.is_file():
        return {}
    with open(manifest, newline="") as handle:
        return {r["id"]: r["notebook_file"] for r in csv.DictReader(handle)}


def find_notebook(copy: Path, relative: str | None) -> Path:
    if relative and (copy / relative).is_file():
        return copy / relative
    return next(p for p in sorted(copy.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts)


def plain_run(notebook: Path, timeout: int) -> dict:
    """Wall time of an uninstrumented run (kernel start included, as in the recording)."""
    import nbformat
    from nbclient import NotebookClient

    started = time.monotonic()
    try:
        nb = nbformat.read(notebook, as_version=4)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                                resources={"metadata": {"path": str(notebook.parent.resolve())}})
        client.execute(env={**os.environ, "MPLBACKEND": "Agg",
                            "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
    except Exception as error:  # the notebook's own failure is data
        last = (re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines() or [""])[-1]
        return {"ok": False, "seconds": round(time.monotonic() - started, 3),
                "error": f"{type(error).__name__}: {last}"[:300]}
    return {"ok": True, "seconds": round(time.monotonic() - started, 3)}


def run_tests(out: Path, junit: Path, tested: list[str], timeout: int) -> dict:
    """pytest in the unbuilt project; per tested task, the reproduces test's outcome."""
    junit.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               f"--junitxml={junit}"]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=out, capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"returncode": None, "error": f"pytest timed out after {timeout}s",
                "passed": 0, "failed": 0, "errors": 1, "skipped": 0, "reproduces": {}}
    result = {"returncode": done.returncode, "seconds": round(time.monotonic() - started, 3),
              "passed": 0, "failed": 0, "errors": 0, "skipped": 0, "failures": []}
    cases = []
    if junit.is_file():
        cases = list(ET.parse(junit).getroot().iter("testcase"))
    for case in cases:
        outcome, message = "passed", ""
        for tag, name in (("failure", "failed"), ("error", "errors"), ("skipped", "skipped")):
            child = case.find(tag)
            if child is not None:
                outcome = name
                message = (child.get("message") or child.text or "").strip()
                break
        result[outcome] += 1
        test = f"{case.get('classname', '')}::{case.get('name', '')}"
        if outcome in ("failed", "errors"):
            result["failures"].append(f"{test}: {message.splitlines()[0][:240] if message else ''}")
        case.set("outcome", outcome)
        case.set("short", message.splitlines()[0][:240] if message else "")
    reproduces = {}
    for task in tested:
        case = next((c for c in cases if c.get("name") == REPRODUCES
                     and c.get("classname", "").split(".")[-1] == f"test_{task}"), None)
        reproduces[task] = "missing" if case is None else case.get("outcome")
    result["reproduces"] = reproduces
    if not cases:
        result["error"] = (done.stdout + done.stderr).strip()[-600:]
    return result


def run_verify(out: Path, timeout: int, live: bool) -> dict:
    started = time.monotonic()
    extra = {"live": True} if live else {}  # compare with a fresh run, not the recording
    verified = verify(out, python=sys.executable, timeout=timeout, **extra)
    seconds = round(time.monotonic() - started, 3)
    row = {"seconds": seconds, "same": all(v.report.same for v in verified)}
    for v in verified:
        report = v.report
        row["products"] = len(report.rows)
        row["verdicts"] = dict(Counter(r.verdict for r in report.rows))
        if report.same:
            continue
        if not report.ran:
            row.update(category="verify-notebook-failed", detail=report.error[-300:])
        elif not report.built:
            lines = [line for line in report.error.splitlines() if "Error" in line][-1:]
            row.update(category="verify-build-failed",
                       detail=(lines[0] if lines else report.error[-300:])[:300])
        else:
            first = report.first_divergence
            row.update(category=f"verify-value-{first.verdict}",
                       detail=f"{first.task}.{first.variable}: {first.reason[:240]}")
        break
    return row


def one(folder: Path, work: Path, args, relative: str | None) -> dict:
    row: dict = {"id": folder.name, "failures": []}
    # 1. baseline: a plain run, in a copy of its own (notebooks write files)
    plain_copy = fresh_copy(folder, work / (folder.name + "-plain"))
    row["plain"] = plain_run(find_notebook(plain_copy, relative), args.timeout)
    if not row["plain"]["ok"]:
        row["failures"].append({"category": "plain-run-failed", "stage": "plain",
                                "detail": row["plain"]["error"]})
    # 2. convert --record
    copy = fresh_copy(folder, work / folder.name)
    notebook = find_notebook(copy, relative)
    out = work / (folder.name + "-out")
    remove(out)
    options = RecordOptions(repeat=args.repeat, timeout=args.timeout, cap=int(args.cap * MB),
                            python=sys.executable)
    started = time.monotonic()
    result = convert(notebook, out, record=options)
    row["convert_seconds"] = round(time.monotonic() - started, 3)
    row["diagnostics"] = [f"{d.code} {d.message}" for d in result.diagnostics
                          if d.severity.name != "INFO"]
    row["codes"] = dict(Counter(d.code for d in result.diagnostics))
    row["converted"] = bool(result.ok)
    if not result.ok:
        errors = [d for d in result.diagnostics if d.severity.name == "ERROR"]
        code = errors[0].code if errors else "error"
        row["failures"].append({"category": f"convert-{code}", "stage": "convert",
                                "detail": errors[0].format()[:600] if errors else ""})
        return row
    entry = result.extra["manifest"]["notebooks"][0]
    recording = entry.get("recording") or {}
    row["tasks"] = len(entry["tasks"])
    row["recording"] = {k: recording.get(k) for k in ("runs", "seconds", "bytes", "tested")}
    row["strategies"] = dict(Counter(v["strategy"] for v in recording.get("values", [])))
    data = out / recording.get("data", "tests/data")
    row["fixture_bytes"] = recording.get("bytes", 0)
    row["fixture_bytes_on_disk"] = sum(p.stat().st_size for p in data.rglob("*") if p.is_file()) \
        if data.is_dir() else 0
    row["notes"] = sorted({v["note"] for v in recording.get("values", []) if v.get("note")})[:10]
    # run times: Result.extra["record_seconds"] (current), else the manifest (older)
    seconds = (result.extra.get("record_seconds") or {}).get(entry["package"]) \
        or recording.get("seconds") or []
    row["recording"]["seconds"] = list(seconds)
    if seconds and row["plain"]["ok"] and row["plain"]["seconds"] > 0:
        base = row["plain"]["seconds"]
        row["overhead"] = round(statistics.mean(seconds) / base, 3)
        row["overhead_per_run"] = [round(s / base, 3) for s in seconds]
        row["convert_over_plain"] = round(row["convert_seconds"] / base, 3)
    # 3. the generated tests, before any build
    tests = run_tests(out, work / (folder.name + ".junit.xml"), recording.get("tested", []),
                      args.test_timeout)
    row["tests"] = tests
    row["tests_pass"] = tests["failed"] == 0 and tests["errors"] == 0 and "error" not in tests
    if not row["tests_pass"]:
        bad = [t for t, o in tests["reproduces"].items() if o != "passed"]
        category = "tests-reproduce-failed" if bad else "tests-other-failed"
        row["failures"].append({"category": category, "stage": "tests",
                                "detail": "; ".join(tests.get("failures", [])[:3])
                                or tests.get("error", "")[:300]})
    # 4. verify (builds in a temporary copy; OUT stays unbuilt)
    try:
        row["verify"] = run_verify(out, args.timeout, args.live)
    except Exception as error:
        row["verify"] = {"same": False, "category": "verify-crash",
                         "detail": f"{type(error).__name__}: {error}"[:300],
                         "traceback": traceback.format_exc()}
    if not row["verify"]["same"]:
        row["failures"].append({"category": row["verify"].get("category", "verify-failed"),
                                "stage": "verify", "detail": row["verify"].get("detail", "")})
    return row


def line(row: dict) -> str:
    convert_cell = "ok" if row.get("converted") else next(
        (f["category"].removeprefix("convert-") for f in row["failures"] if f["stage"] in
         ("convert", "crash")), "-")
    tests = row.get("tests")
    tests_cell = f"{tests['passed']}/{tests['failed'] + tests['errors']}/{tests['skipped']}" \
        if tests else "-"
    repro = tests["reproduces"] if tests else {}
    repro_cell = f"{sum(o == 'passed' for o in repro.values())}/{len(repro)}" if tests else "-"
    ver = row.get("verify")
    verify_cell = "-" if ver is None else "ok" if ver["same"] else \
        ver.get("category", "fail").removeprefix("verify-")
    mb = f"{row['fixture_bytes'] / MB:.2f}" if "fixture_bytes" in row else "-"
    plain = row.get("plain", {})
    rec = (row.get("recording") or {}).get("seconds") or []
    over = f"{row['overhead']:.2f}" if "overhead" in row else "-"
    return (f"{row['id']:<52} {convert_cell:<8} {tests_cell:>9} {repro_cell:>6} "
            f"{verify_cell:<22} {mb:>7} {plain.get('seconds', 0):>7.1f} "
            f"{'/'.join(f'{s:.1f}' for s in rec):>11} {over:>6}")


HEADER = (f"{'id':<52} {'convert':<8} {'p/f/s':>9} {'repro':>6} {'verify':<22} {'fix MB':>7} "
          f"{'plain s':>7} {'record s':>11} {'ovh':>6}")


def summarize(rows: list[dict]) -> None:
    print("\n" + HEADER)
    for row in rows:
        print(line(row))
    total = len(rows)
    converted = [r for r in rows if r.get("converted")]
    tests_pass = [r for r in converted if r.get("tests_pass")]
    verify_pass = [r for r in converted if r.get("verify", {}).get("same")]
    all_ok = [r for r in converted if r.get("tests_pass") and r.get("verify", {}).get("same")]
    print(f"\n{total} notebooks: {len(converted)}/{total} converted with --record, "
          f"{len(tests_pass)} whose generated tests all pass (before build), "
          f"{len(verify_pass)} whose verify passes, {len(all_ok)} both")
    repro = Counter(o for r in converted for o in r["tests"]["reproduces"].values())
    print(f"{REPRODUCES} per tested task: {dict(repro)}")
    sizes = [r["fixture_bytes"] / MB for r in converted]
    if sizes:
        print(f"fixtures per notebook: median {statistics.median(sizes):.3f} MB, "
              f"max {max(sizes):.3f} MB, total {sum(sizes):.2f} MB")
    strategies = Counter()
    for r in converted:
        strategies.update(r.get("strategies", {}))
    print("strategies (values):", dict(strategies))
    over = [r["overhead"] for r in rows if "overhead" in r]
    if over:
        print(f"recording overhead (mean recording run / plain run): median "
              f"{statistics.median(over):.2f}x, max {max(over):.2f}x "
              f"({max(rows, key=lambda r: r.get('overhead', 0))['id']})")
    whole = [r["convert_over_plain"] for r in rows if "convert_over_plain" in r]
    if whole:
        print(f"whole convert --record / plain run: median {statistics.median(whole):.2f}x, "
              f"max {max(whole):.2f}x")
    print("failures by category:", dict(Counter(f["category"] for r in rows
                                                 for f in r["failures"])))
    refused = Counter(stage_of(f["category"]) for r in rows for f in r["failures"]
                      if f["stage"] == "convert")
    print("convert failures by stage (NB6xx: the recorded run; others: before it):",
          dict(refused))
    for r in rows:
        for f in r["failures"]:
            print(f"  {r['id']}: [{f['category']}] {f['detail'][:300]}")


def run_info(args) -> dict:
    """What was measured: the command and the nb2pipe source (commit, local edits)."""
    import nb2pipe

    source = Path(nb2pipe.__file__).resolve().parents[1]

    def git(*command: str) -> str:
        done = subprocess.run(["git", *command], cwd=source, capture_output=True, text=True)
        return done.stdout.strip()

    return {"argv": sys.argv, "python": sys.executable, "nb2pipe": str(source),
            "commit": git("rev-parse", "HEAD"), "dirty": git("status", "--short", "nb2pipe"),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def stage_of(category: str) -> str:
    """convert-NB6xx come from the recorded run; other codes from the static stages."""
    code = category.removeprefix("convert-")
    return "record" if code.startswith("NB6") else "analysis" if code.startswith("NB") else code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/nb2pipe-record-corpus"))
    parser.add_argument("--only", nargs="*", help="ids to run (default: all)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    parser.add_argument("--repeat", type=int, default=2, help="recorded runs per notebook")
    parser.add_argument("--cap", type=float, default=20.0, help="fixture MB per notebook")
    parser.add_argument("--test-timeout", type=int, default=1800,
                        help="seconds for the generated tests of one notebook")
    parser.add_argument("--live", action="store_true",
                        help="verify against a fresh run of the notebook (verify --rerun)")
    parser.add_argument("--report", action="store_true",
                        help="print the table and summaries of an existing results.json")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = args.work / "results.json"
    if args.report:
        summarize(json.loads(results.read_text()))
        return
    folders = sorted(p for p in CORPUS.iterdir() if p.is_dir())
    if args.only:
        folders = [f for f in folders if f.name in args.only]
    relative = notebook_files()
    (args.work / "run.json").write_text(json.dumps(run_info(args), indent=2))
    rows = []
    print(HEADER, flush=True)
    for folder in folders:
        started = time.monotonic()
        try:
            row = one(folder, args.work, args, relative.get(folder.name))
        except Exception as error:  # a crash is a finding of its own
            row = {"id": folder.name, "failures": [{
                "category": f"crash-{type(error).__name__}", "stage": "crash",
                "detail": str(error)[:300]}], "traceback": traceback.format_exc()}
        row["total_seconds"] = round(time.monotonic() - started, 3)
        rows.append(row)
        results.write_text(json.dumps(rows, indent=2))
        print(line(row), flush=True)
    summarize(rows)


if __name__ == "__main__":
    main()
