"""The live dashboard (GET /dashboard) in a real headless Chromium (Debian's ``chromium``,
installed here when missing) against a real service on a socket: the page's script polls
/v1/rollout, /v1/budget and /v1/model, and the DOM Chromium dumps after 5 s of virtual
time must show what those routes return; the screenshot must not be blank."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.routing import APIRoute
from PIL import Image

from conftest import debian_tool
from liftwise.evaluate.bundle import load_bundle
from liftwise.features import experiment_frame
from liftwise.report.table import format_value
from liftwise.serve.app import create_app
from liftwise.serve.config import ServeConfig
from liftwise.serve.dashboard import dashboard_page
from liftwise.serve.server import free_port
from liftwise.simulate import World

BUDGET = 2_000_000.0


@pytest.fixture(scope="module")
def chromium() -> str:
    return debian_tool("chromium", "chromium")


@pytest.fixture(scope="module")
def requests(serve_world: World, serve_model: Path) -> list[dict[str, Any]]:
    """Decision requests for the world's first 300 units, features inline."""
    features = list(load_bundle(serve_model).features)
    frame = experiment_frame(serve_world).data.head(300)
    X = frame[features].to_numpy(dtype=np.float64)
    return [
        {"request_id": uuid.uuid4().hex, "unit_id": int(unit),
         "features": dict(zip(features, map(float, row), strict=True))}
        for unit, row in zip(frame["unit_id"], X, strict=True)
    ]  # fmt: skip


@contextlib.contextmanager
def listening(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on a free port in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def browse(chromium: str, url: str, out: Path) -> tuple[str, Path]:
    """The DOM after 5 s of virtual time (the script has polled twice or more), and a
    screenshot of the page."""
    common = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--no-first-run", "--hide-scrollbars", "--window-size=1280,2200",
              f"--user-data-dir={out / 'profile'}", "--virtual-time-budget=5000"]  # fmt: skip
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0 and "</html>" in dom.stdout, dom.stderr[-2000:]
    png = out / "dashboard.png"
    shot = subprocess.run([*common, f"--screenshot={png}", url], capture_output=True, timeout=180)
    assert shot.returncode == 0 and png.is_file(), shot.stderr[-2000:]
    return dom.stdout, png


class _Regions(HTMLParser):
    """The text of every element with an id: its descendants' text nodes joined by one
    space (so table cells read "latency fail ..."), spaces collapsed."""

    VOID = frozenset({"br", "img", "meta", "link", "input", "hr", "circle", "line", "rect"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str | None] = []
        self.texts: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.VOID:
            return
        self.stack.append(dict(attrs).get("id"))
        if self.stack[-1]:
            self.texts[self.stack[-1]] = []

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        for region in filter(None, self.stack):
            self.texts[region].append(data)


def regions(dom: str) -> dict[str, str]:
    parser = _Regions()
    parser.feed(dom)
    # no space before punctuation that followed an element ("running, step 2")
    return {
        k: re.sub(r" (?=[,;:)]|\.(?!\.))", "", " ".join(" ".join(v).split()))
        for k, v in parser.texts.items()
    }


def non_blank(png: Path) -> set[tuple[int, int, int]]:
    """The screenshot's colours: a blank page has one or two."""
    image = Image.open(png).convert("RGB")
    assert image.size[0] >= 1000
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 20) or []}
    assert len(colours) > 20, "the screenshot is blank"
    return colours


def money(value: float) -> str:
    return format_value(value, "money")


# ---------------------------------------------------------------------- the page itself


def test_the_page_is_a_shell_page_with_its_regions_and_script(shell_page):
    page = dashboard_page()
    shell_page(page)
    for region in ("status", "budget", "model", "variants", "uplift", "gates", "history"):
        assert f'<div class="live" id="{region}">' in page
    assert page.count("<script>") == 1 and "/v1/rollout" in page
    # nothing to download: the one URL is SVG's namespace name, never fetched
    assert set(re.findall(r"https?://[^\s\"']+", page)) == {"http://www.w3.org/2000/svg"}


# ---------------------------------------------------------------------- in Chromium


