"""Benchmark: analysing an experiment of 10M exposures, 5 metrics and 8 segments, next to
GrowthBook's stats engine (gbstats) on the same data in the same run.

Data (seeded): 10M units in three arms (40/30/30), exposure times over 14 days, an
8-level segment column, and per unit a conversion (0/1), revenue with a pre-period
revenue (CUPED covariate), orders, clicks and a treatment cost. The 5 metrics: converted
(binary), revenue (CUPED), orders, revenue per order (ratio, delta method) and the net
profit (revenue - cost); clicks is a guardrail.

- liftwise: ``analyze_tables`` on the in-memory Arrow tables — the join of exposures and
  outcomes (first exposure, multi-arm units, missing rows), one pass of sums per column,
  and every statistic: SRM, each metric of each arm vs control (fixed and always-valid
  intervals, Holm), the guardrail, the profit, the 8-segment deep-dive and the 30-look
  confidence sequence. Also from Parquet files (reading included).
- gbstats: GrowthBook leaves the join and the sums to the warehouse's SQL; here pandas
  does that part (merge, then group-by sums per arm, and per arm and segment) and
  ``gbstats.gbstats.process_single_metric`` analyses each metric, fixed-horizon and
  sequential, overall and by segment (its frequentist engine, absolute differences).

Both sides get the same rows; the table prints the median of ``--repeats`` runs and the
largest relative difference between the two engines' overall intervals where their
formulas agree (Welch/CUPED/delta method; binary metrics differ on purpose: z vs t).

    .venv/bin/python benchmarks/bench_experiment.py [--units 10000000] [--repeats 5]
        [--segments 8] [--no-files] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from liftwise.experiment.analyze import analyze_files, analyze_tables
from liftwise.experiment.config import AnalysisConfig, parse_config

ARMS = {"control": 0.4, "a": 0.3, "b": 0.3}


def make_tables(units: int, segments: int, seed: int) -> tuple[pa.Table, pa.Table]:
    """Exposures (unit_id, arm, exposed_at) and outcomes (one row per unit)."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(np.array(list(ARMS)), units, p=list(ARMS.values()))
    start = np.datetime64("2026-03-01T00:00:00", "us")
    exposed_at = start + (rng.random(units) * 14 * 86_400e6).astype("timedelta64[us]")
    segment = rng.integers(0, segments, units)
    pre = rng.gamma(2.0, 50.0, units)
    treated = arm != "control"
    converted = (rng.random(units) < 0.10 + 0.01 * treated).astype(np.int8)
    orders = converted * (1 + rng.poisson(1.0, units)).astype(np.float64)
    revenue = orders * (0.3 * pre + rng.gamma(2.0, 15.0, units)) + 2.0 * (arm == "b")
    exposures = pa.table({"unit_id": np.arange(units), "arm": arm, "exposed_at": exposed_at})
    outcomes = pa.table(
        {
            "unit_id": np.arange(units),
            "converted": converted,
            "revenue": revenue,
            "pre_revenue": pre,
            "orders": orders,
            "clicks": rng.poisson(3.0, units).astype(np.float64),
            "cost": np.where(treated, 1.0, 0.0),
            "segment": pa.array(np.array([f"s{i}" for i in range(segments)])[segment]),
        }
    )
    return exposures, outcomes


def analysis_config() -> AnalysisConfig:
    return parse_config(
        {
            "control": "control",
            "arms": ARMS,
            "metrics": [
                {"name": "converted", "type": "binary"},
                {"name": "revenue", "type": "continuous", "covariate": "pre_revenue"},
                {"name": "orders", "type": "continuous"},
                {
                    "name": "revenue_per_order",
                    "type": "ratio",
                    "numerator": "revenue",
                    "denominator": "orders",
                },
                {
                    "name": "clicks",
                    "type": "continuous",
                    "guardrail": {"margin": 0.02, "relative": True},
                },
            ],
            "segments": ["segment"],
            "profit": {"revenue": "revenue", "cost": "cost"},
        },
        source="benchmark",
    )


