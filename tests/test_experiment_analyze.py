"""The analysis pipeline: the join of exposures and outcomes, every statistic equal to the
pure functions (and scipy) on the joined per-unit data, net profit with arm prices,
segments, the sequential path, guardrails, multiplicity, errors naming file/column/row,
and the report files."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats

from liftwise.errors import UserError
from liftwise.experiment.analyze import analyze_files, analyze_tables
from liftwise.experiment.config import parse_config
from liftwise.experiment.report import render_report, write_report
from liftwise.stats.cuped import cuped_difference
from liftwise.stats.moments import JointMoments, Moments, ratio_moments
from liftwise.stats.multiple import holm
from liftwise.stats.welch import mean_difference

ARMS = ("control", "a", "b")
SEGMENTS = [f"s{i}" for i in range(8)]
TIGHT = {"rtol": 1e-9, "atol": 1e-9}


def frames(seed: int = 0, n: int = 8_000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exposures and outcomes: arm b helps revenue everywhere but in segment s3."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(np.array(ARMS), n, p=[0.4, 0.3, 0.3])
    segment = np.array(SEGMENTS)[rng.integers(0, 8, n)]
    pre = rng.gamma(2.0, 50.0, n)
    lift = np.select([arm == "a", arm == "b"], [5.0, 10.0], 0.0)
    lift[(arm == "b") & (segment == "s3")] = -60.0
    revenue = 0.5 * pre + rng.gamma(2.0, 20.0, n) + lift
    converted = (rng.random(n) < 0.2 + 0.04 * (arm != "control")).astype(np.int64)
    exposures = pd.DataFrame(
        {
            "unit_id": np.arange(n),
            "arm": arm,
            "exposed_at": pd.Timestamp("2026-03-01")
            + pd.to_timedelta(rng.random(n) * 14, unit="D"),
        }
    )
    outcomes = pd.DataFrame(
        {
            "unit_id": np.arange(n),
            "converted": converted,
            "revenue": revenue,
            "orders": rng.poisson(2.0, n).astype(np.float64),
            "pre_revenue": pre,
            "clicks": rng.poisson(5.0, n).astype(np.float64),
            "cost": np.where(arm == "control", 0.0, 1.5),
            "segment": segment,
        }
    )
    return exposures, outcomes


BASE: dict = {
    "control": "control",
    "arms": {"control": 0.4, "a": 0.3, "b": 0.3},
    "metrics": [
        {"name": "converted", "type": "binary"},
        {"name": "revenue", "type": "continuous"},
        {
            "name": "revenue_cuped",
            "type": "continuous",
            "column": "revenue",
            "covariate": "pre_revenue",
        },
        {
            "name": "revenue_per_order",
            "type": "ratio",
            "numerator": "revenue",
            "denominator": "orders",
        },
        {"name": "clicks", "type": "continuous", "guardrail": {"margin": 0.05, "relative": True}},
    ],
    "segments": ["segment"],
    "profit": {"revenue": "revenue", "cost": "cost"},
}


def config(**changes):
    return parse_config({**BASE, **changes}, source="test")


def analyse(exposures: pd.DataFrame, outcomes: pd.DataFrame, settings=None):
    return analyze_tables(
        pa.Table.from_pandas(exposures, preserve_index=False),
        pa.Table.from_pandas(outcomes, preserve_index=False),
        settings or config(),
        exposures_source="exposures.parquet",
        outcomes_source="outcomes.parquet",
    )


@pytest.fixture(scope="module")
def data():
    return frames()


@pytest.fixture(scope="module")
def result(data):
    return analyse(*data)


def find(result, metric, treatment="b"):
    return next(c for c in result.comparisons if (c.metric, c.treatment) == (metric, treatment))


def by_arm(outcomes, exposures, column):
    joined = outcomes.merge(exposures[["unit_id", "arm"]], on="unit_id")
    return {arm: joined.loc[joined["arm"] == arm, column].to_numpy(np.float64) for arm in ARMS}


def test_statistics_equal_the_pure_functions_on_the_joined_units(data, result):
    exposures, outcomes = data
    revenue = by_arm(outcomes, exposures, "revenue")
    assert result.arms == list(ARMS)
    assert result.n_by_arm == {arm: revenue[arm].size for arm in ARMS}
    welch = find(result, "revenue")
    ref = stats.ttest_ind(revenue["b"], revenue["control"], equal_var=False)
    ci = ref.confidence_interval()
    assert np.allclose([welch.absolute.ci_low, welch.absolute.ci_high], [ci.low, ci.high], **TIGHT)
    assert np.isclose(welch.absolute.p_value, ref.pvalue, **TIGHT)
    assert welch.mean_treatment == pytest.approx(revenue["b"].mean(), rel=1e-12)
    pre = by_arm(outcomes, exposures, "pre_revenue")
    cuped = cuped_difference(
        JointMoments.from_values(revenue["control"], pre["control"]),
        JointMoments.from_values(revenue["b"], pre["b"]),
    )
    mine = find(result, "revenue_cuped")
    assert mine.cuped and np.isclose(mine.theta, cuped.theta, **TIGHT)
    assert np.isclose(mine.absolute.ci_low, cuped.absolute.ci_low, **TIGHT)
    assert np.isclose(mine.relative.ci_high, cuped.relative.ci_high, **TIGHT)
    assert mine.variance_ratio < 0.8  # pre_revenue explains much of revenue
    orders = by_arm(outcomes, exposures, "orders")
    ratio = mean_difference(
        ratio_moments(JointMoments.from_values(revenue["control"], orders["control"])),
        ratio_moments(JointMoments.from_values(revenue["b"], orders["b"])),
    )
    assert np.isclose(find(result, "revenue_per_order").absolute.ci_high, ratio.ci_high, **TIGHT)
    converted = by_arm(outcomes, exposures, "converted")
    z = find(result, "converted").absolute
    assert np.isinf(z.dof)  # binary metrics: the Wald z interval
    diff = converted["b"].mean() - converted["control"].mean()
    se = np.sqrt(
        sum(v.mean() * (1 - v.mean()) / v.size for v in (converted["b"], converted["control"]))
    )
    assert np.isclose(z.estimate, diff, **TIGHT) and np.isclose(z.standard_error, se, **TIGHT)


def test_holm_over_the_non_guardrail_comparisons(result):
    family = [c for c in result.comparisons if not c.is_guardrail]
    assert len(family) == 8  # 4 metrics x 2 arms; the guardrail is tested on its own
    adjusted = holm(np.array([float(c.absolute.p_value) for c in family]))
    assert np.allclose([c.adjusted_p_value for c in family], adjusted, **TIGHT)
    assert all(c.significant == (c.adjusted_p_value < 0.05) for c in family)
    guard = find(result, "clicks")
    assert guard.is_guardrail and guard.adjusted_p_value is None and guard.guardrail.passed


def test_net_profit_uplift_with_a_cost_column(data, result):
    exposures, outcomes = data
    net = by_arm(outcomes.assign(net=outcomes["revenue"] - outcomes["cost"]), exposures, "net")
    uplift = next(p for p in result.profit if p.treatment == "a")
    direct = mean_difference(Moments.from_values(net["control"]), Moments.from_values(net["a"]))
    assert np.isclose(uplift.per_unit.ci_low, direct.ci_low, **TIGHT)
    assert uplift.treatment_units == net["a"].size
    assert np.isclose(uplift.total.ci_high, direct.ci_high * net["a"].size, **TIGHT)
    assert [(p.treatment, p.baseline) for p in result.profit] == [
        ("a", "control"),
        ("b", "control"),
    ]


def test_contact_prices_are_charged_to_units_without_an_outcome_row():
    """The earlier bias: an exposed unit without an outcome row was free. Its net profit is
    minus its arm's contact price, and a conversion adds the per-conversion price."""
    exposures, outcomes = frames(seed=1, n=3_000)
    kept = outcomes.sample(frac=0.7, random_state=0).sort_values("unit_id")
    settings = config(
        metrics=[{"name": "converted", "type": "binary"}],
        segments=[],
        profit={
            "revenue": "revenue",
            "conversion": "converted",
            "arm_costs": {"a": {"contact": 2.0, "per_conversion": 5.0}, "b": {"contact": 3.0}},
        },
    )
    result = analyse(exposures, kept, settings)
    assert result.units.units_without_outcome_row == 900
    full = exposures[["unit_id", "arm"]].merge(kept, on="unit_id", how="left").fillna(0.0)
    price = full["arm"].map({"control": 0.0, "a": 2.0, "b": 3.0})
    full["net"] = full["revenue"] - price - 5.0 * full["converted"] * (full["arm"] == "a")
    for uplift in result.profit:
        a = full.loc[full["arm"] == "control", "net"].to_numpy()
        b = full.loc[full["arm"] == uplift.treatment, "net"].to_numpy()
        direct = mean_difference(Moments.from_values(a), Moments.from_values(b))
        assert np.isclose(uplift.per_unit.estimate, direct.estimate, **TIGHT)
        assert np.isclose(uplift.per_unit.standard_error, direct.standard_error, **TIGHT)
        assert np.isclose(uplift.mean_treatment, b.mean(), **TIGHT)
    # with a CUPED covariate the prices enter the cross-products too
    cuped = settings.model_copy(
        update={"profit": settings.profit.model_copy(update={"covariate": "pre_revenue"})}
    )
    uplift = analyse(exposures, kept, cuped).profit[0]
    a = full[full["arm"] == "control"]
    b = full[full["arm"] == "a"]
    direct = cuped_difference(
        JointMoments.from_values(a["net"].to_numpy(), a["pre_revenue"].to_numpy()),
        JointMoments.from_values(b["net"].to_numpy(), b["pre_revenue"].to_numpy()),
    ).absolute
    assert uplift.cuped and np.isclose(uplift.per_unit.ci_low, direct.ci_low, **TIGHT)


