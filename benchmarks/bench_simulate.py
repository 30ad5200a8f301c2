"""Benchmark: world generation throughput (rows/s) and peak memory at 100K and 1M units.

Each run is a fresh process so its peak RSS is its own. Prints a table; not a test.
The peer is the same generator with one chunk holding every unit (no streaming), which
shows what streaming saves in memory at the cost of (almost) no speed.

    .venv/bin/python benchmarks/bench_simulate.py [--sizes 100000 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap

CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from liftwise.simulate import WorldConfig, simulate
    from liftwise.contracts.validate import validate_world
    world, units, days, chunk, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    config = WorldConfig(world=world, units=units, days=days, seed=1, chunk_units=chunk)
    start = time.perf_counter()
    manifest = simulate(config, out)
    seconds = time.perf_counter() - start
    peak_simulate = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    ok = validate_world(out).ok
    validate_seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rows": sum(manifest.sizes.values()),
                      "sizes": manifest.sizes, "peak_mb": peak_simulate,
                      "validate_seconds": validate_seconds, "valid": ok}))
    """
)


def run_once(world: str, units: int, days: int, chunk: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, world, str(units), str(days), str(chunk), f"{tmp}/w"],
            check=True,
            capture_output=True,
            text=True,
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default="fintech", choices=["fintech", "learning"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeats", type=int, default=3, help="runs per size (median quoted)")
    args = parser.parse_args()

    header = (
        f"{'units':>10} {'mode':>10} {'rows':>12} {'events':>12} {'median s':>9} "
        f"{'rows/s':>11} {'peak MB':>8} {'validate s':>10} {'valid':>5}"
    )
    print(f"world={args.world} days={args.days} repeats={args.repeats} (median of runs)")
    print(header)
    print("-" * len(header))
    event_table = "payments" if args.world == "fintech" else "sessions"
    results: dict[tuple[int, str], dict] = {}
    for units in args.sizes:
        modes = [("streamed", 50_000)]
        if units <= 1_000_000:
            modes.append(("one chunk", units))
        for mode, chunk in modes:
            runs = [run_once(args.world, units, args.days, chunk) for _ in range(args.repeats)]
            seconds = statistics.median(r["seconds"] for r in runs)
            peak = statistics.median(r["peak_mb"] for r in runs)
            first = runs[0]
            results[(units, mode)] = {"seconds": seconds, "peak": peak}
            print(
                f"{units:>10,} {mode:>10} {first['rows']:>12,} {first['sizes'][event_table]:>12,} "
                f"{seconds:>9.1f} {first['rows'] / seconds:>11,.0f} {peak:>8,.0f} "
                f"{statistics.median(r['validate_seconds'] for r in runs):>10.1f} {first['valid']!s:>5}",
                flush=True,
            )
    print()
    for units in args.sizes:
        if (units, "one chunk") in results:
            streamed, whole = results[(units, "streamed")], results[(units, "one chunk")]
            print(
                f"{units:,} units: streaming uses {streamed['peak'] / whole['peak']:.2f}x the memory "
                f"and {streamed['seconds'] / whole['seconds']:.2f}x the time of one chunk"
            )


if __name__ == "__main__":
    main()
