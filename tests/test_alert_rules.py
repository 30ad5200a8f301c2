"""The shipped Prometheus alert rules, checked and unit-tested by the real promtool
(Debian's ``prometheus`` package, installed here when missing): every alert fires on
series that break its threshold, after its ``for`` duration, with its labels and rendered
annotations, and stays silent on series that do not."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import debian_tool
from liftwise.cli import run
from liftwise.serve.alerting import RULES_FILE, alert_rules

ALERTS = {
    "LiftwiseRolloutErrorRateHigh": "critical",
    "LiftwiseRolloutLatencyP99High": "warning",
    "LiftwiseRolloutGateFailed": "critical",
    "LiftwiseRolloutAborted": "warning",
    "LiftwiseServeLatencyP99High": "warning",
    "LiftwiseBudgetOverspent": "critical",
    "LiftwiseBudgetExhaustedBeforeWindowEnd": "warning",
    "LiftwiseBudgetBurnRateHigh": "warning",
}


@pytest.fixture(scope="module")
def promtool() -> str:
    return debian_tool("promtool", "prometheus")


@pytest.fixture(scope="module")
def rules() -> dict[str, dict[str, Any]]:
    """Every alert rule of the shipped file by name."""
    document = yaml.safe_load(alert_rules())
    return {rule["alert"]: rule for group in document["groups"] for rule in group["rules"]}


def test_the_command_writes_the_shipped_rules_and_promtool_accepts_them(tmp_path, promtool):
    out = tmp_path / "rules" / "liftwise.yml"
    assert run(["rollout", "alert-rules", "--out", str(out)]) == 0
    assert out.read_text() == RULES_FILE.read_text()
    checked = subprocess.run([promtool, "check", "rules", str(out)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout


def test_the_command_prints_the_rules_without_out(capsys):
    assert run(["rollout", "alert-rules"]) == 0
    assert capsys.readouterr().out == alert_rules()


def test_promtool_refuses_a_broken_rule(tmp_path, promtool):
    """The check can fail: a rules file with a syntax error in its expression."""
    broken = tmp_path / "broken.yml"
    broken.write_text(alert_rules().replace("> 0.001", "> > 0.001", 1))
    checked = subprocess.run([promtool, "check", "rules", str(broken)], capture_output=True)
    assert checked.returncode != 0


def test_every_alert_has_severity_summary_description_and_runbook(rules):
    assert {name: rule["labels"]["severity"] for name, rule in rules.items()} == ALERTS
    for rule in rules.values():
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
        assert rule["annotations"]["runbook_url"] == "docs/rollouts.md#alerts"
    assert "## Alerts" in (Path(__file__).parents[1] / "docs" / "rollouts.md").read_text()


# ---------------------------------------------------------------------- promtool unit tests


def rendered(rule: dict[str, Any], labels: dict[str, str], value: str) -> dict[str, str]:
    """The annotations promtool must render for an alert with ``labels`` whose ``$value``
    reads ``value`` through its humanize function: the templates' ``{{ $labels.x }}`` and
    ``{{ $value | f }}`` filled in, folded YAML already one line."""
    out = {}
    for key, template in rule["annotations"].items():
        text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m.group(1)], template)
        out[key] = re.sub(r"\{\{ \$value \| \w+ \}\}", value, text)
    return out


def expect(
    rule: dict[str, Any], name: str, at: str, firing: list[tuple[dict[str, str], str]]
) -> dict[str, Any]:
    """An alert_rule_test case: at ``at``, exactly the ``firing`` (labels, value) alerts."""
    alerts = []
    for labels, value in firing:
        every = {"alertname": name, **labels, **rule["labels"]}
        alerts.append({"exp_labels": every, "exp_annotations": rendered(rule, labels, value)})
    return {"eval_time": at, "alertname": name, "exp_alerts": alerts}


def promtool_test(
    promtool: str, tmp_path: Path, series: list[tuple[str, str]], cases: list[dict[str, Any]]
) -> subprocess.CompletedProcess[str]:
    """Run ``promtool test rules`` on the shipped rules with these input series (1 minute
    apart) and alert cases."""
    document = {
        "rule_files": [str(RULES_FILE)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "alert_rule_test": cases,
            }
        ],
    }
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)


def passes(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_error_rate_fires_per_variant_above_a_tenth_of_a_percent(promtool, tmp_path, rules):
    name, rule = "LiftwiseRolloutErrorRateHigh", rules["LiftwiseRolloutErrorRateHigh"]
    errors = 'liftwise_rollout_errors_total{{rollout="r1",variant="{}",instance="w1"}}'
    count = 'liftwise_rollout_request_seconds_count{{rollout="r1",variant="{}",instance="w1"}}'
    series = [
        (errors.format("candidate"), "0+1x30"),  # 1 in 100: 1%
        (count.format("candidate"), "0+100x30"),
        (errors.format("baseline"), "0+0.5x30"),  # 0.5 in 1,000: 0.05%
        (count.format("baseline"), "0+1000x30"),
        (errors.format("holdout"), "0+0x30"),
        (count.format("holdout"), "0+50x30"),
    ]
    candidate = ({"rollout": "r1", "variant": "candidate"}, "1%")
    cases = [
        expect(rule, name, "5m", [candidate]),
        expect(rule, name, "20m", [candidate]),
    ]
    passes(promtool_test(promtool, tmp_path, series, cases))
    # every request of a variant failing (its decisions counter never appears) still fires
    broken = [(errors.format("candidate"), "0+5x30"), (count.format("candidate"), "0+5x30")]
    everything = ({"rollout": "r1", "variant": "candidate"}, "100%")
    passes(promtool_test(promtool, tmp_path, broken, [expect(rule, name, "10m", [everything])]))
    # ... and the "for" of one minute: errors that began this minute do not fire yet
    recent = [(errors.format("candidate"), "0x9 1+1x20"), (count.format("candidate"), "0+100x30")]
    passes(promtool_test(promtool, tmp_path, recent, [expect(rule, name, "10m", [])]))


def test_a_wrong_expectation_fails_the_promtool_test(promtool, tmp_path, rules):
    """The harness can fail: the baseline's 0.05% is not an alert."""
    name, rule = "LiftwiseRolloutErrorRateHigh", rules["LiftwiseRolloutErrorRateHigh"]
    series = [
        ('liftwise_rollout_errors_total{rollout="r1",variant="baseline"}', "0+0.5x30"),
        ('liftwise_rollout_request_seconds_count{rollout="r1",variant="baseline"}', "0+1000x30"),
    ]
    wrong = expect(rule, name, "20m", [({"rollout": "r1", "variant": "baseline"}, "0.05%")])
    done = promtool_test(promtool, tmp_path, series, [wrong])
    assert done.returncode != 0 and "FAILED" in done.stdout + done.stderr