def test_segment_deep_dive_finds_the_planted_regression(data, result):
    exposures, outcomes = data
    rows = [s for s in result.segments if s.metric == "revenue" and s.treatment == "b"]
    assert len(rows) == 1
    effects = rows[0].effects
    assert sorted(effects.levels) == SEGMENTS
    joined = outcomes.merge(exposures[["unit_id", "arm"]], on="unit_id")
    for i, level in enumerate(effects.levels):
        part = joined[joined["segment"] == level]
        ref = stats.ttest_ind(
            part.loc[part["arm"] == "b", "revenue"],
            part.loc[part["arm"] == "control", "revenue"],
            equal_var=False,
        )
        assert np.isclose(effects.effect.p_value[i], ref.pvalue, **TIGHT)
    assert effects.regressions == ["s3"]
    assert effects.heterogeneity.p_value < 1e-6 and effects.spread.lowest_segment == "s3"
    assert not find(result, "revenue", "a").absolute.p_value < 1e-12  # sanity: a is modest
    a_rows = [s for s in result.segments if s.metric == "revenue" and s.treatment == "a"]
    assert a_rows[0].effects.regressions == []
    verdict = result.verdict()
    flagged = {(r["metric"], r["treatment"]) for r in verdict["segment_regressions"]}
    assert ("revenue", "b") in flagged and ("net_profit", "b") in flagged
    assert verdict["profit"]["b vs control"]["segment_regression"]
    assert not verdict["profit"]["b vs control"]["success"]