def test_without_a_rollout_the_dashboard_shows_the_budget_and_the_model(
    tmp_path, chromium, serve_model, requests
):
    config = ServeConfig(model_dir=serve_model, data_dir=tmp_path / "data", budget=BUDGET,
                         campaign="spring", log_requests=False)  # fmt: skip
    with listening(create_app(config)) as url, httpx.Client(base_url=url) as client:
        assert client.post("/v1/decisions:batch", json={"decisions": requests}).status_code == 200
        budget, model = client.get("/v1/budget").json(), client.get("/v1/model").json()
        dom, png = browse(chromium, url + "/dashboard", tmp_path)
    shown = regions(dom)
    meta = load_bundle(serve_model).metadata
    assert model["profit_at_k"] == meta["profit_at_k"]  # the race's figure, from the bundle
    assert [model["profit_at_k_low"], model["profit_at_k_high"]] == meta["profit_at_k_ci"]
    assert "No active rollout for campaign spring" in shown["rollout-state"]
    assert f"serves {model['name']} v{model['version']}" in shown["rollout-state"]
    assert budget["spent"] > 0
    assert f"Budget {money(BUDGET)}" in shown["budget"]
    assert money(budget["spent"]) in shown["budget"]
    assert money(meta["profit_at_k"]) in shown["model"]
    assert (
        money(meta["profit_at_k_ci"][0]) + " .. " + money(meta["profit_at_k_ci"][1])
        in shown["model"]
    )
    assert "No decisions on this step yet" in shown["variants"]
    assert "Not evaluated yet" in shown["gates"]
    non_blank(png)
    (Path(tmp_path) / "regions.json").write_text(json.dumps(shown, indent=1))


# ---------------------------------------------------------------------- with a rollout

PLAN = {
    "name": "fintech-v2",
    "campaign": "spring",
    "candidate": {"model_dir": "candidate"},
    "baseline": {"champion": "liftwise-fintech"},
    "holdout": 0.05,
    "steps": [
        {"name": "canary", "share": 0.05, "min_decisions": 100, "min_outcomes": 50},
        {"name": "ramp", "share": 0.5, "min_decisions": 100, "min_outcomes": 50},
        {"name": "full", "share": 1.0},
    ],
}


def rollout_status_fixture() -> dict[str, Any]:
    """A RolloutStatus as GET /v1/rollout gives it (the issue-12 spec), its evaluation
    made by the real gates on seeded measurements: the latency gate fails on a slow
    candidate, errors and SRM pass, the business gate compares net profit per unit."""
    from liftwise.rollout.gates import StepMeasurements, evaluate_step
    from liftwise.rollout.measure import ProfitMoments, VariantCounters
    from liftwise.rollout.plan import parse_plan

    plan = parse_plan(PLAN)
    rng = np.random.default_rng(7)
    requests = {"holdout": 60, "baseline": 570, "candidate": 570}
    slow_ms = {"holdout": 2.0, "baseline": 2.0, "candidate": 80.0}
    counters, profit, totals = {}, {}, {}
    for variant, n in requests.items():
        counts = VariantCounters()
        for _ in range(n):
            slow = variant == "candidate" and rng.random() < 0.05
            counts.record(slow_ms[variant] if slow or variant != "candidate" else 2.0, error=False,
                          treated=variant != "holdout" and rng.random() < 0.4)  # fmt: skip
        counters[variant] = counts
        net = rng.normal(
            {"holdout": 0.0, "baseline": 40.0, "candidate": 55.0}[variant], 30.0, n // 2
        )
        profit[variant] = ProfitMoments(len(net), float(net.sum()), float((net**2).sum()))
        spend = counts.treated * {"holdout": 0.0, "baseline": 25.0, "candidate": 21.0}[variant]
        totals[variant] = {
            "decisions": counts.decisions, "treated": counts.treated, "spend": spend,
            "expected_profit": 0.0, "outcomes": len(net), "revenue": float(net.sum()) + spend,
            "net_profit": float(net.sum()),
        }  # fmt: skip
    evaluation = evaluate_step(plan, 1, 0.5, StepMeasurements(900.0, counters, profit))
    now_us = 1_764_880_000_000_000
    return {
        "state": {
            "name": plan.name,
            "campaign": plan.campaign,
            "plan": plan.model_dump(mode="json"),
            "status": "running",
            "step": 1,
            "share": 0.5,
            "step_started_us": now_us - 900_000_000,
            "updated_us": now_us - 900_000_000,
            "version": 3,
            "reason": None,
        },
        "totals": totals,
        "counters": {
            v: {
                "requests": c.requests,
                "error_rate": (c.errors + c.timeouts) / c.requests,
                "p99_ms": c.quantile_ms(0.99),
            }
            for v, c in counters.items()
        },
        "profit": {
            v: {"n": m.n, "total": m.total, "total_squares": m.total_squares}
            for v, m in profit.items()
        },
        "evaluation": evaluation.model_dump(mode="json"),
        "history": [
            {
                "id": 1,
                "rollout": plan.name,
                "at_us": now_us - 1_800_000_000,
                "kind": "transition",
                "action": "start",
                "status": "running",
                "step": 0,
                "share": 0.05,
                "verdict": None,
                "reason": "started",
                "evidence": "{}",
            },
            {
                "id": 2,
                "rollout": plan.name,
                "at_us": now_us - 900_000_000,
                "kind": "transition",
                "action": "advance",
                "status": "running",
                "step": 1,
                "share": 0.5,
                "verdict": "pass",
                "reason": "canary passed",
                "evidence": "{}",
            },
        ],
    }


