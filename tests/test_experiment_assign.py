"""Assignment: the documented hash (golden vectors), uniformity, weights, coverage that never
moves a unit, holdout, mutually exclusive layers (docs/experiments.md)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import stats

from liftwise.errors import UserError
from liftwise.experiment.assign import (
    Design,
    assign_units,
    bucket,
    buckets,
    check_exclusive,
    uniformity_check,
    unit_keys,
)
from liftwise.stats.srm import srm_check

# (salt, unit id, first 8 bytes of SHA-256("salt:id") in hex, bucket): docs/experiments.md
GOLDEN = [
    ("exp-1", 0, "37143f337b74f025", 0.21515269286051697),
    ("exp-1", 1, "cdacb68492119f8a", 0.8034166406305928),
    ("exp-1", 42, "40154296f56f7a76", 0.25032440362468644),
    ("exp-1", "user-42", "1eda32862bd558ea", 0.12051692748703624),
    ("checkout-test", 123456789, "413b9a5f1b8c9ff7", 0.2548157198139499),
    ("checkout-test", "a1b2c3", "b07a35e3b19eae25", 0.6893647843258984),
    ("holdout/global", 7, "abad4617a1392848", 0.6706126983346833),
    ("layer/pricing", 7, "f9350923967af2b1", 0.973465510548049),
    ("", "", "e7ac0786668e0ff0", 0.9049687102438427),
    ("café", "ünït", "30b870d8712e0f10", 0.1903143433020703),
]


@pytest.mark.parametrize(("salt", "unit", "prefix", "value"), GOLDEN)
def test_golden_vectors(salt, unit, prefix, value):
    assert bucket(salt, unit) == value  # exact: the bucket is a multiple of 2**-53
    # The documented algorithm, written out independently of the implementation.
    digest = hashlib.sha256(f"{salt}:{unit}".encode()).digest()
    assert digest[:8].hex() == prefix
    assert (int.from_bytes(digest[:8], "big") >> 11) / 2**53 == value


def test_golden_assignments():
    design = Design(name="exp-1", arms={"control": 0.5, "treatment": 0.5})
    table = assign_units(np.arange(10), design)
    assert table["arm"].tolist() == [
        "control",
        "treatment",
        "treatment",
        "control",
        "control",
        "treatment",
        "treatment",
        "treatment",
        "treatment",
        "treatment",
    ]
    assert table["status"].eq("assigned").all() and table["experiment"].eq("exp-1").all()
    promo = Design(
        name="promo",
        arms={"policy": 0.45, "current_policy": 0.45, "control": 0.1},
        coverage=0.5,
        holdout=0.1,
    )
    table = assign_units([f"u{i}" for i in range(1, 9)], promo)
    assert table["arm"].tolist() == [
        "policy",
        "current_policy",
        None,
        "control",
        None,
        "policy",
        None,
        None,
    ]
    assert table["status"].tolist() == [
        "assigned",
        "assigned",
        "not_covered",
        "assigned",
        "not_covered",
        "assigned",
        "not_covered",
        "holdout",
    ]


def test_integer_ids_hash_the_same_in_every_form():
    expected = bucket("s", "42")
    assert bucket("s", 42) == bucket("s", 42.0) == bucket("s", np.int64(42)) == expected
    assert unit_keys(np.array([42.0, 7.0])) == ["42", "7"]
    assert unit_keys(np.array([42, 7], dtype=np.uint32)) == ["42", "7"]
    assert unit_keys(np.array([42, "x"], dtype=object)) == ["42", "x"]
    # batches agree with single units, across the batch boundary
    ids = np.arange(100_005)
    many = buckets("s", ids)
    assert [bucket("s", int(i)) for i in (0, 99_999, 100_000, 100_004)] == list(
        many[[0, 99_999, 100_000, 100_004]]
    )


@pytest.mark.parametrize(
    ("ids", "row"),
    [
        (np.array([1.0, 2.5]), 1),
        (np.array([1.0, np.nan]), 1),
        (np.array(["a", None], dtype=object), 1),
        (np.array([True, False], dtype=object), 0),
        (np.array([3, 1.5], dtype=object), 1),
    ],
)
def test_bad_unit_ids_name_the_row(ids, row):
    with pytest.raises(UserError) as err:
        buckets("s", ids, source="units.csv")
    assert err.value.file == "units.csv" and err.value.row == row


def test_buckets_are_uniform_and_the_check_can_fail():
    values = buckets("uniformity", np.arange(200_000))
    assert ((values >= 0) & (values < 1)).all()
    assert uniformity_check(values).p_value > 0.001
    assert stats.kstest(values, "uniform").pvalue > 0.001
    # sequential ids are not a problem, nor are text ids
    text = buckets("uniformity", [f"customer-{i}" for i in range(50_000)])
    assert uniformity_check(text, bins=50).p_value > 0.001
    # a biased "hash" (the square of a uniform) is caught
    assert uniformity_check(values**1.05).p_value < 1e-6


def test_salts_give_independent_draws():
    ids = np.arange(100_000)
    a, b = buckets("exp-a", ids), buckets("exp-b", ids)
    table = np.histogram2d(a, b, bins=10, range=[[0, 1], [0, 1]])[0]
    assert stats.chi2_contingency(table).pvalue > 0.001
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01


def test_arm_shares_follow_the_weights():
    design = Design(name="shares", arms={"policy": 0.45, "current_policy": 0.45, "control": 0.1})
    table = assign_units(np.arange(100_000), design)
    counts = table["arm"].value_counts().to_dict()
    assert srm_check(counts, design.arms).p_value > 0.001
    assert abs(counts["control"] / 100_000 - 0.1) < 0.005


def test_raising_coverage_never_moves_a_unit_between_arms():
    ids = np.arange(50_000)
    weights = {"a": 0.2, "b": 0.3, "c": 0.5}
    previous = None
    for coverage in (0.05, 0.2, 0.5, 0.8, 1.0):
        table = assign_units(ids, Design(name="ramp", arms=weights, coverage=coverage))
        enrolled = table["status"].eq("assigned").to_numpy()
        assert abs(enrolled.mean() - coverage) < 0.01
        counts = table.loc[enrolled, "arm"].value_counts().to_dict()
        assert srm_check(counts, weights).p_value > 0.001
        if previous is not None:
            before = previous["status"].eq("assigned").to_numpy()
            assert (enrolled | ~before).all()  # nobody leaves
            assert (table["arm"][before] == previous["arm"][before]).all()  # nobody moves
        previous = table
    assert previous is not None and previous["status"].eq("assigned").all()


def test_holdout_is_shared_by_name_and_never_assigned():
    ids = np.arange(40_000)
    one = assign_units(ids, Design(name="one", arms={"a": 0.5, "b": 0.5}, holdout=0.05))
    two = assign_units(ids, Design(name="two", arms={"x": 0.3, "y": 0.7}, holdout=0.05))
    other = assign_units(
        ids, Design(name="three", arms={"a": 0.5, "b": 0.5}, holdout=0.05, holdout_name="q3")
    )
    held = one["status"].eq("holdout").to_numpy()
    assert abs(held.mean() - 0.05) < 0.005
    assert (two["status"].eq("holdout").to_numpy() == held).all()
    assert one.loc[held, "arm"].isna().all()
    overlap = (other["status"].eq("holdout").to_numpy() & held).mean()
    assert overlap < 0.005  # another holdout group is an independent 5%: ~0.25% overlap
    # the holdout does not tilt the arms of the rest
    counts = one.loc[~held, "arm"].value_counts().to_dict()
    assert srm_check(counts, {"a": 0.5, "b": 0.5}).p_value > 0.001


def test_layers_are_mutually_exclusive_and_independent_of_other_layers():
    ids = np.arange(60_000)
    left = Design(name="left", arms={"a": 0.5, "b": 0.5}, layer="pricing", layer_range=(0, 0.4))
    right = Design(name="right", arms={"a": 0.5, "b": 0.5}, layer="pricing", layer_range=(0.4, 1))
    elsewhere = Design(name="banner", arms={"on": 0.5, "off": 0.5}, layer="ui")
    check_exclusive([left, right, elsewhere])
    t_left, t_right, t_ui = (assign_units(ids, d) for d in (left, right, elsewhere))
    in_left = t_left["status"].eq("assigned").to_numpy()
    in_right = t_right["status"].eq("assigned").to_numpy()
    assert not (in_left & in_right).any()
    assert (in_left | in_right).all()
    assert abs(in_left.mean() - 0.4) < 0.01
    assert set(t_left.loc[~in_left, "status"]) == {"outside_layer"}
    # arms within the layer's slice are balanced, and crossing layers is independent
    assert srm_check(t_left.loc[in_left, "arm"].value_counts().to_dict(), left.arms).p_value > 0.001
    cross = np.array(
        [
            [((t_left["arm"] == a) & (t_ui["arm"] == b)).sum() for b in ("on", "off")]
            for a in ("a", "b")
        ]
    )
    assert stats.chi2_contingency(cross).pvalue > 0.001


def test_check_exclusive_refuses_overlaps_and_shared_salts():
    a = Design(name="a", arms={"x": 1.0}, layer="l", layer_range=(0, 0.6))
    b = Design(name="b", arms={"x": 1.0}, layer="l", layer_range=(0.5, 1))
    with pytest.raises(UserError, match="overlap in layer 'l'"):
        check_exclusive([a, b])
    c = Design(name="c", arms={"x": 1.0}, salt="same")
    d = Design(name="d", arms={"x": 1.0}, salt="same")
    with pytest.raises(UserError, match="share the salt 'same'"):
        check_exclusive([c, d])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"arms": {"a": 0.5, "b": 0.4}}, "sum to 1"),
        ({"arms": {"a": 1.0, "b": 0.0}}, "must be > 0"),
        ({"arms": {}}, "at least one arm"),
        ({"arms": {"a": 1.0}, "coverage": 0.0}, "greater than 0"),
        ({"arms": {"a": 1.0}, "holdout": 1.0}, "less than 1"),
        ({"arms": {"a": 1.0}, "layer_range": (0.5, 0.5)}, "lo < hi"),
        ({"arms": {"a": 1.0}, "salt": "layer/x"}, "must not start"),
    ],
)
def test_invalid_designs(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        Design(name="bad", **kwargs)