def test_segment_levels_missing_values_and_other():
    exposures, outcomes = frames(seed=2, n=4_000)
    outcomes["segment"] = outcomes["segment"].astype(object)
    outcomes.loc[::50, "segment"] = None
    outcomes["region"] = [f"r{i % 30}" for i in range(len(outcomes))]
    kept = outcomes.iloc[100:]
    settings = config(segments=["segment", "region"], max_segment_levels=10)
    result = analyse(exposures, kept, settings)
    levels = {s.effects.dimension: s.effects.levels for s in result.segments}
    assert "(missing)" in levels["segment"] and levels["segment"][-1] == "(no outcome row)"
    assert len(levels["region"]) == 11 and "(other)" in levels["region"]  # 9 + other + no row
    for s in result.segments:
        n = s.effects.n_baseline.sum() + s.effects.n_treatment.sum()
        assert n == result.n_by_arm[s.baseline] + result.n_by_arm[s.treatment]


def test_sequential_path_ends_at_the_final_analysis(result):
    path = next(p for p in result.paths if (p.metric, p.treatment) == ("revenue", "b"))
    final = find(result, "revenue")
    assert len(path.times) == 30 and np.all(np.diff(path.n_total) >= 0)
    assert path.n_total[-1] == final.n_baseline + final.n_treatment
    assert np.isclose(path.fixed.estimate[-1], final.absolute.estimate, **TIGHT)
    assert np.isclose(path.sequential.ci_low[-1], final.sequential.ci_low, **TIGHT)
    seq, fixed = path.sequential, path.fixed
    assert np.all(seq.ci_low <= fixed.ci_low) and np.all(seq.ci_high >= fixed.ci_high)
    assert any(p.metric == "net_profit" for p in result.paths)