def histogram(metric: str, labels: str, per_minute: dict[str, int]) -> list[tuple[str, str]]:
    """Cumulative bucket series of a histogram growing by ``per_minute`` (le -> count)."""
    return [(f'{metric}_bucket{{{labels},le="{le}"}}', f"0+{n}x30") for le, n in per_minute.items()]


FAST = {"0.005": 99, "0.01": 100, "0.05": 100, "0.1": 100, "+Inf": 100}  # p99 = 5-10 ms
SLOW = {"0.005": 0, "0.01": 50, "0.05": 90, "0.1": 100, "+Inf": 100}  # p99 = 95 ms


def test_p99_fires_per_variant_above_50_ms(promtool, tmp_path, rules):
    name, rule = "LiftwiseRolloutLatencyP99High", rules["LiftwiseRolloutLatencyP99High"]
    metric = "liftwise_rollout_request_seconds"
    series = [
        *histogram(metric, 'rollout="r1",variant="candidate",instance="w1"', SLOW),
        *histogram(metric, 'rollout="r1",variant="candidate",instance="w2"', SLOW),
        *histogram(metric, 'rollout="r1",variant="baseline",instance="w1"', FAST),
    ]
    slow = ({"rollout": "r1", "variant": "candidate"}, "95ms")
    cases = [
        expect(rule, name, "2m", []),  # pending: "for: 2m"
        expect(rule, name, "10m", [slow]),
    ]
    passes(promtool_test(promtool, tmp_path, series, cases))


