"""``liftwise serve``: the real-time decision service (FastAPI on uvicorn, several workers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from liftwise.cli.app import app, console


@app.command("serve")
def serve_command(
    model: Annotated[
        Path | None, typer.Option(help="Serve this model directory (from `liftwise train`).")
    ] = None,
    model_name: Annotated[
        str | None,
        typer.Option(help="Serve this registered model's champion, swapping when it moves."),
    ] = None,
    budget: Annotated[
        float | None, typer.Option(help="Campaign budget (overrides the guardrails file's).")
    ] = None,
    guardrails: Annotated[
        Path | None,
        typer.Option(help="Decision YAML: budget, costs, capacity, eligibility, caps, soft rule."),
    ] = None,
    campaign: Annotated[
        str, typer.Option(help="Budget ledger name, shared by every worker of the campaign.")
    ] = "default",
    campaign_start: Annotated[
        str | None, typer.Option(help="Pacing window start, ISO time (no zone = UTC).")
    ] = None,
    campaign_end: Annotated[str | None, typer.Option(help="Pacing window end, ISO time.")] = None,
    pacing: Annotated[
        str, typer.Option(help="linear: spend allowed grows evenly over the window; none.")
    ] = "linear",
    bid_price: Annotated[
        float,
        typer.Option(help="Profit required per unit of cost for an arm to be offered (>= 0)."),
    ] = 0.0,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 2,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on (0: a free one).")
    ] = 8000,
    data_dir: Annotated[
        Path | None, typer.Option(help="Data directory (default: LIFTWISE_DATA_DIR or ./data).")
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow tracking/registry URI (for --model-name).")
    ] = None,
    exposure_log: Annotated[
        str | None,
        typer.Option(help="sqlite:///PATH or postgresql://... (default: SQLite in the data dir)."),
    ] = None,
    exposure_table: Annotated[str, typer.Option(help="Exposure log table.")] = "exposures",
    budget_store: Annotated[
        str | None, typer.Option(help="sqlite (default) or redis: where reservations live.")
    ] = None,
    redis_url: Annotated[
        str | None, typer.Option(help="Redis URL for --budget-store redis.")
    ] = None,
    feature_repo: Annotated[
        Path | None, typer.Option(help="Feast repo (liftwise features build) for online features.")
    ] = None,
    max_batch: Annotated[int, typer.Option(help="Most units per batch request.")] = 1000,
    poll_seconds: Annotated[
        float, typer.Option(help="How often the registry's champion is checked.")
    ] = 10.0,
    sqlite_synchronous: Annotated[
        str, typer.Option(help="NORMAL survives a killed process; FULL also a power cut.")
    ] = "NORMAL",
    reservation_grace_seconds: Annotated[
        float,
        typer.Option(
            help="Redis budget or PostgreSQL log: a reservation this old with no logged decision "
            "(its worker died) is released at start-up."
        ),
    ] = 60.0,
    log_requests: Annotated[
        bool, typer.Option(help="One JSON log line per request on stderr.")
    ] = True,
) -> None:
    """Serve decisions over HTTP: POST /v1/decisions and /v1/decisions:batch; OpenAPI at /docs."""
    from liftwise.cli.app import stdout
    from liftwise.serve.config import build_config
    from liftwise.serve.server import check_config, free_port, run_server

    config = build_config(
        model_dir=model,
        model_name=model_name,
        budget=budget,
        decision_config=guardrails,
        campaign=campaign,
        campaign_start=campaign_start,
        campaign_end=campaign_end,
        pacing=pacing,
        bid_price=bid_price,
        data_dir=data_dir,
        tracking_uri=tracking_uri,
        exposure_log=exposure_log,
        exposure_table=exposure_table,
        budget_store=budget_store,
        redis_url=redis_url,
        feature_repo=feature_repo,
        max_batch=max_batch,
        poll_seconds=poll_seconds,
        sqlite_synchronous=sqlite_synchronous.upper(),
        reservation_grace_seconds=reservation_grace_seconds,
        log_requests=log_requests,
    )
    serving = check_config(config)
    port = port or free_port(host)
    stdout.print(f"serving {serving} on http://{host}:{port} ({workers} worker(s)); docs at /docs")
    console.print("stop with Ctrl-C")
    run_server(config, host=host, port=port, workers=workers)