def test_guardrails_fail_on_real_harm():
    exposures, outcomes = frames(seed=3, n=6_000)
    harmed = outcomes["unit_id"].isin(exposures.loc[exposures["arm"] == "b", "unit_id"])
    outcomes.loc[harmed, "clicks"] *= 0.8  # 20% fewer clicks, margin 5%
    result = analyse(exposures, outcomes)
    assert find(result, "clicks", "a").guardrail.passed
    failed = find(result, "clicks", "b").guardrail
    assert not failed.passed and failed.bound < -0.05
    assert result.verdict()["guardrails_passed"] is False
    # lower is better: a 20% drop is an improvement
    metrics = [
        {
            "name": "clicks",
            "type": "continuous",
            "higher_is_better": False,
            "guardrail": {"margin": 0.5},
        }
    ]
    flipped = analyse(exposures, outcomes, config(metrics=metrics, segments=[], profit=None))
    assert flipped.verdict()["guardrails_passed"] is True


def test_join_counts_repeats_multi_arm_units_and_stray_outcomes():
    exposures, outcomes = frames(seed=4, n=2_000)
    repeats = exposures.iloc[:50].assign(
        exposed_at=exposures["exposed_at"].iloc[:50] + pd.Timedelta(days=1)
    )
    switched = exposures.iloc[50:60].assign(
        arm=exposures["arm"].iloc[50:60].map({"control": "a", "a": "b", "b": "control"})
    )
    strays = outcomes.iloc[:5].assign(unit_id=np.arange(10_000, 10_005))
    result = analyse(
        pd.concat([exposures, repeats, switched]),
        pd.concat([outcomes, strays]),
        config(segments=[]),
    )
    units = result.units
    assert units.exposure_rows == 2_060 and units.exposed_units == 2_000
    assert units.repeat_exposure_rows == 60 and units.multi_arm_units == 10
    assert units.multi_arm_examples == ["50", "51", "52", "53", "54"]
    assert units.analysed_units == 1_990 and units.outcome_rows_not_exposed == 5
    assert units.outcome_rows_multi_arm == 10
    clean = analyse(exposures.drop(index=range(50, 60)), outcomes, config(segments=[]))
    assert find(result, "revenue").absolute == find(clean, "revenue").absolute
    # the repeated exposures are binned at their first time: the paths agree too
    both = analyse(pd.concat([exposures, repeats]), outcomes, config(segments=[]))
    once = analyse(exposures, outcomes, config(segments=[]))
    assert np.array_equal(both.paths[0].n_total, once.paths[0].n_total)


