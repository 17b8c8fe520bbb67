"""Large inputs: time and peak memory of `nb2pipe convert` (prints figures).

    python benchmarks/large.py

Makes, in a temporary folder, a ~65 MB notebook whose outputs embed images
(70 cells, 0.9 MB of base64 each) and a 10,000-cell notebook split into 100
sections by headings, and converts each in a fresh process.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KERNEL = {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}


def big(path: Path) -> None:
    image = base64.b64encode(os.urandom(700_000)).decode()
    cells = [{"cell_type": "code", "execution_count": i + 1, "metadata": {}, "id": f"c{i}",
              "source": f"x{i} = {i}\n",
              "outputs": [{"output_type": "display_data", "metadata": {},
                           "data": {"image/png": image, "text/plain": "<Figure>"}}]}
             for i in range(70)]
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": KERNEL,
                                "cells": cells}))


def many(path: Path) -> None:
    cells = []
    for i in range(10_000):
        if i % 100 == 0:
            cells.append({"cell_type": "markdown", "metadata": {}, "id": f"m{i}",
                          "source": f"## Part {i // 100}\n"})
        previous = f"v{i - 1}" if i % 100 else str(i)
        cells.append({"cell_type": "code", "execution_count": None, "metadata": {},
                      "id": f"k{i}", "outputs": [], "source": f"v{i} = {previous} + 1\n"})
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": KERNEL,
                                "cells": cells}))


# Runs the conversion as its child and prints the child's peak RSS: RUSAGE_CHILDREN
# of this script would be the peak of every conversion so far, not of this one.
_WRAPPER = ("import resource, subprocess, sys\n"
            "code = subprocess.run(sys.argv[1:], capture_output=True).returncode\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)\n")


def measure(notebook: Path, out: Path) -> tuple[float, int, int]:
    """Seconds, peak RSS (KB) of the converting process, exit code."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _WRAPPER, sys.executable, "-m", "nb2pipe",
                           "convert", str(notebook), "-o", str(out)],
                          capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    peak, code = (int(word) for word in done.stdout.split())
    return seconds, peak, code


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in (("embedded images", big), ("10,000 cells", many)):
            notebook = Path(tmp) / f"{make.__name__}.ipynb"
            make(notebook)
            size = notebook.stat().st_size / 2**20
            seconds, peak, code = measure(notebook, Path(tmp) / f"out_{make.__name__}")
            print(f"{name:<16} {size:6.1f} MB  {seconds:6.1f} s  peak RSS {peak / 1024:6.0f} MB"
                  f"  exit {code}")


if __name__ == "__main__":
    main()
