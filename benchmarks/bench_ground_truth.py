"""Benchmark: true net profit of targeting the top K by each learner on the fintech world,
against the oracle (ranking by the true expected profit), random targeting and the
current policy. Learners are fitted on a 70% split of the randomised campaign; every
policy is valued exactly, from ground truth, on the 30% held-out units.

    .venv/bin/python benchmarks/bench_ground_truth.py [--units 100000] [--learners ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pandas as pd

from liftwise.evaluate.economics import campaign_economics, expected_profit
from liftwise.evaluate.race import split_by_arm
from liftwise.features import experiment_frame
from liftwise.learn.registry import DEFAULT_RACE, make_learner
from liftwise.simulate import WorldConfig, load_world, policy_value, simulate
from liftwise.simulate.truth import expected_net_matrix

SHARES = (0.1, 0.2, 0.3, 0.5)


def top_k_policy(
    unit_ids: np.ndarray, profit: np.ndarray, arms: list[str], share: float
) -> pd.DataFrame:
    """Treat the ``share`` of units with the highest best-arm profit, with that arm."""
    best = profit.argmax(axis=1)
    order = np.argsort(-profit.max(axis=1), kind="stable")[: round(share * len(unit_ids))]
    return pd.DataFrame(
        {"unit_id": unit_ids[order], "arm": np.asarray(arms, dtype=object)[best[order]]}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--learners", default=",".join(DEFAULT_RACE))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        simulate(
            WorldConfig(world="fintech", units=args.units, days=args.days, seed=args.seed),
            f"{tmp}/w",
        )
        world = load_world(f"{tmp}/w")
        frame = experiment_frame(world)
        truth, arms_table = world.read("ground_truth"), world.read("arms")
        current = world.read("current_policy")
    t, X, y = frame.treatment_codes(), frame.X(), frame.y("converted")
    held_out = split_by_arm(t, 0.3, args.seed)
    ids = frame.data["unit_id"].to_numpy()[held_out]
    truth = truth[truth["unit_id"].isin(ids)]
    economics = campaign_economics(frame, world.campaign.arms, rows=~held_out)
    value = economics.value_per_outcome
    contact, redemption = economics.arrays(frame.treatments)
    treatments = list(frame.treatments)

    oracle = expected_net_matrix(truth, arms_table).reindex(ids)
    oracle_profit = oracle[treatments].to_numpy() - oracle[[frame.control]].to_numpy()
    rows = {"oracle": oracle_profit}
    seconds = {}
    for name in args.learners.split(","):
        started = time.perf_counter()
        model = make_learner(name, args.seed).fit(X[~held_out], t[~held_out], y[~held_out])
        outcomes = model.predict_outcomes(X[held_out])
        seconds[name] = time.perf_counter() - started
        rows[name] = expected_profit(
            outcomes, value_per_outcome=value, contact_cost=contact, redemption_cost=redemption
        )
    rows["random"] = np.random.default_rng(args.seed).random((len(ids), len(treatments)))

    print(f"fintech world: {args.units:,} customers, {args.days} days, seed {args.seed}; "
          f"valued on {len(ids):,} held-out customers; value per conversion {value:,.0f} VND")  # fmt: skip
    header = (
        f"{'policy':<16}"
        + "".join(f"{f'top {s:.0%}':>16}{'% oracle':>9}" for s in SHARES)
        + f"{'fit s':>8}"
    )
    print(header)
    print("-" * len(header))
    oracle_values = {}
    for name, profit in rows.items():
        cells = ""
        for share in SHARES:
            policy = top_k_policy(ids, profit, treatments, share)
            gain = policy_value(policy, truth, arms_table).incremental_expected_net_profit
            oracle_values.setdefault(share, gain)
            cells += f"{gain:>16,.0f}{gain / oracle_values[share]:>9.0%}"
        print(f"{name:<16}{cells}{seconds.get(name, 0):>8.1f}")
    current_held = current[current["unit_id"].isin(ids)]
    gain = policy_value(current_held, truth, arms_table).incremental_expected_net_profit
    treated = int((current_held["arm"] != frame.control).sum())
    print(
        f"{'current policy':<16}{gain:>16,.0f} (treats {treated:,} = {treated / len(ids):.0%} of customers)"
    )


if __name__ == "__main__":
    main()