def test_units_without_outcome_rows_count_as_zero_or_fail():
    exposures, outcomes = frames(seed=5, n=2_000)
    kept = outcomes.iloc[::2]
    result = analyse(exposures, kept, config(segments=[]))
    assert result.units.units_without_outcome_row == 1_000
    revenue = exposures[["unit_id", "arm"]].merge(kept, on="unit_id", how="left").fillna(0.0)
    b = revenue.loc[revenue["arm"] == "b", "revenue"].to_numpy()
    c = revenue.loc[revenue["arm"] == "control", "revenue"].to_numpy()
    direct = mean_difference(Moments.from_values(c), Moments.from_values(b))
    assert np.isclose(find(result, "revenue").absolute.ci_low, direct.ci_low, **TIGHT)
    with pytest.raises(UserError) as err:
        analyse(exposures, kept, config(segments=[], missing_outcomes="error"))
    assert err.value.file == "outcomes.parquet" and "exposed unit 1 has no outcome row" in str(
        err.value
    )


def test_text_ids_join_integer_ids_and_an_arm_dictionary_with_unused_labels():
    exposures, outcomes = frames(seed=6, n=1_500)
    text = exposures.assign(unit_id=exposures["unit_id"].astype(str))
    text["arm"] = pd.Categorical(text["arm"], categories=[*ARMS, "retired"])
    settings = config(arms=None, segments=[])
    result = analyse(text, outcomes, settings)
    assert result.arms == list(ARMS)  # "retired" has no exposures: not an arm
    assert result.units.analysed_units == 1_500 and result.units.units_without_outcome_row == 0
    same = analyse(exposures, outcomes, settings)
    assert find(result, "revenue").absolute == find(same, "revenue").absolute


def test_experiment_filter(data):
    exposures, outcomes = data
    two = pd.concat(
        [
            exposures.assign(experiment="x"),
            exposures.assign(experiment="y", unit_id=exposures["unit_id"] + 10**6),
        ]
    )
    with pytest.raises(UserError, match="several experiments \\(x, y\\); choose one"):
        analyse(two, outcomes)
    only_x = analyse(two, outcomes, config(experiment="x"))
    assert only_x.units.exposure_rows == len(exposures)
    with pytest.raises(UserError, match="no exposures of experiment 'z'"):
        analyse(two, outcomes, config(experiment="z"))


def bad_cases():
    exposures, outcomes = frames(seed=7, n=200)
    nulls = exposures.astype({"arm": object})
    nulls.loc[7, "arm"] = None
    text_revenue = outcomes.astype({"revenue": str})
    text_revenue.loc[11, "revenue"] = "n/a"
    twos = outcomes.copy()
    twos.loc[13, "converted"] = 2
    other_arm = exposures.copy()
    other_arm.loc[17, "arm"] = "c"
    float_ids = exposures.astype({"unit_id": float})
    float_ids.loc[3, "unit_id"] = 2.5
    bad_time = exposures.astype({"exposed_at": str})
    bad_time.loc[19, "exposed_at"] = "yesterday"
    return [
        (
            exposures.drop(columns="arm"),
            outcomes,
            "exposures.parquet",
            "arm",
            None,
            "missing column",
        ),
        (
            exposures,
            outcomes.drop(columns="orders"),
            "outcomes.parquet",
            "orders",
            None,
            "missing column",
        ),
        (nulls, outcomes, "exposures.parquet", "arm", 7, "missing value"),
        (float_ids, outcomes, "exposures.parquet", "unit_id", 3, "unit id 2.5 is not an integer"),
        (exposures, text_revenue, "outcomes.parquet", "revenue", 11, "not a finite number: 'n/a'"),
        (exposures, twos, "outcomes.parquet", "converted", 13, "must be 0 or 1, found 2.0"),
        (other_arm, outcomes, "exposures.parquet", "arm", 17, "arm 'c' is not a configured arm"),
        (bad_time, outcomes, "exposures.parquet", "exposed_at", 19, "not a timestamp: 'yesterday'"),
        (
            exposures,
            pd.concat([outcomes, outcomes.iloc[[4]]]),
            "outcomes.parquet",
            "unit_id",
            200,
            "unit 4 has two outcome rows",
        ),
        (
            exposures[exposures["arm"] != "control"],
            outcomes,
            "exposures.parquet",
            "arm",
            None,
            "no exposures in the control arm",
        ),
    ]


