"""The long fuzzing profile: the properties of tests/test_fuzz.py, many times.

Runs both properties (any notebook: (a)-(c); pure notebooks: (a)-(d)) in
rounds of ``--chunk`` examples with fresh seeds, in ``--jobs`` processes,
until ``--examples`` examples have run or ``--budget`` seconds have passed,
then prints the examples run per property, the distinct failures (each with
its notebook in py:percent) and the time.  Exit code 1 when anything failed.

    /tmp/v/bin/python benchmarks/fuzz.py --budget 1200 --jobs 2
    /tmp/v/bin/python benchmarks/fuzz.py --examples 10000 --budget 3600

Shrinking is off by default (it can take minutes per failure); ``--shrink``
turns it on to get minimal notebooks for regression tests.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
PROPERTIES = ("general", "pure")


@dataclass
class Tally:
    """What one worker saw."""

    examples: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PROPERTIES, 0))
    rounds: int = 0
    failures: list[str] = field(default_factory=list)


def _chunk(prop: str, seed: int, count: int, shrink: bool) -> tuple[int, list[str]]:
    """One hypothesis run of ``count`` examples; (examples run, failure reports)."""
    import hypothesis
    from hypothesis import HealthCheck, Phase, given, settings

    sys.path.insert(0, str(TESTS))
    import test_fuzz as fuzz

    ran = [0]
    check = fuzz.check_pure if prop == "pure" else fuzz.check_any
    phases = [p for p in Phase if shrink or p is not Phase.shrink]

    @hypothesis.seed(seed)
    @settings(max_examples=count, deadline=None, database=None, phases=phases,
              print_blob=False, report_multiple_bugs=True,
              suppress_health_check=list(HealthCheck))
    @given(fuzz.programs(pure=prop == "pure"))
    def run(program):
        ran[0] += 1
        check(program)

    try:
        run()
        return ran[0], []
    except BaseException as error:  # pytest.fail raises a BaseException
        found = list(getattr(error, "exceptions", None) or [error])
        return ran[0], [f"[{prop}, seed {seed}] {type(e).__name__}: {e}" for e in found]


def _worker(index: int, args: argparse.Namespace, deadline: float, target: int) -> Tally:
    if args.memory:
        # a runaway example raises MemoryError (reported) instead of meeting the OOM killer
        import resource

        limit = int(args.memory * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    tally = Tally()
    while time.monotonic() < deadline and sum(tally.examples.values()) < target:
        for prop in PROPERTIES:
            seed = args.seed + 1_000_003 * index + 7919 * tally.rounds + PROPERTIES.index(prop)
            ran, failures = _chunk(prop, seed, args.chunk, args.shrink)
            tally.examples[prop] += ran
            tally.failures += failures
            for text in failures:   # at once: a long run may be stopped early
                print("\n" + "=" * 80 + f"\n[job {index}] " + text + "\n" + "=" * 80, flush=True)
            done = sum(tally.examples.values())
            print(f"[job {index}] {prop}: {ran} examples (job total {done}), "
                  f"{len(tally.failures)} failures, {deadline - time.monotonic():.0f} s left",
                  flush=True)
            if time.monotonic() >= deadline:
                break
        tally.rounds += 1
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=1200, help="seconds (default 1200)")
    parser.add_argument("--examples", type=int, default=10_000,
                        help="stop after this many examples in all (default 10000)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--chunk", type=int, default=50, help="examples per hypothesis run")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--shrink", action="store_true", help="shrink failures (slow)")
    parser.add_argument("--memory", type=float, default=3.0,
                        help="GiB of address space per job (default 3; 0: no limit)")
    args = parser.parse_args(argv)

    started = time.monotonic()
    deadline = started + args.budget
    share = -(-args.examples // args.jobs)
    print(f"fuzzing with {args.jobs} jobs, seed {args.seed}, budget {args.budget:.0f} s, "
          f"target {args.examples} examples", flush=True)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        tallies = list(pool.map(_worker, range(args.jobs), [args] * args.jobs,
                                [deadline] * args.jobs, [share] * args.jobs))
    elapsed = time.monotonic() - started
    examples = {p: sum(t.examples[p] for t in tallies) for p in PROPERTIES}
    failures = [f for t in tallies for f in t.failures]
    distinct = list(dict.fromkeys(f.split("\n", 1)[1] if "\n" in f else f for f in failures))
    total = sum(examples.values())
    print(f"\nexamples: {total} ({', '.join(f'{p} {n}' for p, n in examples.items())})")
    print(f"failures: {len(failures)} ({len(distinct)} distinct)")
    print(f"time: {elapsed:.0f} s ({total / max(elapsed, 1e-9):.1f} examples/s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
