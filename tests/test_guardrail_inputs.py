"""Guardrails never switch off silently: a contact cap without a history is refused, exposure
times in any ISO 8601 form compare in UTC, and an eligibility value that cannot be compared
with its feature is refused (at load when the operator says so) - in `decide` and `serve`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liftwise.decide.batch import decide_batch
from liftwise.decide.config import DecisionConfig, EligibilityRule, load_decision_config
from liftwise.decide.guardrails import block_contact_cap, block_ineligible, read_exposure_history
from liftwise.errors import UserError
from liftwise.serve.app import build_service
from liftwise.serve.config import ServeConfig
from liftwise.times import utc_timestamps
from test_decide import toy  # noqa: F401  (the shared toy model fixture)

NOW_UTC = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)


def test_contact_cap_without_history_is_refused_naming_the_config(toy):  # noqa: F811
    bundle, X, ids, features = toy
    config = DecisionConfig.model_validate(
        {"budget": 100, "contact_cap": {"max_contacts": 1, "window_days": 7}}
    )
    with pytest.raises(UserError, match=r"^caps\.yaml, column 'contact_cap': a contact cap"):
        decide_batch(bundle, X, ids, features, config, source="caps.yaml")


@pytest.mark.parametrize("now", [NOW_UTC, NOW_UTC.replace(tzinfo=None)], ids=["aware", "naive"])
def test_exposure_times_with_zones_offsets_and_mixed_forms_compare_in_utc(now):
    # unit 1: 11:30 UTC today (offset form), inside a 1-day window ending at 12:00 UTC
    # unit 2: 12:30 UTC - after now once the +07:00 is honoured (05:30 naive would count)
    # unit 3: a bare date and a naive time, both inside the window
    exposures = pd.DataFrame(
        {
            "unit_id": [1, 2, 3, 3, 4],
            "occurred_at": [
                "2026-06-01T18:30:00+07:00",
                "2026-06-01T19:30:00+07:00",
                "2026-06-01",
                "2026-06-01 11:00:00",
                "2026-05-30T23:00:00Z",
            ],
        }
    )
    capped = block_contact_cap(
        np.array([1, 2, 3, 4]), exposures, max_contacts=1, window_days=1, now=now
    )
    assert capped.tolist() == [True, False, True, False]


def test_a_naive_time_after_an_offset_time_is_not_shifted():
    parsed = utc_timestamps(pd.Series(["2026-06-01T10:00:00+07:00", "2026-06-01 10:00:00"]))
    assert [t.hour for t in parsed] == [3, 10]


def test_experiment_exposure_times_keep_their_zones_apart():
    import pyarrow as pa

    from liftwise.experiment.data import _timestamps

    micros = _timestamps(pa.chunked_array([["2026-06-01T10:00:00+07:00", "2026-06-01 10:00"]]), "x")
    hours = [dt.datetime.fromtimestamp(m / 1e6, dt.UTC).hour for m in micros]
    assert hours == [3, 10]


def test_unparseable_exposure_time_is_refused_by_row(tmp_path: Path):
    history = tmp_path / "exposures.csv"
    history.write_text("unit_id,occurred_at\n1,2026-06-01T10:00:00Z\n2,01/06/2026\n")
    with pytest.raises(
        UserError, match=r"exposures\.csv, column 'occurred_at', row 1: not a timestamp"
    ):
        read_exposure_history(history)
    history.write_text("unit_id,when\n1,2026-06-01\n")
    with pytest.raises(UserError, match=r"exposures\.csv, column 'occurred_at': missing column"):
        read_exposure_history(history)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "rule, message",
    [
        ("{feature: tenure, op: '>=', value: thirty}", "operator '>=' compares numbers"),
        ("{feature: tenure, op: '<', value: [1, 2]}", "operator '<' takes one value, not a list"),
    ],
)
def test_eligibility_value_that_cannot_order_is_refused_at_load(tmp_path, rule, message):
    path = _write(tmp_path / "g.yaml", f"budget: 5\neligibility:\n  - {rule}\n")
    with pytest.raises(UserError, match=rf"g\.yaml, column 'eligibility\.0': {message}"):
        load_decision_config(path)


def test_numeric_strings_order_as_numbers(tmp_path):
    path = _write(
        tmp_path / "g.yaml", "budget: 5\neligibility:\n  - {feature: t, op: '>=', value: '6'}\n"
    )
    config = load_decision_config(path)
    assert config.eligibility[0].value == 6.0
    features = pd.DataFrame({"t": [3, 6, 9]})
    blocked = block_ineligible(features, ("a",), config.eligibility, "g.yaml")
    assert blocked[:, 0].tolist() == [True, False, False]


@pytest.mark.parametrize(
    "rule, values",
    [
        (EligibilityRule(feature="f", op="==", value="thirty"), [1.0, 2.0]),
        (EligibilityRule(feature="f", op=">=", value=3), ["hanoi", "hue"]),
    ],
)
def test_eligibility_value_of_the_wrong_kind_for_its_feature_is_refused(rule, values):
    features = pd.DataFrame({"f": values})
    with pytest.raises(UserError, match=r"g\.yaml, column 'f': eligibility value"):
        block_ineligible(features, ("a",), [rule], "g.yaml")


def test_serve_refuses_the_same_config_errors(tmp_path):
    path = _write(tmp_path / "g.yaml", "eligibility:\n  - {feature: t, op: '>', value: thirty}\n")
    config = ServeConfig(model_dir=tmp_path / "model", decision_config=path, budget=5.0)
    with pytest.raises(UserError, match=r"column 'eligibility\.0': operator '>' compares"):
        build_service(config)