@pytest.mark.parametrize(("exposures", "outcomes", "file", "column", "row", "message"), bad_cases())
def test_bad_input_names_the_file_column_and_row(exposures, outcomes, file, column, row, message):
    with pytest.raises(UserError) as err:
        analyse(exposures, outcomes)
    assert (err.value.file, err.value.column, err.value.row) == (file, column, row)
    assert message in err.value.message
    assert "\n" not in str(err.value) and "np." not in str(err.value)


@pytest.mark.parametrize(
    ("changes", "where", "message"),
    [
        ({"control": "nobody"}, None, "control 'nobody' is not among the arms"),
        ({"metrics": [], "profit": None}, None, "at least one metric or the profit"),
        ({"segments": ["revenue"]}, None, "both a segment and a metric column"),
        ({"profit": {"revenue": "net_profit"}}, None, "'net_profit' is reserved"),
        ({"alpha": 0.7}, "alpha", "less than 0.5"),
        (
            {"metrics": [{"name": "r", "type": "ratio", "numerator": "x"}]},
            "metrics.0",
            "needs numerator and denominator",
        ),
        ({"correction": "bonferroni"}, "correction", "'holm', 'bh' or 'none'"),
    ],
)
def test_config_errors_name_the_field(changes, where, message):
    with pytest.raises(UserError) as err:
        config(**changes)
    assert err.value.file == "test" and err.value.option == where
    assert message in err.value.message


def test_profit_configuration_errors(data):
    exposures, outcomes = data
    prices = config(profit={"revenue": "revenue", "arm_costs": {"z": {"contact": 1.0}}})
    with pytest.raises(UserError, match="prices for arms that are not in the experiment: z"):
        analyse(exposures, outcomes, prices)
    pairs = config(profit={"revenue": "revenue", "comparisons": [["a", "zz"]]})
    with pytest.raises(UserError, match="comparison arm 'zz' is not in the experiment"):
        analyse(exposures, outcomes, pairs)


def test_files_and_sqlite_sources_give_the_same_analysis(tmp_path, data):
    exposures, outcomes = data
    settings = config(segments=[])
    pq.write_table(pa.Table.from_pandas(exposures, preserve_index=False), tmp_path / "e.parquet")
    outcomes.to_csv(tmp_path / "o.csv", index=False)
    from_files = analyze_files(tmp_path / "e.parquet", tmp_path / "o.csv", settings)
    with sqlite3.connect(tmp_path / "log.db") as connection:
        exposures.rename(columns={"exposed_at": "occurred_at"}).assign(
            occurred_at=exposures["exposed_at"].astype(str)
        ).to_sql("exposures", connection, index=False)
    from_db = analyze_files(f"sqlite:///{tmp_path / 'log.db'}", tmp_path / "o.csv", settings)
    assert find(from_db, "revenue").absolute == find(from_files, "revenue").absolute
    assert np.array_equal(from_db.paths[0].n_total, from_files.paths[0].n_total)
    for source, message in (
        (tmp_path / "e.txt", "unsupported file type"),
        (tmp_path / "missing.parquet", "no such file"),
        ("mysql://db/x", "unknown exposure source 'mysql://'"),
        ("postgresql://nohost.invalid/x", "cannot read table 'exposures'"),
    ):
        with pytest.raises(UserError, match=message):
            analyze_files(source, tmp_path / "o.csv", settings)
    (tmp_path / "broken.parquet").write_text("not parquet")
    with pytest.raises(UserError, match="cannot read as Parquet") as err:
        analyze_files(tmp_path / "broken.parquet", tmp_path / "o.csv", settings)
    assert err.value.file == str(tmp_path / "broken.parquet")