# --- gbstats: the warehouse's sums (pandas), then the stats engine -----------------------

# GrowthBook's per-metric query columns -> (outcome column, second column or None)
GB_METRICS = {
    "converted": ("mean", "binomial", "converted", None),
    "revenue": ("mean_ra", "count", "revenue", "pre_revenue"),
    "orders": ("mean", "count", "orders", None),
    "revenue_per_order": ("ratio", "count", "revenue", "orders"),
    "net_profit": ("mean", "count", "net_profit", None),
}


def warehouse_sums(exposures: pd.DataFrame, outcomes: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """What GrowthBook's SQL returns: per (dimension, variation) users, sums, sums of
    squares and cross-products. Overall ("All") and by segment."""
    joined = exposures[["unit_id", "arm"]].merge(outcomes, on="unit_id", how="left")
    joined["net_profit"] = joined["revenue"] - joined["cost"]
    columns: dict[str, pd.Series] = {}
    for _, _, main, second in GB_METRICS.values():
        columns[f"{main}__sum"] = joined[main]
        columns[f"{main}__sq"] = joined[main] * joined[main]
        if second is not None:
            columns[f"{second}__sum"] = joined[second]
            columns[f"{second}__sq"] = joined[second] * joined[second]
            columns[f"{main}*{second}"] = joined[main] * joined[second]
    frame = pd.DataFrame(columns)
    frame["arm"], frame["segment"], frame["users"] = joined["arm"], joined["segment"], 1
    return {
        "overall": frame.drop(columns="segment").groupby("arm", sort=False).sum(),
        "segment": frame.groupby(["segment", "arm"], sort=False).sum(),
    }


def gbstats_rows(sums: pd.DataFrame, metric: str) -> list[dict[str, Any]]:
    """One metric's rows in GrowthBook's query format."""
    kind, _, main, second = GB_METRICS[metric]
    rows = []
    for key, row in sums.iterrows():
        dimension, arm = key if isinstance(key, tuple) else ("All", key)
        out = {
            "dimension": dimension,
            "variation": arm,
            "users": int(row["users"]),
            "count": int(row["users"]),
            "main_sum": row[f"{main}__sum"],
            "main_sum_squares": row[f"{main}__sq"],
        }
        if kind == "ratio":
            out |= {
                "denominator_sum": row[f"{second}__sum"],
                "denominator_sum_squares": row[f"{second}__sq"],
                "main_denominator_sum_product": row[f"{main}*{second}"],
            }
        elif kind == "mean_ra":
            out |= {
                "covariate_sum": row[f"{second}__sum"],
                "covariate_sum_squares": row[f"{second}__sq"],
                "main_covariate_sum_product": row[f"{main}*{second}"],
            }
        rows.append(out)
    return rows


def gbstats_analyse(sums: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Every metric, fixed-horizon and sequential, overall and by segment."""
    from gbstats.gbstats import process_single_metric
    from gbstats.models.settings import (
        AnalysisSettingsForStatsEngine,
        MetricSettingsForStatsEngine,
    )

    analyses = [
        AnalysisSettingsForStatsEngine(
            var_names=list(ARMS),
            var_ids=list(ARMS),
            weights=list(ARMS.values()),
            stats_engine="frequentist",
            difference_type="absolute",
            sequential_testing_enabled=sequential,
        )
        for sequential in (False, True)
    ]
    results = {}
    for metric, (kind, main_type, _, _) in GB_METRICS.items():
        settings = MetricSettingsForStatsEngine(
            id=metric,
            name=metric,
            statistic_type=kind,
            main_metric_type=main_type,
            denominator_metric_type="count" if kind == "ratio" else None,
            covariate_metric_type="count" if kind == "mean_ra" else None,
        )
        for level, table in sums.items():
            results[(metric, level)] = process_single_metric(
                gbstats_rows(table, metric), settings, analyses
            )
    return results


def gbstats_pipeline(exposures: pd.DataFrame, outcomes: pd.DataFrame) -> tuple[dict, float, float]:
    start = time.perf_counter()
    sums = warehouse_sums(exposures, outcomes)
    middle = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = gbstats_analyse(sums)
    return results, middle - start, time.perf_counter() - middle


# --- agreement and timing ----------------------------------------------------------------


def agreement(analysis: Any, gb: dict) -> float:
    """Largest relative difference of the overall fixed-horizon interval ends where the two
    engines use the same formula (every metric but the binary one)."""
    worst = 0.0
    for (metric, level), result in gb.items():
        if level != "overall" or metric == "converted":
            continue
        variations = result.analyses[0].dimensions[0].variations
        for index, arm in enumerate(list(ARMS)[1:], start=1):
            ci = variations[index].ci
            if metric == "net_profit":
                ours = next(p.per_unit for p in analysis.profit if p.treatment == arm)
            else:
                ours = next(
                    c.absolute
                    for c in analysis.comparisons
                    if (c.metric, c.treatment) == (metric, arm)
                )
            for mine, theirs in ((ours.ci_low, ci[0]), (ours.ci_high, ci[1])):
                worst = max(worst, abs(float(mine) - theirs) / max(abs(theirs), 1e-300))
    return worst


def timed(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=10_000_000)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5, help="runs per engine (median quoted)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-files", action="store_true", help="skip the Parquet-file run")
    args = parser.parse_args()

    start = time.perf_counter()
    exposures, outcomes = make_tables(args.units, args.segments, args.seed)
    config = analysis_config()
    print(
        f"{args.units:,} exposures, 5 metrics (+1 guardrail), {args.segments} segments, 3 arms; "
        f"data generated in {time.perf_counter() - start:.1f} s; median of {args.repeats} runs; "
        f"{os.cpu_count()} CPUs"
    )
    rows: list[tuple[str, float, str]] = []
    seconds, analysis = timed(lambda: analyze_tables(exposures, outcomes, config), args.repeats)
    liftwise_seconds = seconds
    rows.append(("liftwise: join + sums + every statistic (Arrow in memory)", seconds, ""))
    if not args.no_files:
        with tempfile.TemporaryDirectory() as tmp:
            pq.write_table(exposures, Path(tmp) / "exposures.parquet")
            pq.write_table(outcomes, Path(tmp) / "outcomes.parquet")
            seconds, _ = timed(
                lambda: analyze_files(
                    Path(tmp) / "exposures.parquet", Path(tmp) / "outcomes.parquet", config
                ),
                args.repeats,
            )
        rows.append(("liftwise: the same from Parquet files (reading included)", seconds, ""))

    exposures_df, outcomes_df = exposures.to_pandas(), outcomes.to_pandas()
    runs = [gbstats_pipeline(exposures_df, outcomes_df) for _ in range(args.repeats)]
    sums_seconds = statistics.median(r[1] for r in runs)
    engine_seconds = statistics.median(r[2] for r in runs)
    total = statistics.median(r[1] + r[2] for r in runs)
    rows += [
        ("gbstats: join + group-by sums (pandas, the SQL's part)", sums_seconds, ""),
        ("gbstats: process_single_metric x 5 metrics x (all, segment)", engine_seconds, ""),
        ("gbstats: total", total, f"{total / liftwise_seconds:.2f}x liftwise"),
    ]
    width = max(len(name) for name, _, _ in rows)
    print(f"{'step':<{width}} {'median s':>9}  note")
    print("-" * (width + 30))
    for name, value, note in rows:
        print(f"{name:<{width}} {value:>9.2f}  {note}")
    print()
    print(
        f"liftwise also computed: SRM, Holm, the guardrail, 2 profit comparisons, "
        f"{len(analysis.segments)} segment breakdowns, {len(analysis.paths)} sequential paths "
        f"of {analysis.paths[0].n_total.size} looks"
    )
    print(
        "overall intervals, liftwise vs gbstats (Welch, CUPED, delta method): "
        f"max relative difference {agreement(analysis, runs[0][0]):.1e}"
    )


if __name__ == "__main__":
    main()
