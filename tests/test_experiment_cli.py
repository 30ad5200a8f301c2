"""``liftwise experiment``: assign, from-world, analyze (report + JSON), power; user errors
are one line with exit status 2."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from statsmodels.stats.power import NormalIndPower

from liftwise.cli import run
from liftwise.experiment.assign import Design, assign_units
from test_experiment_analyze import frames


def user_error(argv: list[str], capsys) -> str:
    """Run ``argv``, expect exit 2 and exactly one line on stderr; return that line."""
    assert run(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("command", ["assign", "analyze", "from-world", "power"])
def test_every_experiment_command_has_help(command, capsys):
    assert run(["experiment", command, "--help"]) == 0
    assert f"Usage: liftwise experiment {command}" in capsys.readouterr().out


@pytest.fixture(scope="module")
def world_report(fintech_world, tmp_path_factory):
    """from-world (campaign design), then analyze with the written config."""
    out = tmp_path_factory.mktemp("campaign")
    assert run(["experiment", "from-world", str(fintech_world.path), "--out", str(out)]) == 0
    argv = [
        "experiment",
        "analyze",
        str(out / "exposures.parquet"),
        str(out / "outcomes.parquet"),
        "--config",
        str(out / "experiment.yaml"),
        "--out",
        str(out / "report"),
        "--title",
        "Fintech campaign",
    ]
    assert run(argv) == 0
    return out


def test_from_world_writes_the_experiment_files(world_report):
    names = sorted(p.name for p in world_report.iterdir() if p.is_file())
    assert names == ["experiment.yaml", "exposures.parquet", "outcomes.parquet", "truth.json"]
    truth = json.loads((world_report / "truth.json").read_text())
    assert truth["design"] == "campaign" and truth["units"] == 30_000
    assert set(truth["effects"]) == {
        "cashback_5 vs control",
        "cashback_10 vs control",
        "fee_waiver vs control",
    }
    exposures = pd.read_parquet(world_report / "exposures.parquet")
    assert exposures["exposed_at"].is_monotonic_increasing and exposures["unit_id"].is_unique


def test_analyze_writes_the_report_and_the_summary(world_report):
    summary = json.loads((world_report / "report" / "summary.json").read_text())
    json.dumps(summary, allow_nan=False)
    assert summary["experiment"] == "fintech-campaign" and summary["control"] == "control"
    assert summary["srm"]["mismatch"] is False and summary["verdict"]["srm_ok"] is True
    assert sum(summary["n_by_arm"].values()) == 30_000
    metrics = {m["metric"] for m in summary["metrics"]}
    assert metrics == {"converted", "margin_vnd", "margin_per_converter", "spend_vnd"}
    assert len(summary["metrics"]) == 4 * 3  # every metric, every offer vs control
    assert all(m["cuped"] for m in summary["metrics"] if m["metric"] in ("converted", "margin_vnd"))
    assert all(m["guardrail"] for m in summary["metrics"] if m["metric"] == "spend_vnd")
    assert [p["treatment"] for p in summary["profit"]] == [
        "cashback_5",
        "cashback_10",
        "fee_waiver",
    ]
    assert all(p["cuped"] and p["currency"] == "VND" for p in summary["profit"])
    bands = [s for s in summary["segments"] if s["dimension"] == "spend_band"]
    assert bands and all(len(s["levels"]) == 8 for s in bands)
    assert all(s["heterogeneity"]["segments"] == 8 for s in bands)
    paths = summary["sequential_paths"]
    assert {p["metric"] for p in paths} == metrics | {"net_profit"}
    assert all(len(p["times"]) == 30 and p["n_total"][-1] > p["n_total"][0] for p in paths)
    html = (world_report / "report" / "report.html").read_text()
    assert "<title>Fintech campaign</title>" in html and "Sample ratio: ok" in html
    for plot in (
        "Sample ratio check",
        "Effects per metric",
        "Net profit uplift",
        "Sequential interval over time",
        "Segments: segment",
        "Segments: spend_band",
    ):
        assert f'<img alt="{plot}" src="data:image/png;base64,' in html, plot


def test_analyze_from_flags_alone(tmp_path, capsys):
    exposures, outcomes = frames(seed=8, n=3_000)
    exposures.to_csv(tmp_path / "exposures.csv", index=False)
    outcomes.to_parquet(tmp_path / "outcomes.parquet", index=False)
    argv = [
        "experiment",
        "analyze",
        str(tmp_path / "exposures.csv"),
        str(tmp_path / "outcomes.parquet"),
        "--out",
        str(tmp_path / "report"),
        "--control",
        "control",
        "--arms",
        "control=0.4,a=0.3,b=0.3",
        "--binary",
        "converted",
        "--continuous",
        "revenue",
        "--covariate",
        "revenue=pre_revenue",
        "--ratio",
        "revenue_per_order=revenue/orders",
        "--continuous",
        "clicks",
        "--guardrail",
        "clicks=5%",
        "--segment",
        "segment",
        "--revenue",
        "revenue",
        "--cost",
        "cost",
        "--compare",
        "b:a",
        "--alpha",
        "0.1",
        "--correction",
        "bh",
        "--looks",
        "10",
    ]
    assert run(argv) == 0
    out = capsys.readouterr().out
    assert "SRM: ok" in out and "net profit b vs a" in out and "90% CI" in out
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["alpha"] == 0.1 and summary["correction"] == "bh"
    revenue = [m for m in summary["metrics"] if m["metric"] == "revenue"]
    assert all(m["cuped"] for m in revenue)
    clicks = [m for m in summary["metrics"] if m["metric"] == "clicks"]
    assert all(m["is_guardrail"] and m["guardrail"]["margin"] == 0.05 for m in clicks)
    assert [(p["treatment"], p["baseline"]) for p in summary["profit"]] == [("b", "a")]
    assert all(len(p["times"]) == 10 for p in summary["sequential_paths"])


def write_pair(tmp_path):
    exposures, outcomes = frames(seed=9, n=500)
    exposures.to_parquet(tmp_path / "exposures.parquet", index=False)
    outcomes.to_csv(tmp_path / "outcomes.csv", index=False)
    (tmp_path / "bad.yaml").write_text("control: [unclosed\n")
    (tmp_path / "list.yaml").write_text("- control\n")
    return [str(tmp_path / "exposures.parquet"), str(tmp_path / "outcomes.csv")]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--control", "control", "--continuous", "nope"],
            "outcomes.csv, column 'nope': missing column (found: unit_id, converted, revenue",
        ),
        (
            ["--control", "nobody", "--continuous", "revenue"],
            "exposures.parquet, column 'arm': no exposures in the control arm 'nobody'",
        ),
        (
            ["--control", "control", "--arms", "control=0.5,a=0.5", "--binary", "converted"],
            "exposures.parquet, column 'arm', row 0: arm 'b' is not a configured arm",
        ),
        (
            ["--control", "control", "--binary", "revenue"],
            "outcomes.csv, column 'revenue', row 0: a binary metric must be 0 or 1",
        ),
        (["--continuous", "revenue"], "option --control: which arm is the control?"),
        (
            ["--control", "control", "--covariate", "x=pre_revenue"],
            "option --covariate: no metric named 'x'",
        ),
        (
            ["--control", "control", "--continuous", "revenue", "--correction", "bonf"],
            "command-line options, option correction: Input should be 'holm', 'bh' or 'none'",
        ),
        (
            ["--control", "control", "--ratio", "r=revenue"],
            "option --ratio: expected NAME=NUMERATOR/DENOMINATOR, got 'revenue'",
        ),
        (
            ["--control", "control", "--arms", "control=x", "--binary", "converted"],
            "option --arms: ratio of 'control' is not a number: 'x'",
        ),
        (
            ["--config", "BAD", "--continuous", "revenue"],
            "bad.yaml, option --config: invalid YAML at line",
        ),
        (
            ["--config", "LIST"],
            "list.yaml, option --config: expected a mapping of settings at the top level",
        ),
        (["--config", "MISSING"], "missing.yaml, option --config: no such file"),
    ],
)
def test_analyze_user_errors_are_one_line_with_exit_2(tmp_path, capsys, extra, message):
    files = write_pair(tmp_path)
    replace = {"BAD": "bad.yaml", "LIST": "list.yaml", "MISSING": "missing.yaml"}
    extra = [str(tmp_path / replace[a]) if a in replace else a for a in extra]
    argv = ["experiment", "analyze", *files, "--out", str(tmp_path / "report"), *extra]
    assert message in user_error(argv, capsys)
    assert not (tmp_path / "report").exists()


def test_assign_command_writes_the_documented_assignment(tmp_path, capsys):
    pd.DataFrame({"customer": range(2_000)}).to_csv(tmp_path / "units.csv", index=False)
    argv = [
        "experiment",
        "assign",
        str(tmp_path / "units.csv"),
        "--id-column",
        "customer",
        "--experiment",
        "promo",
        "--arms",
        "policy=0.45,current_policy=0.45,control=0.1",
        "--coverage",
        "0.8",
        "--holdout",
        "0.05",
        "--out",
        str(tmp_path / "assignment.parquet"),
    ]
    assert run(argv) == 0
    assert "wrote" in capsys.readouterr().out
    written = pd.read_parquet(tmp_path / "assignment.parquet")
    design = Design(
        name="promo",
        arms={"policy": 0.45, "current_policy": 0.45, "control": 0.1},
        coverage=0.8,
        holdout=0.05,
    )
    expected = assign_units(range(2_000), design)
    assert written["arm"].tolist() == expected["arm"].tolist()
    assert written["status"].tolist() == expected["status"].tolist()
    assert set(written["status"]) == {"assigned", "holdout", "not_covered"}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--arms", "a=0.5,b=0.4"], "option --arms: arm weights must sum to 1, they sum to 0.9"),
        (["--arms", "a=1", "--layer-range", "half"], "option --layer-range: expected LO-HI"),
        (
            ["--arms", "a=1", "--coverage", "1.5"],
            "option --coverage: Input should be less than or equal to 1",
        ),
        (
            ["--arms", "a=1", "--id-column", "customer"],
            "units.csv, column 'customer': missing column",
        ),
    ],
)
def test_assign_user_errors(tmp_path, capsys, extra, message):
    pd.DataFrame({"unit_id": [1, 2, 3]}).to_csv(tmp_path / "units.csv", index=False)
    argv = ["experiment", "assign", str(tmp_path / "units.csv"), "--experiment", "x"]
    assert message in user_error([*argv, "--out", str(tmp_path / "a.parquet"), *extra], capsys)
    assert not (tmp_path / "a.parquet").exists()


def test_power_command_matches_statsmodels(capsys):
    assert run(["experiment", "power", "--baseline-rate", "0.1", "--effect", "0.01"]) == 0
    n = NormalIndPower().solve_power(effect_size=0.01 / math.sqrt(0.09), alpha=0.05, power=0.8)
    assert f"control {math.ceil(n):,}, treatment {math.ceil(n):,}" in capsys.readouterr().out
    assert run(["experiment", "power", "--sd", "2", "--n-control", "5000", "--power", "0.9"]) == 0
    d = NormalIndPower().solve_power(nobs1=5000, alpha=0.05, power=0.9)
    shown = float(capsys.readouterr().out.split("effect: ")[1].split()[0])
    assert shown == pytest.approx(2 * d, rel=1e-5)
    # CUPED planning: removing half the variance halves the units
    assert run(["experiment", "power", "--sd", "1", "--effect", "0.1"]) == 0
    plain = int(capsys.readouterr().out.split("control ")[1].split(", ")[0].replace(",", ""))
    argv = ["experiment", "power", "--sd", "1", "--effect", "0.1", "--variance-reduction", "0.5"]
    assert run(argv) == 0
    reduced = int(capsys.readouterr().out.split("control ")[1].split(", ")[0].replace(",", ""))
    assert abs(reduced - plain / 2) <= 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sd", "1", "--baseline-rate", "0.1", "--effect", "1"], "option --sd: give exactly one"),
        (["--sd", "1"], "option --effect: give exactly one of --effect and --n-control"),
        (["--sd", "1", "--effect", "1", "--test", "f"], "option --test: unknown test 'f'"),
        (
            ["--baseline-rate", "0", "--effect", "0.1"],
            "option --baseline-rate: the standard deviation must be positive",
        ),
    ],
)
def test_power_user_errors(argv, message, capsys):
    assert message in user_error(["experiment", "power", *argv], capsys)


def test_from_world_user_errors(fintech_world, tmp_path, capsys):
    pd.DataFrame({"unit_id": [1, 2]}).to_csv(tmp_path / "decisions.csv", index=False)
    base = ["experiment", "from-world", str(fintech_world.path), "--out", str(tmp_path / "x")]
    cases = [
        (["--design", "ab"], "option --design: unknown design 'ab' (campaign or policy)"),
        (
            ["--design", "policy", "--policy", str(tmp_path / "decisions.csv")],
            "decisions.csv, column 'arm': missing column (found: unit_id)",
        ),
        (["--exposure-days", "0"], "option --exposure-days: must be at least 1"),
    ]
    for extra, message in cases:
        assert message in user_error([*base, *extra], capsys)
    assert not (tmp_path / "x").exists()