def test_report_files_are_complete_and_the_json_is_strict(tmp_path, result, shell_page):
    paths = write_report(result, tmp_path / "out", title="Spring promo")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "summary.json"]
    summary = json.loads(paths["summary"].read_text())
    json.dumps(summary, allow_nan=False)  # NaN and infinity are null, never bare NaN
    assert summary == json.loads(json.dumps(result.as_dict(), default=str))
    assert summary["srm"]["mismatch"] is False and summary["arms"] == list(ARMS)
    assert {m["metric"] for m in summary["metrics"]} == {
        "converted",
        "revenue",
        "revenue_cuped",
        "revenue_per_order",
        "clicks",
    }
    assert summary["metrics"][0]["absolute"]["dof"] is None  # z interval: infinite dof
    assert len(summary["segments"][0]["levels"]) == 8
    assert summary["verdict"]["profit"]["b vs control"]["segment_regression"] is True
    html = paths["report"].read_text()
    for heading in (
        "Spring promo",
        "<h2>Verdict</h2>",
        "Sample ratio: ok",
        "<h2>Metrics</h2>",
        "<h2>Guardrails (one-sided non-inferiority)</h2>",
        "<h2>Net profit uplift</h2>",
        "<h2>Segments</h2>",
        "<h2>Sample ratio check</h2>",
        "<h2>Effects per metric</h2>",
        "<h2>Sequential interval over time</h2>",
        "<h2>Segments: segment</h2>",
    ):
        assert heading in html, heading
    assert html.count("data:image/png;base64,") == 5
    shell_page(html)


def test_report_is_a_shell_page_and_escapes_segment_names(shell_page):
    """A segment level that is markup is shown as text; missing numbers are empty cells."""
    exposures, outcomes = frames(seed=4, n=3_000)
    script = "<script>alert(1)</script>"
    outcomes["segment"] = outcomes["segment"].replace({"s3": script})
    page = render_report(analyse(exposures, outcomes), {}, "escaped")
    shell_page(page)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<h2>Segments</h2>" in page


def test_report_follows_alpha(tmp_path, data):
    result = analyse(*data, config(alpha=0.1, segments=[]))
    html = (write_report(result, tmp_path)["report"]).read_text()
    assert "90% CI" in html and "95%" not in html


def test_a_minimal_experiment_with_degenerate_metrics_still_reports(tmp_path):
    """No exposure times (no sequential path), no SRM ratios, no segments, a metric that
    never varies and a ratio whose denominator is always 0: NaN, null in JSON, no crash."""
    exposures, outcomes = frames(seed=10, n=400)
    exposures = exposures.drop(columns="exposed_at")
    outcomes["flat"] = 1.0
    outcomes["zero"] = 0.0
    settings = parse_config(
        {
            "control": "control",
            "metrics": [
                {"name": "flat", "type": "continuous", "guardrail": {"margin": 0.1}},
                {
                    "name": "per_zero",
                    "type": "ratio",
                    "numerator": "revenue",
                    "denominator": "zero",
                },
                {"name": "revenue", "type": "continuous"},
            ],
        },
        source="minimal",
    )
    result = analyse(exposures, outcomes, settings)
    assert result.srm is None and result.paths == [] and result.segments == []
    flat = find(result, "flat")
    assert np.isnan(flat.absolute.p_value) and flat.guardrail is None
    assert result.verdict()["guardrails_passed"] is False  # untestable is not passed
    assert np.isnan(find(result, "per_zero").absolute.estimate)
    assert find(result, "revenue").adjusted_p_value is not None
    paths = write_report(result, tmp_path)
    summary = json.loads(paths["summary"].read_text())
    json.dumps(summary, allow_nan=False)
    assert summary["srm"] is None and summary["sequential_paths"] == []
    html = paths["report"].read_text()
    assert "not checked (no expected ratios)" in html and "FAILED" in html