def test_service_p99_watches_single_decisions_not_batches(promtool, tmp_path, rules):
    name, rule = "LiftwiseServeLatencyP99High", rules["LiftwiseServeLatencyP99High"]
    metric = "liftwise_serve_request_seconds"
    batches = histogram(metric, 'route="/v1/decisions:batch",job="liftwise",instance="w1"', SLOW)
    fast = histogram(metric, 'route="/v1/decisions",job="liftwise",instance="w1"', FAST)
    passes(promtool_test(promtool, tmp_path, batches + fast, [expect(rule, name, "20m", [])]))
    slow = histogram(metric, 'route="/v1/decisions",job="liftwise",instance="w1"', SLOW)
    cases = [
        expect(rule, name, "4m", []),
        expect(rule, name, "20m", [({"job": "liftwise"}, "95ms")]),
    ]
    passes(promtool_test(promtool, tmp_path, slow, cases))


def test_a_failed_gate_fires_and_keeps_firing_five_minutes_after_the_rollback(
    promtool, tmp_path, rules
):
    name, rule = "LiftwiseRolloutGateFailed", rules["LiftwiseRolloutGateFailed"]
    series = [
        ('liftwise_rollout_gate{rollout="r1",gate="business",instance="w1"}', "0 0 1 -1 -1 _x30"),
        ('liftwise_rollout_gate{rollout="r1",gate="errors",instance="w1"}', "0 1 1 1 1 _x30"),
        ('liftwise_rollout_gate{rollout="r2",gate="latency",instance="w1"}', "0 0 0 0 0x30"),
    ]
    failed = ({"rollout": "r1", "gate": "business"}, "")
    cases = [
        expect(rule, name, "2m", []),
        expect(rule, name, "3m", [failed]),
        expect(rule, name, "7m", [failed]),
        expect(rule, name, "15m", []),
    ]
    passes(promtool_test(promtool, tmp_path, series, cases))


def test_an_aborted_rollout_fires(promtool, tmp_path, rules):
    name, rule = "LiftwiseRolloutAborted", rules["LiftwiseRolloutAborted"]
    status = 'liftwise_rollout_status{{rollout="{}",status="{}",instance="w1"}}'
    series = [
        (status.format("r1", "running"), "1x4 0x30"),
        (status.format("r1", "aborted"), "0x4 1x5 _x30"),
        (status.format("r2", "running"), "1x30"),
        (status.format("r2", "aborted"), "0x30"),
    ]
    aborted = ({"rollout": "r1"}, "")
    cases = [
        expect(rule, name, "3m", []),
        expect(rule, name, "5m", [aborted]),
        expect(rule, name, "20m", [aborted]),  # within 15 minutes of the last aborted sample
        expect(rule, name, "30m", []),
    ]
    passes(promtool_test(promtool, tmp_path, series, cases))


def test_spend_beyond_the_pacing_allowance_fires(promtool, tmp_path, rules):
    name, rule = "LiftwiseBudgetOverspent", rules["LiftwiseBudgetOverspent"]
    series = [
        ('liftwise_budget_spent{campaign="paced",instance="w1"}', "0+10x30"),
        ('liftwise_budget_allowed{campaign="paced",instance="w1"}', "0+10x30"),
        ('liftwise_budget_spent{campaign="over",instance="w1"}', "0+10x10 110+20x20"),
        ('liftwise_budget_allowed{campaign="over",instance="w1"}', "0+10x30"),
    ]
    over = ({"campaign": "over", "instance": "w1"}, "145%")  # at 20m: 290 of 200
    cases = [expect(rule, name, "10m", []), expect(rule, name, "20m", [over])]
    passes(promtool_test(promtool, tmp_path, series, cases))


