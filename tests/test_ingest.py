"""Ingest: the Hillstrom loader reproduces the published facts; the generic loader maps,
encodes and refuses bad input with one line naming column and row; frames round-trip."""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import liftwise.cli.ingest  # noqa: F401  (registers the ingest and hillstrom commands)
from liftwise.cli import run
from liftwise.contracts.experiment import EXPERIMENT_FRAME_VERSION, ExperimentFrame
from liftwise.errors import UserError
from liftwise.ingest import (
    load_experiment,
    load_hillstrom,
    read_experiment,
    save_experiment,
)
from liftwise.ingest.experiment import sidecar_path

HILLSTROM = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hillstrom.csv"

# /work/shared/data/README.md: arm -> (rows, visit rate, conversion rate, mean spend), each at
# the precision the README gives (visit 15.14% = 4 decimals, conversion 0.8837% = 6).
HILLSTROM_FACTS = {
    "Womens E-Mail": (21_387, 0.1514, 0.008837, 1.0772),
    "Mens E-Mail": (21_307, 0.1828, 0.012531, 1.4226),
    "No E-Mail": (21_306, 0.1062, 0.005726, 0.6528),
}


@pytest.fixture(scope="module")
def hillstrom() -> ExperimentFrame:
    assert HILLSTROM.is_file(), f"shared test data missing: {HILLSTROM}"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the published file must not trigger the checksum warning
        return load_hillstrom(HILLSTROM)


@pytest.fixture(scope="module")
def hillstrom_raw() -> pd.DataFrame:
    return pd.read_csv(HILLSTROM)


def hillstrom_sample(tmp_path: Path, raw: pd.DataFrame, rows: int = 60) -> Path:
    """A small Hillstrom-shaped file (all three arms) for fast error and CLI checks."""
    path = tmp_path / "hillstrom_sample.csv"
    raw.groupby("segment").head(rows // 3).to_csv(path, index=False)
    return path


# --- Hillstrom -------------------------------------------------------------------------------


def test_hillstrom_rows_and_arms(hillstrom: ExperimentFrame) -> None:
    assert len(hillstrom.data) == 64_000
    assert hillstrom.control == "No E-Mail"
    assert hillstrom.arms == ("No E-Mail", "Mens E-Mail", "Womens E-Mail")
    assert hillstrom.outcomes == ("visit", "conversion", "spend")
    counts = hillstrom.data["arm"].value_counts().to_dict()
    assert counts == {arm: facts[0] for arm, facts in HILLSTROM_FACTS.items()}
    codes = np.bincount(hillstrom.treatment_codes())
    assert codes.tolist() == [21_306, 21_307, 21_387]  # no e-mail arm folded into control
    assert hillstrom.data["unit_id"].tolist() == list(range(64_000))


@pytest.mark.parametrize("arm", sorted(HILLSTROM_FACTS))
def test_hillstrom_arm_means_match_readme(hillstrom: ExperimentFrame, arm: str) -> None:
    _, visit, conversion, spend = HILLSTROM_FACTS[arm]
    summary = hillstrom.arm_summary().loc[arm]
    assert round(summary["visit"], 4) == visit
    assert round(summary["conversion"], 6) == conversion
    assert round(summary["spend"], 4) == spend
    mask = hillstrom.treatment_codes() == hillstrom.arms.index(arm)
    assert round(hillstrom.y("spend")[mask].mean(), 4) == spend


def test_hillstrom_feature_encoding(
    hillstrom: ExperimentFrame, hillstrom_raw: pd.DataFrame
) -> None:
    data = hillstrom.data
    assert hillstrom.features == (
        "recency",
        "history_segment",
        "history",
        "mens",
        "womens",
        "zip_code=Rural",
        "zip_code=Surburban",
        "zip_code=Urban",
        "newbie",
        "channel=Multichannel",
        "channel=Phone",
        "channel=Web",
    )
    assert (data[list(hillstrom.features)].dtypes == np.float64).all()
    for prefix in ("zip_code=", "channel="):
        block = [name for name in hillstrom.features if name.startswith(prefix)]
        assert (data[block].sum(axis=1) == 1.0).all()
    level = hillstrom_raw["zip_code"].to_numpy()
    np.testing.assert_array_equal(data["zip_code=Urban"].to_numpy(), level == "Urban")
    ordinal = data["history_segment"]
    assert set(ordinal.unique()) == {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0}
    digits = hillstrom_raw["history_segment"].str[0].astype(float)
    np.testing.assert_array_equal(ordinal.to_numpy(), digits.to_numpy())
    for name in ("recency", "history", "mens", "womens", "newbie"):
        np.testing.assert_array_equal(data[name].to_numpy(), hillstrom_raw[name].to_numpy())
    assert hillstrom.X().shape == (64_000, 12)


def test_hillstrom_checksum_mismatch_warns_but_loads(
    tmp_path: Path, hillstrom_raw: pd.DataFrame
) -> None:
    path = hillstrom_sample(tmp_path, hillstrom_raw)
    with pytest.warns(UserWarning, match="sha256"):
        frame = load_hillstrom(path)
    assert frame.arms == ("No E-Mail", "Mens E-Mail", "Womens E-Mail")
    assert len(frame.data) == 60
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_hillstrom(path, verify_checksum=False)


def test_hillstrom_rejects_unknown_arm(tmp_path: Path, hillstrom_raw: pd.DataFrame) -> None:
    raw = hillstrom_raw.head(30).copy()
    raw.loc[raw["segment"] == "Mens E-Mail", "segment"] = "Kids E-Mail"
    path = tmp_path / "renamed.csv"
    raw.to_csv(path, index=False)
    with pytest.raises(UserError, match="Kids E-Mail") as err:
        load_hillstrom(path, verify_checksum=False)
    assert err.value.column == "segment"


# --- Generic loader --------------------------------------------------------------------------


def sample_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "uid": [10, 11, 12, 13, 14, 15],
            "group": ["ctrl", "B", "A", "ctrl", "A", "B"],
            "bought": [0, 1, 0, 1, 1, 0],
            "spend": [0.0, 12.5, 0.0, 3.25, 7.0, 0.0],
            "age": [31, 45, 22, 60, 38, 27],
            "member": [True, False, True, True, False, False],
            "city": ["Oslo", "Bergen", "Oslo", "Tromsø", "Bergen", "Oslo"],
        }
    )


