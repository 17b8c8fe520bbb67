"""Measure nb2pipe on the real notebooks of ../shared/corpus/dev/.

For each notebook (copied to a work folder, since they write files): convert
it (untagged: split at headings), build the pipeline with `ploomber build`,
and compare every product with the notebook's value at that point.  Prints a
table and counts by outcome and failure category; writes results.json.

Run it with the interpreter of an environment that has the corpus's
requirements AND nb2pipe installed (generated pipelines run in the
environment they are built in), e.g.:

    /tmp/corpus-venv/bin/python benchmarks/corpus.py --work /tmp/corpus-bench
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from nb2pipe.convert import convert
from nb2pipe.equivalence import check

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "dev"


def one(folder: Path, work: Path) -> dict:
    copy = work / folder.name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(folder, copy)
    notebook = next(p for p in sorted(copy.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts)
    out = work / (folder.name + "-out")
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = convert(notebook, out)
    seconds = time.perf_counter() - started
    row = {"id": folder.name, "convert_seconds": round(seconds, 3),
           "diagnostics": [f"{d.code} {d.message}" for d in result.diagnostics
                           if d.severity.name != "INFO"]}
    if not result.ok:
        errors = [d for d in result.diagnostics if d.severity.name == "ERROR"]
        row.update(stage="convert", category=errors[0].code if errors else "error",
                   detail=errors[0].format() if errors else "")
        return row
    report = check(notebook, out, python=sys.executable, timeout=300)
    if not report.ran:
        row.update(stage="original", category="notebook-failed", detail=report.error[:300])
    elif not report.built:
        last = [l for l in report.error.splitlines() if "Error" in l][-1:] or [report.error[-200:]]
        row.update(stage="build", category="build-failed", detail=last[0][:300])
    elif not report.same:
        first = report.first_divergence
        row.update(stage="verify", category=f"value-{first.verdict}",
                   detail=f"{first.task}.{first.variable}: {first.reason[:200]}")
    else:
        row.update(stage="ok", category="reproduced", detail=f"{len(report.rows)} products")
    row["products"] = len(report.rows)
    row["verdicts"] = dict(Counter(r.verdict for r in report.rows))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/nb2pipe-corpus"))
    parser.add_argument("--only", nargs="*", help="ids to run (default: all)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    folders = sorted(p for p in CORPUS.iterdir() if p.is_dir())
    if args.only:
        folders = [f for f in folders if f.name in args.only]
    rows = []
    for folder in folders:
        try:
            row = one(folder, args.work)
        except Exception as error:  # a crash is a finding of its own
            import traceback

            row = {"id": folder.name, "stage": "crash", "category": type(error).__name__,
                   "detail": str(error)[:300], "traceback": traceback.format_exc()}
        rows.append(row)
        print(f"{row['id']:<55} {row['stage']:<9} {row['category']:<18} {row.get('detail', '')[:90]}",
              flush=True)
    (args.work / "results.json").write_text(json.dumps(rows, indent=2))
    stages = Counter(r["stage"] for r in rows)
    total = len(rows)
    converted = total - stages["convert"] - stages["crash"]
    print(f"\n{total} notebooks: {converted} converted, "
          f"{stages['ok'] + stages['verify']} built, {stages['ok']} reproduced every value")
    print("by category:", dict(Counter(r["category"] for r in rows)))
    verdicts = Counter()
    for r in rows:
        verdicts.update(r.get("verdicts", {}))
    print("product verdicts:", dict(verdicts))
    times = [r["convert_seconds"] for r in rows if "convert_seconds" in r]
    if times:
        print(f"convert time per notebook: median {statistics.median(times):.3f}s, "
              f"max {max(times):.3f}s")


if __name__ == "__main__":
    main()
