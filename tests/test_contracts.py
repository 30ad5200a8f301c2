"""Contract violations give documented, located errors; events are checked field by field."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from liftwise.contracts import world_contracts
from liftwise.contracts.events import ExposureEvent, parse_event
from liftwise.contracts.validate import validate_world
from liftwise.errors import UserError
from liftwise.io import sha256_file
from liftwise.simulate import World, load_world


@pytest.fixture
def world_copy(fintech_world: World, tmp_path) -> World:
    target = tmp_path / "world"
    shutil.copytree(fintech_world.path, target)
    return load_world(target)


def _rewrite(world: World, table: str, frame: pd.DataFrame, *, update_hash: bool = True) -> None:
    """Replace a table (keeping its Arrow types where possible), optionally fixing the hash."""
    path = world.table_path(table)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    if update_hash:
        manifest = json.loads((world.path / "manifest.json").read_text())
        manifest["tables"][table]["sha256"] = sha256_file(path)
        (world.path / "manifest.json").write_text(json.dumps(manifest))


def _lines(report) -> list[str]:
    return [v.one_line() for v in report.violations]


def test_bad_values_are_reported_with_file_column_row_and_rule(world_copy: World):
    customers = world_copy.read("customers")
    customers.loc[17, "segment"] = "vip"
    customers.loc[42, "tenure_months"] = -3
    _rewrite(world_copy, "customers", customers)
    report = validate_world(world_copy.path)
    lines = _lines(report)
    assert (
        "customers.parquet: column 'segment', row 17: isin(['mass', 'affluent', 'premium', 'student', 'sme']) (value: vip)"
        in lines
    )
    assert any(
        line.startswith(
            "customers.parquet: column 'tenure_months', row 42: greater_than_or_equal_to(0)"
        )
        for line in lines
    )
    assert report.total == 2


def test_duplicate_keys_and_broken_references_are_reported(world_copy: World):
    cards = world_copy.read("cards")
    cards.loc[5, "card_id"] = cards.loc[4, "card_id"]
    _rewrite(world_copy, "cards", cards)
    payments = world_copy.read("payments")
    payments.loc[3, "merchant_id"] = 10**9
    _rewrite(world_copy, "payments", payments)
    lines = _lines(validate_world(world_copy.path))
    assert "cards.parquet: column 'card_id', row 5: duplicate key" in lines
    assert (
        "payments.parquet: column 'merchant_id', row 3: references merchants(merchant_id) (value: 1000000000)"
        in lines
    )


def test_a_payment_on_someone_elses_card_is_a_violation(world_copy: World):
    payments = world_copy.read("payments")
    cards = world_copy.read("cards")
    foreign = cards.loc[cards["customer_id"] != payments.loc[0, "customer_id"], "card_id"].iloc[0]
    payments.loc[0, "card_id"] = foreign
    _rewrite(world_copy, "payments", payments)
    lines = _lines(validate_world(world_copy.path))
    assert any(
        line.startswith(
            "payments.parquet: column 'card_id, customer_id', row 0: references cards(card_id, customer_id)"
        )
        for line in lines
    )


def test_outcome_under_another_arm_than_assigned_is_a_violation(world_copy: World):
    outcomes = world_copy.read("outcomes")
    outcomes.loc[9, "arm"] = "fee_waiver" if outcomes.loc[9, "arm"] != "fee_waiver" else "control"
    _rewrite(world_copy, "outcomes", outcomes)
    lines = _lines(validate_world(world_copy.path))
    assert any(
        "outcomes.parquet: column 'unit_id, arm', row 9: references assignments(unit_id, arm)"
        in line
        for line in lines
    )


def test_tampered_file_missing_table_and_missing_column(world_copy: World):
    merchants = world_copy.read("merchants").drop(columns=["city"])
    _rewrite(world_copy, "merchants", merchants, update_hash=False)
    world_copy.table_path("current_policy").unlink()
    lines = _lines(validate_world(world_copy.path))
    assert "merchants.parquet: column '<file>', row -: content hash differs from manifest" in lines
    assert (
        "merchants.parquet: column 'city', row -: column required by contract is missing" in lines
    )
    assert (
        "current_policy.parquet: column '<table>', row -: table listed in contract is missing"
        in lines
    )


def test_arms_table_needs_exactly_one_control_and_ratios_summing_to_one(world_copy: World):
    arms = world_copy.read("arms")
    arms.loc[1, "is_control"] = True
    _rewrite(world_copy, "arms", arms)
    lines = _lines(validate_world(world_copy.path))
    assert "arms.parquet: column '<table>', row -: one_control (value: False)" in lines


def test_not_a_world_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"manifest\.json is missing"):
        validate_world(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(UserError, match="invalid JSON at line 1"):
        validate_world(tmp_path)


def test_arrow_schema_and_pandera_schema_come_from_one_declaration():
    for contract in world_contracts("fintech").values():
        arrow = contract.arrow_schema()
        pandera = contract.pandera_schema()
        assert arrow.names == contract.column_names == list(pandera.columns)
        assert (
            arrow.metadata[b"liftwise.contract"].decode() == f"{contract.name}/{contract.version}"
        )


def test_timestamps_are_written_in_microseconds(fintech_world: World):
    schema = pq.read_schema(fintech_world.table_path("payments"))
    assert schema.field("ts").type == pa.timestamp("us")


def test_events_validate_field_by_field():
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    event = parse_event(
        {
            "event": "exposure", "occurred_at": now.isoformat(), "request_id": "r-1",
            "decision_id": "d-1", "campaign": "c", "unit_id": 3, "arm": "cashback_5",
            "model_version": "4", "expected_profit": 1200.0, "cost": 1000.0,
        }
    )  # fmt: skip
    assert isinstance(event, ExposureEvent) and event.schema_version == "1"
    with pytest.raises(
        UserError, match=r"column 'unit_id': Input should be greater than or equal to 0"
    ):
        parse_event(
            {
                "event": "outcome",
                "occurred_at": now.isoformat(),
                "unit_id": -1,
                "metric": "m",
                "value": 1,
            }
        )
    with pytest.raises(UserError, match=r"column 'event': unknown event type 'click'"):
        parse_event({"event": "click"})
    with pytest.raises(UserError, match=r"column 'colour': Extra inputs are not permitted"):
        parse_event(
            {
                "event": "outcome",
                "occurred_at": now.isoformat(),
                "unit_id": 1,
                "metric": "m",
                "value": 1,
                "colour": "red",
            }
        )