def write_table(path: Path, table: pd.DataFrame) -> Path:
    if path.name.endswith((".parquet", ".pq")):
        table.to_parquet(path, index=False)
    else:
        table.to_csv(path, index=False)
    return path


def load_sample(path: Path, **overrides: Any) -> ExperimentFrame:
    mapping: dict[str, Any] = {
        "treatment": "group",
        "control": "ctrl",
        "outcomes": ["bought", "spend"],
        "unit_id": "uid",
    }
    return load_experiment(path, **{**mapping, **overrides})


@pytest.mark.parametrize("name", ["exp.csv", "exp.csv.gz", "exp.parquet", "exp.pq", "EXP.CSV"])
def test_load_csv_and_parquet(tmp_path: Path, name: str) -> None:
    table = sample_table()
    frame = load_sample(write_table(tmp_path / name, table))
    assert frame.arms == ("ctrl", "A", "B")
    assert frame.outcomes == ("bought", "spend")
    assert frame.features == ("age", "member", "city=Bergen", "city=Oslo", "city=Tromsø")
    assert list(frame.data.columns) == ["unit_id", "arm", "bought", "spend", *frame.features]
    assert frame.data["unit_id"].dtype == np.int64
    assert frame.data["unit_id"].tolist() == table["uid"].tolist()
    assert frame.treatment_codes().tolist() == [0, 2, 1, 0, 1, 2]
    np.testing.assert_array_equal(frame.y("spend"), table["spend"].to_numpy(dtype=float))
    expected_x = np.column_stack(
        [
            table["age"].to_numpy(dtype=float),
            table["member"].to_numpy(dtype=float),
            *[(table["city"] == c).to_numpy(dtype=float) for c in ("Bergen", "Oslo", "Tromsø")],
        ]
    )
    np.testing.assert_array_equal(frame.X(), expected_x)
    assert frame.source == str(tmp_path / name)


def test_defaults_and_numeric_arm_labels(tmp_path: Path) -> None:
    table = sample_table().assign(group=[0, 1, 1, 0, 2, 0]).drop(columns="uid")
    path = write_table(tmp_path / "exp.parquet", table.assign(group=table["group"].astype(float)))
    frame = load_experiment(
        path, treatment="group", control="0", outcomes="bought", features=["age", "spend"]
    )
    assert frame.arms == ("0", "1", "2")  # 1.0 reads as "1", so --control 0 matches
    assert frame.data["unit_id"].tolist() == list(range(6))  # no id column: row positions
    assert frame.features == ("age", "spend")


