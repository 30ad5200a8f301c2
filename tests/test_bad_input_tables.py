"""Bad tables and options on ingest, train --data, score and decide: every one exits 2 with
one ``error:`` line naming the file, column, row or option, and no command silently
guesses (row numbers as ids, outcomes as features, unseen category levels)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liftwise.cli.app import run
from liftwise.errors import UserError
from liftwise.ingest import load_experiment

N = 400
TRAIN = ["--treatment", "arm", "--control", "ctl", "--no-track", "--learners", "t_lgbm"]


def experiment_table(seed: int = 0) -> pd.DataFrame:
    """A small randomised experiment: an id, two arms, two outcomes, a number and a city."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=N)
    arm = np.where(np.arange(N) % 2 == 0, "ctl", "mail")
    converted = (rng.random(N) < 0.1 + 0.2 * (arm == "mail") * (x1 > 0)).astype(int)
    return pd.DataFrame(
        {
            "id": np.arange(1000, 1000 + N),
            "arm": arm,
            "x1": x1,
            "city": rng.choice(["hanoi", "hue", "saigon"], N),
            "converted": converted,
            "revenue": converted * rng.gamma(2.0, 20.0, N),
        }
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The experiment (written with its index, as `df.to_csv(path)` does) and one model
    trained on it with the default features, shared by every test here."""
    root = tmp_path_factory.mktemp("tables")
    table = experiment_table()
    data = root / "exp.csv"
    table.to_csv(data)  # adds the index column 'Unnamed: 0'
    model = root / "race"
    argv = ["train", "--data", str(data), *TRAIN, "--outcome", "converted,revenue"]
    assert run([*argv, "--unit-id", "id", "--n-boot", "2", "--out", str(model)]) == 0
    return {"root": root, "data": data, "model": model}


def write(files: dict[str, Path], name: str, table: pd.DataFrame) -> Path:
    path = files["root"] / name
    table.to_csv(path, index=False)
    return path


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def apply(command: str, files: dict[str, Path], data: Path, *extra: str) -> list[str]:
    """argv of ``score`` or ``decide`` on ``data`` with the shared model."""
    out = files["root"] / f"{command}_out.csv"
    budget = ["--budget", "50"] if command == "decide" else []
    return [command, "--model", str(files["model"]), "--data", str(data), *budget,
            "--out", str(out), *extra]  # fmt: skip


def output_ids(files: dict[str, Path], command: str) -> np.ndarray:
    return pd.read_csv(files["root"] / f"{command}_out.csv")["unit_id"].unique()


# ------------------------------------------------------------- class 2: what is a feature


def test_train_keeps_outcomes_ids_and_the_index_out_of_the_features(files, capsys):
    meta = json.loads((files["model"] / "model" / "model.json").read_text())
    assert meta["features"] == ["x1", "city=hanoi", "city=hue", "city=saigon"]
    assert meta["unit_id_column"] == "id"


def test_an_ingested_tables_other_outcomes_are_never_features(files, tmp_path, capsys):
    data = write(files, "plain.csv", experiment_table())
    ingested = tmp_path / "exp.parquet"
    argv = ["ingest", "--data", str(data), "--treatment", "arm", "--control", "ctl"]
    assert (
        run([*argv, "--outcome", "converted,revenue", "--unit-id", "id", "--out", str(ingested)])
        == 0
    )
    frame = load_experiment(ingested, treatment="arm", control="ctl", outcomes="converted")
    assert frame.features == ("x1", "city=hanoi", "city=hue", "city=saigon")
    assert frame.id_column == "id"  # the source's id, recorded by ingest
    with pytest.raises(UserError, match="column 'revenue': is an outcome"):
        load_experiment(ingested, treatment="arm", control="ctl", outcomes="converted",
                        features=["x1", "revenue"])  # fmt: skip


def test_an_index_column_is_left_out_with_a_note(files, tmp_path, capsys):
    argv = ["ingest", "--data", str(files["data"]), "--treatment", "arm", "--control", "ctl"]
    assert run([*argv, "--outcome", "converted", "--outcome", "revenue", "--unit-id", "id",
                "--out", str(tmp_path / "e.parquet")]) == 0  # fmt: skip
    assert "note: column 'Unnamed: 0' looks like a written-out row index" in capsys.readouterr().err
    features = json.loads((tmp_path / "e.parquet.json").read_text())["features"]
    assert "Unnamed: 0" not in features and "id" not in features


# ------------------------------------------------------------- class 1: which units


@pytest.mark.parametrize("command", ["score", "decide"])
def test_the_models_id_column_names_the_units(files, capsys, command):
    data = write(files, "units.csv", experiment_table(1))
    assert run(apply(command, files, data)) == 0, capsys.readouterr().err
    np.testing.assert_array_equal(output_ids(files, command), np.arange(1000, 1000 + N))


@pytest.mark.parametrize("command", ["score", "decide"])
def test_a_column_named_unit_id_is_used(files, capsys, command):
    table = experiment_table(1).rename(columns={"id": "unit_id"})
    assert run(apply(command, files, write(files, "uid.csv", table))) == 0
    np.testing.assert_array_equal(output_ids(files, command), np.arange(1000, 1000 + N))


@pytest.mark.parametrize("command", ["score", "decide"])
def test_an_unchosen_id_like_column_is_refused(files, capsys, command):
    table = experiment_table(1).rename(columns={"id": "customer_id"})
    assert run(apply(command, files, write(files, "cust.csv", table))) == 2
    line = one_error_line(capsys)
    assert "option --unit-id, column 'customer_id': looks like a unit id column" in line
    assert run(apply(command, files, files["root"] / "cust.csv", "--unit-id", "customer_id")) == 0


@pytest.mark.parametrize("command", ["score", "decide"])
def test_rows_are_numbered_only_when_asked(files, capsys, command):
    data = write(files, "noid.csv", experiment_table(1).drop(columns="id"))
    assert run(apply(command, files, data)) == 2
    assert "noid.csv, option --unit-id, column 'id': the model's unit id column" in one_error_line(
        capsys
    )
    assert run(apply(command, files, data, "--number-rows")) == 0
    np.testing.assert_array_equal(output_ids(files, command), np.arange(N))


@pytest.mark.parametrize("command", ["ingest", "train"])
def test_training_refuses_an_unchosen_id_column(files, tmp_path, capsys, command):
    data = write(files, "train_ids.csv", experiment_table())
    argv = [command, "--data", str(data), "--treatment", "arm", "--control", "ctl"]
    extra = ["--no-track"] if command == "train" else []
    assert run([*argv, "--outcome", "converted", *extra, "--out", str(tmp_path / "o.pq")]) == 2
    assert "train_ids.csv, option --unit-id, column 'id': looks like a unit id" in one_error_line(
        capsys
    )


def test_chosen_features_leave_a_text_id_out(files, tmp_path, capsys):
    table = experiment_table().assign(customerID=[f"{i:04d}-ABCD" for i in range(N)])
    data = write(files, "telco_like.csv", table.drop(columns="id"))
    argv = ["ingest", "--data", str(data), "--treatment", "arm", "--control", "ctl"]
    assert run([*argv, "--outcome", "converted", "--out", str(tmp_path / "t.pq")]) == 2
    assert "column 'customerID': looks like a unit id column" in one_error_line(capsys)
    assert run([*argv, "--outcome", "converted", "--features", "x1,city",
                "--out", str(tmp_path / "t.pq")]) == 0  # fmt: skip


# ------------------------------------------------------------- class 3: duplicate ids


@pytest.mark.parametrize("command", ["ingest", "train", "score", "decide"])
def test_duplicate_ids_are_refused_naming_them(files, tmp_path, capsys, command):
    table = experiment_table(1)
    table.loc[[5, 9], "id"] = [1003, 1004]
    data = write(files, "dups.csv", table)
    if command in ("score", "decide"):
        argv = apply(command, files, data)
    else:
        argv = [command, "--data", str(data), "--treatment", "arm", "--control", "ctl",
                "--outcome", "converted", "--unit-id", "id", "--out", str(tmp_path / "o.pq")]  # fmt: skip
        argv += ["--no-track"] if command == "train" else []
    assert run(argv) == 2
    line = one_error_line(capsys)
    assert (
        "dups.csv, column 'id', row 5: duplicate unit ids 1003, 1004 (1003 first at row 3)" in line
    )


@pytest.mark.parametrize("command", ["score", "decide"])
@pytest.mark.parametrize(
    ("value", "words"),
    [(np.nan, "row 7: missing unit id"), (7.5, "row 7: unit id is not an integer")],
)
def test_bad_ids_name_their_row(files, capsys, command, value, words):
    table = experiment_table(1).astype({"id": float})
    table.loc[7, "id"] = value
    assert run(apply(command, files, write(files, "badid.csv", table))) == 2
    assert words in one_error_line(capsys)


# ------------------------------------------------------------- class 6: unseen categories


@pytest.mark.parametrize("command", ["score", "decide"])
def test_unseen_levels_are_reported_and_refused_above_the_limit(files, capsys, command):
    few = experiment_table(1)
    few.loc[:2, "city"] = "Hanoi"
    assert run(apply(command, files, write(files, "few.csv", few))) == 0
    assert "column 'city': 3 rows (0.8%) have levels unseen in training: 'Hanoi' (3)" in (
        capsys.readouterr().err
    )
    many = experiment_table(1)
    many.loc[:99, "city"] = "Hanoi"
    data = write(files, "many.csv", many)
    assert run(apply(command, files, data)) == 2
    line = one_error_line(capsys)
    assert "many.csv, option --max-unseen-share, column 'city', row 0: 100 rows (25.0%)" in line
    assert run(apply(command, files, data, "--max-unseen-share", "0.5")) == 0


# ------------------------------------------------------------- class 10: option holes


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (
            ["--value-per-outcome", "-40"],
            "option --value-per-outcome: Input should be greater than 0",
        ),
        (["--value-per-outcome", "nan"], "option --value-per-outcome: Input should be a finite"),
        (["--value-per-outcome", "inf"], "option --value-per-outcome: Input should be a finite"),
        (["--n-boot", "0"], "option --n-boot: Input should be greater than or equal to 2, got 0"),
        (["--validation-fraction", "0.001"], "option --validation-fraction: the validation split"),
        (
            ["--validation-fraction", "1"],
            "option --validation-fraction: Input should be less than 1",
        ),
        (["--k", "nan"], "option --k: Input should be a finite number"),
        (["--seed", "-1"], "option --seed: Input should be greater than or equal to 0"),
        (["--cost", "mail=inf"], "option --cost: Input should be a finite number"),
        (["--learners", "t_lgbm,magic"], "option --learners: unknown learner 'magic'"),
        (["--world", "some_world"], "option --data: give --data or --world, not both"),
        (["--segment-column", "nope"], "option --segment-column, column 'nope': no such column"),
    ],
)
def test_train_options_are_range_checked(files, tmp_path, capsys, extra, words):
    data = write(files, "no_index.csv", experiment_table())
    argv = ["train", "--data", str(data), *TRAIN, "--outcome", "converted"]
    assert run([*argv, "--unit-id", "id", *extra, "--out", str(tmp_path / "race")]) == 2
    assert words in one_error_line(capsys)
    assert not (tmp_path / "race").exists()


@pytest.mark.parametrize(
    ("command", "extra", "words"),
    [
        ("score", ["--alpha", "2"], "option --alpha: Input should be less than 1, got 2.0"),
        (
            "score",
            ["--max-unseen-share", "-1"],
            "option --max-unseen-share: Input should be greater",
        ),
        (
            "decide",
            ["--max-unseen-share", "nan"],
            "option --max-unseen-share: Input should be a finite",
        ),
    ],
)
def test_score_and_decide_options_are_range_checked(files, capsys, command, extra, words):
    assert run(apply(command, files, files["data"], *extra)) == 2
    assert words in one_error_line(capsys)


# ------------------------------------------------------------- lists and model directories


def test_list_options_take_commas_or_repeats(files, tmp_path, capsys):
    base = ["ingest", "--data", str(files["data"]), "--treatment", "arm", "--control", "ctl",
            "--unit-id", "id"]  # fmt: skip
    assert run([*base, "--outcome", "converted,revenue", "--features", "x1,city",
                "--out", str(tmp_path / "a.pq")]) == 0  # fmt: skip
    assert run([*base, "--outcome", "converted", "--outcome", "revenue", "--features", "x1",
                "--features", "city", "--out", str(tmp_path / "b.pq")]) == 0  # fmt: skip
    first, second = (json.loads((tmp_path / f"{n}.pq.json").read_text()) for n in "ab")
    assert (
        first["features"] == second["features"] == ["x1", "city=hanoi", "city=hue", "city=saigon"]
    )
    assert first["outcomes"] == second["outcomes"] == ["converted", "revenue"]


def test_model_is_the_train_out_directory_or_its_model_subdirectory(files, tmp_path, capsys):
    data = files["data"]
    assert run(["score", "--model", str(files["model"] / "model"), "--data", str(data),
                "--out", str(files["root"] / "s.csv")]) == 0  # fmt: skip
    (tmp_path / "empty").mkdir()
    assert run(["score", "--model", str(tmp_path / "empty"), "--data", str(data),
                "--out", str(tmp_path / "s.csv")]) == 2  # fmt: skip
    assert "no model.joblib here" in one_error_line(capsys)


# ------------------------------------------------------------- experiment analyze / assign


def experiment_inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exposures (unit_id, arm) and outcomes (unit_id, converted, spend) of 200 units."""
    rng = np.random.default_rng(3)
    ids = np.arange(200)
    exposures = pd.DataFrame({"unit_id": ids, "arm": np.where(ids % 2 == 0, "control", "a")})
    outcomes = pd.DataFrame(
        {"unit_id": ids, "converted": rng.integers(0, 2, 200), "spend": rng.gamma(2.0, 10.0, 200)}
    )
    return exposures, outcomes


def _changed(table: pd.DataFrame, column: str, row: int, value: object) -> pd.DataFrame:
    table = table.astype({column: object})
    table.loc[row, column] = value
    return table


ANALYZE_CASES = {
    "dropped-arm": ("exposures", lambda t: t.drop(columns="arm"), "column 'arm': missing column"),
    "dropped-id": ("outcomes", lambda t: t.drop(columns="unit_id"), "column 'unit_id': missing"),
    "mistyped": ("outcomes", lambda t: _changed(t, "spend", 3, "abc"), "column 'spend', row 3"),
    "nan": ("outcomes", lambda t: _changed(t, "spend", 4, np.nan), "row 4: missing value"),
    "inf": ("outcomes", lambda t: _changed(t, "spend", 4, np.inf), "row 4: not a finite number"),
    "inf-id": ("exposures", lambda t: _changed(t, "unit_id", 2, np.inf), "row 2: unit id inf"),
    "duplicate": ("outcomes", lambda t: _changed(t, "unit_id", 6, 5), "unit 5 has two outcome"),
}


@pytest.mark.parametrize("case", ANALYZE_CASES, ids=list(ANALYZE_CASES))
def test_experiment_analyze_refuses_bad_tables(tmp_path, capsys, case):
    which, change, words = ANALYZE_CASES[case]
    exposures, outcomes = experiment_inputs()
    tables = {"exposures": exposures, "outcomes": outcomes}
    tables[which] = change(tables[which])
    for name, table in tables.items():
        table.to_csv(tmp_path / f"{name}.csv", index=False)
    argv = ["experiment", "analyze", str(tmp_path / "exposures.csv"), str(tmp_path / "outcomes.csv"),
            "--out", str(tmp_path / "an"), "--control", "control", "--binary", "converted",
            "--continuous", "spend"]  # fmt: skip
    assert run(argv) == 2
    line = one_error_line(capsys)
    assert f"{which}.csv, " in line and words in line
    assert not (tmp_path / "an").exists()


ASSIGN_CASES = {
    "dropped": (lambda t: t.rename(columns={"unit_id": "uid"}), "column 'unit_id': missing column"),
    "nan": (lambda t: _changed(t, "unit_id", 3, np.nan), "row 3: missing value"),
    "inf": (lambda t: _changed(t, "unit_id", 3, np.inf), "row 3: unit id inf is not an integer"),
    "duplicate": (lambda t: _changed(t, "unit_id", 3, 2), "row 3: duplicate unit id 2"),
}


@pytest.mark.parametrize("case", ASSIGN_CASES, ids=list(ASSIGN_CASES))
def test_experiment_assign_refuses_bad_unit_tables(tmp_path, capsys, case):
    change, words = ASSIGN_CASES[case]
    units = tmp_path / "units.csv"
    change(pd.DataFrame({"unit_id": np.arange(50)})).to_csv(units, index=False)
    argv = ["experiment", "assign", str(units), "--experiment", "e1", "--arms", "a=0.5,control=0.5"]
    assert run([*argv, "--out", str(tmp_path / "assigned.csv")]) == 2
    line = one_error_line(capsys)
    assert "units.csv, " in line and words in line
    assert not (tmp_path / "assigned.csv").exists()