def test_a_burn_rate_that_outlasts_the_budget_before_the_window_ends_fires(
    promtool, tmp_path, rules
):
    """Budget 1,000 and a window ending at 2 h: 5 a minute spends 600 by then (fine), 11 a
    minute would need 1,320 (fires); a spent-out, flat campaign does not fire."""
    name = "LiftwiseBudgetExhaustedBeforeWindowEnd"
    rule = rules[name]
    series = []
    for campaign, spend in (("steady", "0+5x60"), ("fast", "0+11x60"), ("done", "1000x60")):
        labels = f'campaign="{campaign}",instance="w1"'
        series += [
            (f"liftwise_budget_spent{{{labels}}}", spend),
            (f"liftwise_budget_total{{{labels}}}", "1000x60"),
            (f"liftwise_budget_window_end_seconds{{{labels}}}", "7200x60"),
        ]
    fast = ({"campaign": "fast", "instance": "w1"}, "1.32k")
    cases = [expect(rule, name, "5m", []), expect(rule, name, "40m", [fast])]
    passes(promtool_test(promtool, tmp_path, series, cases))
    # past the window's end there is nothing left to project
    late = [(s, v.replace("7200x60", "600x60")) for s, v in series]
    passes(promtool_test(promtool, tmp_path, late, [expect(rule, name, "40m", [])]))


def test_a_budget_gone_within_the_hour_fires_without_a_window(promtool, tmp_path, rules):
    name, rule = "LiftwiseBudgetBurnRateHigh", rules["LiftwiseBudgetBurnRateHigh"]
    series = []
    for campaign, spend in (("slow", "0+1x60"), ("fast", "0+20x60")):
        labels = f'campaign="{campaign}",instance="w1"'
        series += [
            (f"liftwise_budget_spent{{{labels}}}", spend),
            (f"liftwise_budget_total{{{labels}}}", "2000x60"),
        ]
    # "fast" projects 20 t + 1,200: over 2,000 from 41m, firing 5 minutes later; at 50m 2,200
    fast = ({"campaign": "fast", "instance": "w1"}, "2.2k")
    cases = [
        expect(rule, name, "30m", []),
        expect(rule, name, "44m", []),
        expect(rule, name, "50m", [fast]),
    ]
    passes(promtool_test(promtool, tmp_path, series, cases))


# ---------------------------------------------------------------------- the rules read real metrics

# the per-variant metrics of a rollout, fixed by issue 12's design (liftwise.serve.rollouts)
ROLLOUT_METRICS = {
    "liftwise_rollout_decisions_total",
    "liftwise_rollout_errors_total",
    "liftwise_rollout_request_seconds",
    "liftwise_rollout_treated_total",
    "liftwise_rollout_spend",
    "liftwise_rollout_net_profit_per_unit",
    "liftwise_rollout_share",
    "liftwise_rollout_step",
    "liftwise_rollout_gate",
    "liftwise_rollout_status",
}


def metric_names(expression_text: str) -> set[str]:
    """The liftwise metrics an expression reads, histogram series by their family name."""
    names = set(re.findall(r"\bliftwise_[a-z0-9_]+", expression_text))
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in names}


def test_every_metric_the_rules_read_is_exported_by_the_service(tmp_path, serve_model):
    import datetime as dt

    from fastapi.testclient import TestClient

    from liftwise.evaluate.bundle import load_bundle
    from liftwise.serve.app import create_app
    from liftwise.serve.config import ServeConfig

    rules = yaml.safe_load(alert_rules())
    read = set().union(*(metric_names(r["expr"]) for g in rules["groups"] for r in g["rules"]))
    assert read - ROLLOUT_METRICS  # the service's own metrics are read too
    assert read & ROLLOUT_METRICS <= ROLLOUT_METRICS
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    config = ServeConfig(model_dir=serve_model, data_dir=tmp_path / "data", budget=1e6,
                         campaign_start=now - dt.timedelta(hours=1),
                         campaign_end=now + dt.timedelta(hours=1), log_requests=False)  # fmt: skip
    features = dict.fromkeys(load_bundle(serve_model).features, 0.0)
    with TestClient(create_app(config)) as client:
        ask = {"request_id": "r-1", "unit_id": 1, "features": features}
        assert client.post("/v1/decisions", json=ask).status_code == 200
        exported = client.get("/metrics").text
    families = set(re.findall(r"^# TYPE (liftwise_\w+) ", exported, flags=re.M))
    counters = {f"{name}_total" for name in families}  # counter families drop _total in TYPE
    missing = read - ROLLOUT_METRICS - families - counters
    assert not missing, f"the rules read metrics the service does not export: {missing}"