@given(st.lists(st.sampled_from(["x", "y", "z", "Q", "é", "10", "9"]), min_size=4, max_size=30))
@settings(max_examples=20, deadline=None)
def test_one_hot_is_sorted_and_exclusive(
    tmp_path_factory: pytest.TempPathFactory, levels: list[str]
) -> None:
    n = len(levels)
    table = pd.DataFrame(
        {"t": ["c", "t"] * (n // 2) + ["c"] * (n % 2), "y": np.arange(n, dtype=float), "f": levels}
    )
    path = write_table(tmp_path_factory.mktemp("hyp") / "h.parquet", table)
    frame = load_experiment(path, treatment="t", control="c", outcomes=["y"])
    seen = sorted(set(levels))
    assert frame.features == tuple(f"f={level}" for level in seen)
    x = frame.X()
    assert (x.sum(axis=1) == 1.0).all()
    np.testing.assert_array_equal(np.array(seen)[x.argmax(axis=1)], np.array(levels))


def with_value(column: str, row: int, value: Any) -> pd.DataFrame:
    table = sample_table().astype({column: object})
    table.loc[row, column] = value
    return table


# (id, table, loader overrides, column named, row named, words in the message)
ERROR_CASES = [
    ("missing-column", sample_table(), {"outcomes": ["nope"]}, "nope", None, "uid, group"),
    ("one-arm", sample_table().assign(group="ctrl"), {}, "group", None, "only one arm"),
    ("unknown-control", sample_table(), {"control": "none"}, "group", None, "A, B, ctrl"),
    ("non-numeric", with_value("spend", 2, "abc"), {}, "spend", 2, "'abc'"),
    ("infinite", with_value("spend", 4, float("inf")), {}, "spend", 4, "not a finite"),
    ("missing-arm", with_value("group", 1, None), {}, "group", 1, "missing value"),
    ("missing-outcome", with_value("bought", 3, None), {}, "bought", 3, "missing value"),
    ("missing-number-feature", with_value("age", 0, None), {}, "age", 0, "missing value"),
    ("missing-text-feature", with_value("city", 5, None), {}, "city", 5, "missing value"),
    ("duplicate-id", with_value("uid", 3, 11), {}, "uid", 3, "first at row 1"),
    ("fractional-id", with_value("uid", 2, 12.5), {}, "uid", 2, "not an integer"),
    ("too-many-levels", sample_table(), {"max_categories": 2}, "city", None, "3 levels"),
    ("reserved-name", sample_table().rename(columns={"age": "arm"}), {}, "arm", None, "reserved"),
    ("role-twice", sample_table(), {"outcomes": ["spend", "group"]}, "group", None, "twice"),
]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize(
    ("table", "overrides", "column", "row", "words"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_bad_input_names_column_and_row(
    tmp_path: Path,
    suffix: str,
    table: pd.DataFrame,
    overrides: dict[str, Any],
    column: str,
    row: int | None,
    words: str,
) -> None:
    if suffix == ".parquet":  # Parquet needs one type per column: mixed values become text
        table = table.astype({c: str for c in table if table[c].dtype == object}).replace(
            {"None": None, "nan": None}
        )
    path = write_table(tmp_path / f"bad{suffix}", table)
    with pytest.raises(UserError) as caught:
        load_sample(path, **overrides)
    err = caught.value
    line = err.one_line()
    assert "\n" not in line
    assert err.file == str(path) and line.startswith(str(path))
    assert err.column == column and f"column '{column}'" in line
    assert err.row == row
    if row is not None:
        assert re.search(rf"\brow {row}\b", line)
    assert words in line


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("absent.csv", None, "no such file"),
        ("exp.txt", "a,b\n1,2\n", "unsupported file type"),
        ("exp.parquet", "this is not parquet", "cannot read as Parquet"),
        ("exp.csv.gz", "not gzip at all", "cannot read as CSV"),
        ("empty.csv", "uid,group,bought,spend\n", "no data rows"),
    ],
)
def test_bad_file_names_the_file(
    tmp_path: Path, name: str, content: str | None, words: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError, match=re.escape(words)) as caught:
        load_sample(path)
    assert caught.value.file == str(path)
    assert "\n" not in caught.value.one_line()


# --- Frame invariants and persistence --------------------------------------------------------


def test_validate_catches_broken_frames(tmp_path: Path) -> None:
    frame = load_sample(write_table(tmp_path / "exp.csv", sample_table()))
    broken = {
        "nan-feature": (frame.data.assign(age=[1.0, np.nan, 2, 3, 4, 5]), "age", 1),
        "unknown-arm": (frame.data.assign(arm=["ctrl", "A", "Z", "B", "A", "B"]), "arm", 2),
        "duplicate-id": (frame.data.assign(unit_id=[1, 2, 3, 3, 4, 5]), "unit_id", 2),
        "one-arm": (frame.data.assign(arm="ctrl"), "arm", None),
        "int-outcome": (frame.data.assign(bought=[0, 1, 0, 1, 1, 0]), "bought", None),
        "missing-column": (frame.data.drop(columns="age"), "age", None),
        "extra-column": (frame.data.assign(extra=1.0), "extra", None),
    }
    for case, (data, column, row) in broken.items():
        with pytest.raises(UserError) as caught:
            dataclasses.replace(frame, data=data).validate()
        assert (caught.value.column, caught.value.row) == (column, row), case
    with pytest.raises(UserError, match="first arm"):
        dataclasses.replace(frame, arms=("A", "ctrl", "B")).validate()
    with pytest.raises(UserError, match="unknown outcome"):
        frame.y("age")


def test_save_read_round_trip(tmp_path: Path) -> None:
    frame = load_sample(write_table(tmp_path / "exp.csv", sample_table()))
    out = tmp_path / "frames" / "exp.parquet"
    save_experiment(frame, out)
    meta = json.loads(sidecar_path(out).read_text())
    assert meta["version"] == EXPERIMENT_FRAME_VERSION
    assert meta["arms"] == ["ctrl", "A", "B"] and meta["control"] == "ctrl"
    back = read_experiment(out)
    pd.testing.assert_frame_equal(back.data, frame.data)
    for field in ("control", "arms", "outcomes", "features", "source"):
        assert getattr(back, field) == getattr(frame, field), field


def test_read_experiment_errors(tmp_path: Path) -> None:
    frame = load_sample(write_table(tmp_path / "exp.csv", sample_table()))
    out = tmp_path / "exp.parquet"
    save_experiment(frame, out)
    sidecar = sidecar_path(out)
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "version": "0"}))
    with pytest.raises(UserError, match="version '0'") as caught:
        read_experiment(out)
    assert caught.value.file == str(sidecar)
    sidecar.unlink()
    with pytest.raises(UserError, match="no such file") as caught:
        read_experiment(out)
    assert caught.value.file == str(sidecar)


