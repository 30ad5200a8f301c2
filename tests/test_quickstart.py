"""The README's main job on its default world: liftwise must beat the current policy and
random targeting at the same budget, in true (ground-truth) net profit."""

from __future__ import annotations

import pytest

from liftwise.pipeline.quickstart import run_quickstart


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    return run_quickstart(tmp_path_factory.mktemp("quickstart"))  # every default


def test_liftwise_beats_current_policy_and_random_at_the_same_budget(quickstart):
    liftwise = quickstart.policy("liftwise").incremental_profit
    assert liftwise > 0
    assert liftwise > quickstart.policy("current policy").incremental_profit
    assert liftwise > quickstart.policy("random, same budget").incremental_profit
    assert liftwise <= quickstart.policy("oracle, same budget").incremental_profit


def test_decisions_stay_within_budget_and_guardrails(quickstart, shell_page):
    table = quickstart.decisions.table
    assert table["expected_cost"].sum() <= quickstart.budget + 1e-6
    assert (table.loc[table["unit_id"] % 50 == 0, "arm"] == "control").all()
    summary = quickstart.decisions.summary()
    assert summary.gap >= 0 and summary.expected_profit <= summary.upper_bound + 1e-6
    assert quickstart.report.is_file()
    shell_page(quickstart.report.read_text())
