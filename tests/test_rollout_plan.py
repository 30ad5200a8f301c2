"""The rollout plan (typed YAML, one-line errors naming the key) and the traffic split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from liftwise.errors import UserError
from liftwise.hashing import buckets
from liftwise.rollout.plan import load_plan, parse_plan
from liftwise.rollout.split import (
    BASELINE_CODE,
    CANDIDATE_CODE,
    HOLDOUT_CODE,
    expected_shares,
    variant_codes,
)

PLAN = {
    "name": "fintech-v2",
    "candidate": {"model_dir": "candidate"},
    "baseline": {"champion": "liftwise-fintech"},
    "holdout": 0.05,
    "steps": [
        {"name": "canary", "share": 0.01},
        {"name": "ramp", "share": 0.1},
        {"name": "half", "share": 0.5},
        {"name": "full", "share": 1.0},
    ],
}


def test_plan_file_resolves_paths_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(PLAN))
    plan = load_plan(path)
    assert plan.candidate.model_dir == tmp_path / "candidate"
    assert plan.baseline.kind == "champion"
    assert [plan.business(i) for i in range(4)] == ["no_harm", "no_harm", "uplift", "none"]
    assert plan.thresholds.alpha == pytest.approx(0.05)
    assert plan.digest() == load_plan(path).digest()


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"steps": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.2}]}, "'steps'"),
        ({"steps": [{"name": "a", "share": 1.5}]}, "'steps[0].share'"),
        ({"holdout": 1.0}, "'holdout'"),
        ({"candidate": {"model_name": "m"}}, "'candidate'"),
        ({"baseline": {"champion": "m", "model_dir": "x"}}, "'baseline'"),
        ({"thresholds": {"max_p99_ms": -1}}, "'thresholds.max_p99_ms'"),
        ({"steps": [{"name": "a", "share": 0.5, "gates": ["speed"]}]}, "'steps[0].gates[0]'"),
        ({"surprise": 1}, "'surprise'"),
    ],
)
def test_bad_plans_name_the_key(change: dict, where: str) -> None:
    with pytest.raises(UserError) as err:
        parse_plan({**PLAN, **change}, source="plan.yaml")
    line = err.value.one_line()
    assert "plan.yaml" in line and where in line and "\n" not in line


def test_ramping_only_moves_units_from_baseline_to_candidate() -> None:
    ids = np.arange(200_000)
    before = variant_codes("r", ids, 0.05, 0.10)
    after = variant_codes("r", ids, 0.05, 0.50)
    moved = before != after
    assert ((before[moved] == BASELINE_CODE) & (after[moved] == CANDIDATE_CODE)).all()
    assert (before[before == CANDIDATE_CODE] == after[before == CANDIDATE_CODE]).all()
    rolled_back = variant_codes("r", ids, 0.05, 0.0)
    assert set(np.unique(rolled_back)) == {HOLDOUT_CODE, BASELINE_CODE}
    assert ((rolled_back == HOLDOUT_CODE) == (after == HOLDOUT_CODE)).all()
    shares = expected_shares(0.05, 0.5)
    for code, name in enumerate(("holdout", "baseline", "candidate")):
        assert (after == code).mean() == pytest.approx(shares[name], abs=0.004)  # type: ignore[index]


def test_split_uses_the_experiment_hash_with_independent_salts() -> None:
    ids = np.arange(50_000)
    held = buckets("rollout/r/holdout", ids) < 0.05
    assert ((variant_codes("r", ids, 0.05, 0.3) == HOLDOUT_CODE) == held).all()
    codes = variant_codes("r", ids, 0.05, 0.3)
    # the ramp draw is independent of the holdout draw: 30% of held-out units would be candidates
    ramp = buckets("rollout/r/candidate", ids) < 0.3
    assert ramp[held].mean() == pytest.approx(0.3, abs=0.03)
    assert (
        variant_codes("r", [str(i) for i in ids[:100]], 0.05, 0.3).tolist() == codes[:100].tolist()
    )


def test_latency_histogram_quantiles_are_conservative() -> None:
    from liftwise.rollout.measure import VariantCounters

    counters = VariantCounters()
    for ms in [0.8] * 980 + [12.0] * 15 + [70.0] * 5:
        counters.record(ms, error=False)
    assert counters.quantile_ms(0.99) == 15  # 12 ms lies in (10, 15]
    assert counters.quantile_ms(0.999) == 75
    assert counters.slower_than(50) == 5 and counters.slower_than(10) == 20
    total = counters.add(counters)
    assert total.decisions == 2000 and total.quantile_ms(0.99) == 15
