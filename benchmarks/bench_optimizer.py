"""Benchmark: the budget optimiser at scale, and the exact MIP (HiGHS) it is audited against.

Random instances (the generator below): arm j costs about 2**j per unit, profit = cost x
(lognormal return - 0.8), so about half the options lose money and the best arm differs
between units; the budget is 30% of what giving every unit its best profitable arm costs.
Scenario "budget" has only the budget; "capacities" also caps arms 1, 2, 3 at 5%, 10% and
2% of the units (arm 0 unlimited), which binds.

Every run is a fresh subprocess, so its peak RSS (``ru_maxrss``) is its own: inputs +
optimiser. Before the timed call a warm-up on 100,000 units loads the numba kernels from
the cache (or compiles them: reported, not timed). The MIP rows solve the same generator's
1,000- and 10,000-unit instances with HiGHS (binary x_ij, mip_rel_gap 0, one thread) and
compare with the optimiser on the same instance. Prints a table; not a test.

    .venv/bin/python benchmarks/bench_optimizer.py [--sizes 1000000 10000000] [--arms 4]
        [--mip-sizes 1000 10000] [--scenarios budget capacities] [--dtype float64]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SEED = 20240607
CHUNK = 1_000_000  # units generated at a time: the generator's memory stays small
WARMUP = 100_000
HERE = Path(__file__).resolve()


def make_instance(n: int, k: int, dtype: str = "float64", seed: int = SEED):
    """(profit, cost, budget) for ``n`` units and ``k`` arms, generated chunk by chunk."""
    rng = np.random.default_rng(seed)
    profit, cost = np.empty((n, k), dtype=dtype), np.empty((n, k), dtype=dtype)
    best_cost = 0.0
    for lo in range(0, n, CHUNK):
        m = min(n, lo + CHUNK) - lo
        c = rng.uniform(0.5, 2.0, (m, 1)) * 2.0 ** np.arange(k) * rng.uniform(0.7, 1.3, (m, k))
        p = c * (np.exp(rng.normal(0.0, 0.6, (m, k))) - 0.8)
        cost[lo : lo + m], profit[lo : lo + m] = c, p
        best_cost += float(np.where(p > 0, c, 0.0).max(axis=1).sum())
    return profit, cost, 0.3 * best_cost


def capacities(n: int, k: int, scenario: str) -> np.ndarray | None:
    """None for "budget"; else arm 0 unlimited and the others at 5%, 10%, 2%, ... of n."""
    if scenario == "budget":
        return None
    shares = [np.inf] + [(0.05, 0.10, 0.02)[(j - 1) % 3] for j in range(1, k)]
    return np.array([s if np.isinf(s) else np.floor(s * n) for s in shares])


def solve_mip(profit, cost, budget, capacity=None, time_limit=600.0):
    """HiGHS on the exact model; returns (objective, dual bound, status, seconds)."""
    import highspy

    n, k = profit.shape
    capped = [] if capacity is None else [j for j in range(k) if np.isfinite(capacity[j])]
    rows_per_col = 2 + np.isin(np.arange(k), capped).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(np.tile(rows_per_col, n))])
    index, value = [], []
    for i in range(n):
        for j in range(k):
            index += [i, n] + ([n + 1 + capped.index(j)] if j in capped else [])
            value += [1.0, float(cost[i, j])] + ([1.0] if j in capped else [])
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n * k, n + 1 + len(capped)
    lp.col_cost_ = profit.reshape(-1).astype(np.float64)
    lp.col_lower_, lp.col_upper_ = np.zeros(n * k), np.ones(n * k)
    lp.row_lower_ = np.full(lp.num_row_, -highspy.kHighsInf)
    lp.row_upper_ = np.concatenate([np.ones(n), [budget], [capacity[j] for j in capped]])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = starts.astype(np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value)
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.integrality_ = [highspy.HighsVarType.kInteger] * (n * k)
    h = highspy.Highs()
    for option, setting in [
        ("output_flag", False),
        ("time_limit", time_limit),
        ("mip_rel_gap", 0.0),
        ("threads", 1),
    ]:
        h.setOptionValue(option, setting)
    h.passModel(lp)
    start = time.perf_counter()
    h.run()
    seconds = time.perf_counter() - start
    info = h.getInfo()
    status = h.modelStatusToString(h.getModelStatus())
    return info.objective_function_value, info.mip_dual_bound, status, seconds


# --------------------------------------------------------------------------- child


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(job: dict) -> dict:
    from liftwise.decide import optimize_budget

    n, k = job["n"], job["arms"]
    profit, cost, budget = make_instance(n, k, job["dtype"])
    cap = capacities(n, k, job["scenario"])
    data_mb = rss_mb()
    m = min(n, WARMUP)
    start = time.perf_counter()
    optimize_budget(
        profit[:m],
        cost[:m],
        budget * m / n,
        capacity=None if cap is None else np.floor(cap * m / n),
    )
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    a = optimize_budget(profit, cost, budget, capacity=cap)
    seconds = time.perf_counter() - start
    row = {
        "seconds": seconds,
        "warmup": warmup,
        "data_mb": data_mb,
        "peak_mb": peak_mb(),
        "profit": a.profit,
        "upper_bound": a.upper_bound,
        "relative_gap": a.relative_gap,
        "status": a.status,
        "iterations": a.iterations,
    }
    if job["mip"]:
        del a
        best, bound, status, mip_seconds = solve_mip(
            profit, cost, budget, cap, job["mip_time_limit"]
        )
        row.update(mip_seconds=mip_seconds, mip_profit=best, mip_bound=bound, mip_status=status)
    return row


def run(job: dict) -> dict:
    out = subprocess.run(
        [sys.executable, str(HERE), "--child", json.dumps(job)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child failed for {job}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--arms", type=int, default=4)
    parser.add_argument("--mip-sizes", type=int, nargs="*", default=[1_000, 10_000])
    parser.add_argument("--mip-time-limit", type=float, default=600.0)
    parser.add_argument(
        "--scenarios", nargs="+", default=["budget", "capacities"], choices=["budget", "capacities"]
    )
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return

    def job(n: int, scenario: str, mip: bool) -> dict:
        return {
            "n": n,
            "arms": args.arms,
            "dtype": args.dtype,
            "scenario": scenario,
            "mip": mip,
            "mip_time_limit": args.mip_time_limit,
        }

    print(
        f"{args.arms} arms, {args.dtype} inputs, budget = 30% of treating everyone at their best arm\n"
    )
    header = (
        f"{'scenario':<11}{'units':>11}{'time s':>9}{'warm-up s':>11}{'data MB':>9}{'peak MB':>9}"
        f"{'profit':>16}{'upper bound':>16}{'rel. gap':>10}{'status':>10}{'dual evals':>11}"
    )
    print(header)
    print("-" * len(header))
    for scenario in args.scenarios:
        for n in args.sizes:
            r = run(job(n, scenario, False))
            print(
                f"{scenario:<11}{n:>11,}{r['seconds']:>9.2f}{r['warmup']:>11.2f}{r['data_mb']:>9.0f}"
                f"{r['peak_mb']:>9.0f}{r['profit']:>16,.2f}{r['upper_bound']:>16,.2f}"
                f"{r['relative_gap']:>10.1e}{r['status']:>10}{r['iterations']:>11}"
            )
    if not args.mip_sizes:
        return
    print("\nExact MIP (HiGHS, one thread) on the same generator")
    header = (
        f"{'scenario':<11}{'units':>8}{'MIP s':>9}{'MIP status':>12}{'ours s':>9}{'MIP/ours':>10}"
        f"{'MIP optimum':>15}{'ours':>15}{'our bound':>15}"
    )
    print(header)
    print("-" * len(header))
    for scenario in args.scenarios:
        for n in args.mip_sizes:
            r = run(job(n, scenario, True))
            print(
                f"{scenario:<11}{n:>8,}{r['mip_seconds']:>9.2f}{r['mip_status']:>12}{r['seconds']:>9.3f}"
                f"{r['mip_seconds'] / r['seconds']:>10,.0f}{r['mip_profit']:>15,.4f}{r['profit']:>15,.4f}"
                f"{r['upper_bound']:>15,.4f}"
            )


if __name__ == "__main__":
    main()
