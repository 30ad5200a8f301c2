"""``GET /dashboard``: the live rollout page, served by every worker.

The page is one page of the report shell (``liftwise.report``) whose regions
(:class:`~liftwise.report.Live` blocks) its script (``dashboard.js``, package data) fills
from the service's own JSON routes every 2 s: ``/v1/rollout`` (the rollout's state,
per-variant totals, counters, profit, last evaluation and history), ``/v1/budget`` and
``/v1/model``. It draws inline SVG itself and loads nothing from anywhere else, so it
works where nothing can be downloaded. Plain GET routes never reach the decision fast
path (:class:`~liftwise.serve.app.FastPath` answers POSTs to the decision routes only).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from liftwise.report import Live, Section, render_page

SCRIPT_FILE = Path(__file__).resolve().parent / "dashboard.js"
SECTIONS = (
    ("Budget", "budget", "Waiting for /v1/budget."),
    ("Model", "model", "Waiting for /v1/model."),
    ("Variants: spend, ROI, budget saved", "variants", "Waiting for /v1/rollout."),
    ("Net profit uplift", "uplift", "Waiting for /v1/rollout."),
    ("Gates", "gates", "Waiting for /v1/rollout."),
    ("History", "history", "Waiting for /v1/rollout."),
)


@cache
def _script() -> str:
    return SCRIPT_FILE.read_text(encoding="utf-8")


def dashboard_page() -> str:
    """The page: the shell with one live region per section and the polling script."""
    return render_page(
        "Rollout dashboard",
        [Section(title, [Live(region, waiting)]) for title, region, waiting in SECTIONS],
        intro=[Live("status", "Loading: this page needs JavaScript.")],
        note="Refreshes every 2 s from /v1/rollout, /v1/budget and /v1/model of this service.",
        script=_script(),
    )


def dashboard_router() -> APIRouter:
    """The route ``create_app`` includes; left out of the OpenAPI document (not an API)."""
    router = APIRouter()

    @router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(dashboard_page())

    return router