# --- CLI -------------------------------------------------------------------------------------


def ingest_args(data: Path, out: Path, *outcomes: str) -> list[str]:
    args = ["ingest", "--data", str(data), "--treatment", "group", "--control", "ctrl"]
    for outcome in outcomes:
        args += ["--outcome", outcome]
    return [*args, "--unit-id", "uid", "--out", str(out)]


def test_cli_ingest_missing_column_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_table(tmp_path / "exp.csv", sample_table())
    out = tmp_path / "out.parquet"
    assert run(ingest_args(data, out, "bought", "revenue")) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "column 'revenue'" in err and "missing column" in err
    assert not out.exists()


def test_cli_ingest_writes_frame_and_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_table(tmp_path / "exp.csv", sample_table())
    out = tmp_path / "out.parquet"
    args = [*ingest_args(data, out, "bought", "spend"), "--features", "age", "--features", "city"]
    assert run(args) == 0
    frame = read_experiment(out)
    assert frame.features == ("age", "city=Bergen", "city=Oslo", "city=Tromsø")
    printed = capsys.readouterr().out
    assert "mean spend" in printed
    assert re.search(r"ctrl\s*│\s*2\s*│\s*0\.5\s*│\s*1\.625", printed)


def test_cli_hillstrom(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hillstrom_raw: pd.DataFrame
) -> None:
    data = hillstrom_sample(tmp_path, hillstrom_raw)
    out = tmp_path / "hillstrom.parquet"
    with pytest.warns(UserWarning, match="sha256"):
        code = run(["hillstrom", "--data", str(data), "--out", str(out)])
    assert code == 0
    assert read_experiment(out).arms == ("No E-Mail", "Mens E-Mail", "Womens E-Mail")
    assert "Womens E-Mail" in capsys.readouterr().out
    assert run(["hillstrom", "--data", str(tmp_path / "absent.csv"), "--out", str(out)]) == 2
    assert "absent.csv: no such file" in capsys.readouterr().err


def test_encode_like_reapplies_the_training_encoding(tmp_path):
    from liftwise.ingest import encode_like

    train = pd.DataFrame(
        {
            "g": ["a", "b", "a", "b"],
            "x": [1.0, 2.0, 3.0, 4.0],
            "c": ["u", "v", "w", "u"],
            "y": [0, 1, 0, 1],
        }
    )
    path = tmp_path / "train.csv"
    train.to_csv(path, index=False)
    frame = load_experiment(path, treatment="g", control="a", outcomes="y")
    new = pd.DataFrame({"x": [5.0, 6.0], "c": ["v", "zzz"]})
    encoded = encode_like(new, frame.features, source="new.csv", max_unseen_share=1)
    assert list(encoded.columns) == list(frame.features)
    assert encoded.loc[0, "c=v"] == 1.0 and encoded.loc[1, ["c=u", "c=v", "c=w"]].sum() == 0.0
    with pytest.raises(UserError, match=r"new\.csv, column 'c': missing column"):
        encode_like(new.drop(columns=["c"]), frame.features, source="new.csv")
    with pytest.raises(UserError, match=r"column 'x', row 1"):
        encode_like(new.assign(x=[1.0, None]), frame.features, source="new.csv")
