"""Start-up and one-notebook conversion time of the CLI (prints figures).

    python benchmarks/startup.py [--runs 5]

Reports the median wall time of `nb2pipe --help`, `nb2pipe check` and
`nb2pipe convert` on the bundled example, each in a fresh process (what a
user waits for), and which heavy modules a convert imports.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "fixtures" / "notebooks" / "churn.ipynb"


def timed(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nb2pipe", *args], check=False,
                       capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def heavy_imports() -> list[str]:
    code = ("import sys, tempfile, pathlib\n"
            "from nb2pipe.convert import convert\n"
            f"convert(pathlib.Path({str(EXAMPLE)!r}), pathlib.Path(tempfile.mkdtemp()) / 'o')\n"
            "print(' '.join(m for m in ('nbformat', 'jsonschema', 'jupytext', 'IPython', "
            "'ploomber', 'pandas', 'numpy') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return done.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"nb2pipe --help          {timed(['--help'], args.runs) * 1000:7.0f} ms")
        print(f"nb2pipe check example   {timed(['check', str(EXAMPLE)], args.runs) * 1000:7.0f} ms")
        convert = []
        for i in range(args.runs):
            out = Path(tmp) / f"out{i}"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "nb2pipe", "convert", str(EXAMPLE), "-o",
                            str(out)], check=True, capture_output=True)
            convert.append(time.perf_counter() - started)
        print(f"nb2pipe convert example {statistics.median(convert) * 1000:7.0f} ms")
    print("heavy modules imported by convert:", ", ".join(heavy_imports()) or "none")


if __name__ == "__main__":
    main()
