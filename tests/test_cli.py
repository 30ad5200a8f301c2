"""The CLI: --help everywhere, one-line user errors with exit 2, simulate/validate/describe."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pyarrow.parquet as pq
import pytest

from liftwise.cli import app, run


def _commands() -> list[str]:
    import liftwise.cli.commands  # noqa: F401

    return sorted(info.name or info.callback.__name__ for info in app.registered_commands)


def test_core_commands_are_registered():
    assert {"simulate", "validate", "describe", "quickstart", "ingest", "hillstrom"} <= set(
        _commands()
    )


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_help(command, capsys):
    assert run([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"Usage: liftwise {command}" in out and "--help" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["simulate", "--world", "banking", "--out", "x"],
            "error: option --world: unknown world 'banking'",
        ),
        (
            ["simulate", "--world", "fintech", "--out", "x", "--units", "0"],
            "error: option --units: Input should be greater than 0",
        ),
        (  # a library config's field, rendered as the command's flag
            ["pipeline", "run", "--units", "0", "--run-date", "2026-11-20"],
            "error: option --units: Input should be greater than or equal to 500",
        ),
        (
            ["simulate", "--world", "fintech", "--out", "x", "--realism", "v9"],
            "error: option --realism: Input should be 'v1' or 'v2'",
        ),
        (
            [
                "simulate",
                "--world",
                "fintech",
                "--out",
                "x",
                "--arm",
                "control=0.5",
                "--arm",
                "cashback_50=0.5",
            ],
            "error: option --arm: unknown arm 'cashback_50'",
        ),
        (
            [
                "simulate",
                "--world",
                "fintech",
                "--out",
                "x",
                "--arm",
                "control=0.5",
                "--arm",
                "cashback_5=0.4",
            ],
            "error: option --arms: Value error, arm ratios must sum to 1, got 0.9",
        ),
        (
            ["simulate", "--world", "fintech", "--out", "x", "--decision-date", "June"],
            "error: option --decision-date: not a date: 'June'",
        ),
        (["simulate", "--world", "fintech"], "Missing option '--out'"),
        (["validate", "no/such/dir"], "error: no/such/dir: no such directory"),
    ],
)
def test_user_errors_are_one_line_with_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "x").exists()


def test_simulate_validate_describe_round_trip(tmp_path, capsys):
    out = tmp_path / "w"
    assert (
        run(
            [
                "simulate",
                "--world",
                "fintech",
                "--units",
                "2000",
                "--days",
                "14",
                "--seed",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sizes"]["customers"] == 2000 and manifest["seed"] == 3
    assert run(["validate", str(out)]) == 0
    assert "valid" in capsys.readouterr().out
    assert run(["describe", str(out)]) == 0
    text = capsys.readouterr().out
    assert "current policy" in text and "oracle" in text and "sleeping_dog" in text


def test_validate_exits_2_and_writes_every_violation(tmp_path, capsys):
    out = tmp_path / "w"
    assert (
        run(["simulate", "--world", "fintech", "--units", "1000", "--days", "7", "--out", str(out)])
        == 0
    )
    customers = pd.read_parquet(out / "customers.parquet")
    customers.loc[[3, 8], "income_band"] = "billionaire"
    pq.write_table(
        pq.read_table(out / "customers.parquet").from_pandas(customers, preserve_index=False),
        out / "customers.parquet",
    )
    report = tmp_path / "violations.csv"
    assert run(["validate", str(out), "--report", str(report)]) == 2
    err = capsys.readouterr().err
    assert "customers.parquet: column 'income_band', row 3" in err
    rows = pd.read_csv(report)
    assert set(rows["rule"]) >= {"content hash differs from manifest"}
    assert sorted(rows.loc[rows["column"] == "income_band", "row"].astype(int)) == [3, 8]


def test_quickstart_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "q"
    argv = [
        "quickstart",
        "--out",
        str(out),
        "--units",
        "4000",
        "--days",
        "30",
        "--learners",
        "t_lgbm",
    ]
    assert run(argv) == 0
    text = capsys.readouterr().out
    assert "liftwise" in text and "current policy" in text and "oracle, same budget" in text
    for name in (
        "world/manifest.json",
        "race/report.html",
        "decisions.parquet",
        "report.html",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 7


def test_console_script_runs_as_a_separate_process(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "liftwise", "validate", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing'}: no such directory"]