def test_with_a_rollout_the_dashboard_shows_variants_spend_uplift_and_gates(
    tmp_path, chromium, serve_model
):
    config = ServeConfig(model_dir=serve_model, data_dir=tmp_path / "data", budget=BUDGET,
                         campaign="spring", log_requests=False)  # fmt: skip
    app = create_app(config)
    fixture = rollout_status_fixture()
    # until the service's own route serves it (first in line, so it answers before any other)
    app.router.routes.insert(0, APIRoute("/v1/rollout", lambda: fixture))
    with listening(app) as url, httpx.Client(base_url=url) as client:
        status = client.get("/v1/rollout").json()
        budget = client.get("/v1/budget").json()
        dom, png = browse(chromium, url + "/dashboard", tmp_path)
    shown = regions(dom)
    (Path(tmp_path) / "regions.json").write_text(json.dumps(shown, indent=1))
    state, evaluation = status["state"], status["evaluation"]
    assert (
        f"Rollout {state['name']} of campaign spring: running, step 2 of 3 (ramp)"
        in shown["rollout-state"]
    )
    for variant, totals in status["totals"].items():
        counters = status["counters"][variant]
        row = shown[f"variant-{variant}"]
        assert row.startswith(f"{variant} {totals['decisions']:,} {totals['treated']:,} ")
        assert f" {money(totals['spend'])} " in row and f" {money(totals['net_profit'])} " in row
        assert row.endswith(f" {counters['requests']:,} 0% {counters['p99_ms']:g}")
    base, cand = status["totals"]["baseline"], status["totals"]["candidate"]
    roi = format_value(cand["net_profit"] / cand["spend"], "percent")
    assert f" {roi} " in shown["variant-candidate"]
    saved = (base["spend"] / base["decisions"] - cand["spend"] / cand["decisions"]) * cand[
        "decisions"
    ]
    assert f"Budget saved against the current policy: {money(saved)}" in shown["budget-saved"]
    assert evaluation["verdict"] == "fail"  # the slow candidate
    assert shown["evaluation"].startswith(f"Step 2 (ramp): fail — {evaluation['reason']}")
    for gate in evaluation["gates"]:
        assert shown[f"gate-{gate['gate']}"] == f"{gate['gate']} {gate['verdict']} {gate['reason']}"
    assert shown["gate-latency"].startswith("latency fail")
    business = next(g for g in evaluation["gates"] if g["gate"] == "business")["evidence"]
    for comparison in business["comparisons"]:
        interval = f"{money(comparison['ci_low'])} .. {money(comparison['ci_high'])}"
        assert shown[f"uplift-vs-{comparison['against']}"].startswith(
            f"candidate vs {comparison['against']} {money(comparison['estimate'])} {interval}"
        )
    assert "canary passed" in shown["history"]
    assert money(budget["budget"]) in shown["budget"]
    colours = non_blank(png)
    assert (0x1B, 0x7F, 0x3B) in colours  # the candidate's colour: the charts were drawn
    assert (0xB0, 0x00, 0x20) in colours  # a failed verdict in red
