"""Benchmark: gated rollouts inside `liftwise serve` -- rollback time, and the split's cost.

One world and one race (bench_serve.prepare), one ``liftwise serve --campaign bench``
(2 workers, SQLite exposure log, budget and rollout store); rollouts are started and
aborted by writing the rollout store, as ``liftwise rollout start`` / ``abort`` do. The
load is bench_serve's open-loop generator (a separate process; latency from each
request's due time) and its closed-loop batch sender.

(a) Rollback time. Under steady open-loop load (``--rollback-rate``, 300 req/s), a rollout
    whose candidate is a rehearsal candidate that fails a gate: ``broken`` (raises on a
    share of its predictions: the error gate) or ``slow`` (the latency gate), from
    liftwise.rollout.faults; ``abort`` instead serves a healthy candidate and writes a
    manual ``abort`` transition to the store. Per run (a new rollout name each time):
    start -> first candidate decision (the workers pick the rollout up and load the
    candidate), first candidate decision -> the gate-failing evaluation row (detection),
    and the failing evaluation (or the abort) -> the last candidate decision in the
    exposure log (max decided_at_us with variant candidate: from then on no worker serves
    the candidate). Failed requests are split into the candidate's own (a candidate unit,
    due before the switch + 1 s) and the others, which the switch must not cause; the
    server's own per-variant error counters are printed beside them. Goal <= 5 s.
(b) The split's cost. Single decisions at ``--rate`` (500 req/s) and batch throughput
    (batches of 100 and 1,000, closed loop), with no rollout and with an active A/A
    rollout (candidate = baseline = the same model directory, holdout 5%, share 50%),
    alternating on the same server in the same run; medians of ``--repeats`` rounds and
    the ratios. Goal: < 10% added p99, 0 errors.

Printed tables with medians; not a test (nothing asserts).

    .venv/bin/python benchmarks/bench_rollout.py [--units 8000] [--runs 5] [--fault broken]
        [--rollback-rate 300] [--rollback-seconds 16] [--rate 500] [--seconds 6]
        [--batch-seconds 4] [--repeats 3] [--batch-sizes 100 1000] [--skip-rollback]
        [--skip-split]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench_serve import (
    VENV_BIN,
    WORKERS,
    bench_batches,
    bench_server,
    free_port,
    prepare,
    run_load,
    start,
    stop,
    wait_ready,
)
from liftwise.evaluate.bundle import load_bundle, save_bundle
from liftwise.rollout import controller
from liftwise.rollout.controller import now_us
from liftwise.rollout.faults import rehearsal_bundle
from liftwise.rollout.plan import RolloutPlan, parse_plan
from liftwise.rollout.split import CANDIDATE_CODE, variant_codes
from liftwise.rollout.store import FINAL, RolloutStore, open_rollout_store

CAMPAIGN = "bench"
GOAL_ROLLBACK_S = 5.0
GOAL_ADDED_P99 = 0.10
SWITCH_SLACK_S = 1.0  # a candidate unit's request due this long after the switch is not its
ARGO = (
    "Argo Rollouts, documented (not measured): the background-analysis example of its "
    "Analysis & Progressive Delivery page measures the success rate 'at 5 minute "
    "intervals/samples' and fails the analysis after 'three such measurements' "
    "(interval: 5m, failureLimit: 3): minutes, roughly 10-15, from a fault to the abort."
)


# --------------------------------------------------------------------------- the service


@dataclass(frozen=True)
class Service:
    """The running server and where it keeps its state."""

    port: int
    exposures: Path  # the SQLite exposure log (table ``exposures``)
    store: RolloutStore
    single: dict  # bench_serve load specs
    batch: dict
    units: np.ndarray  # unit id of each request template, in template order


def start_service(root: Path, model_dir: Path, templates: list[str], max_batch: int) -> tuple[Service, subprocess.Popen]:  # fmt: skip
    data = root / "serve"
    data.mkdir(parents=True, exist_ok=True)
    exposures = data / "exposures.db"
    store_url = f"sqlite:///{(data / 'rollouts.db').resolve()}"
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "LIFTWISE_ROLLOUT_STORE": store_url}
    port = free_port()
    argv = [str(VENV_BIN / "liftwise"), "serve", "--model", str(model_dir), "--budget", "1e12",
            "--campaign", CAMPAIGN, "--data-dir", str(data), "--port", str(port),
            "--exposure-log", f"sqlite:///{exposures.resolve()}", "--workers", str(WORKERS),
            "--max-batch", str(max_batch)]  # fmt: skip
    process = start(argv, env, root / "liftwise.log")
    wait_ready(port, "/readyz", process)
    single = {"host": "127.0.0.1", "port": port, "path": "/v1/decisions", "templates": templates}
    batch = {**single, "path": "/v1/decisions:batch", "wrap": ['{"decisions":[', "]}", ","]}
    units = np.array([json.loads(t.replace("__RID__", "r"))["unit_id"] for t in templates])
    service = Service(port, exposures, open_rollout_store(store_url), single, batch, units)
    return service, process


def exposure_times(service: Service, rollout: str, variant: str) -> tuple[int, int | None, int | None]:  # fmt: skip
    """(count, first, last decided_at_us) of the rollout's exposures of ``variant``."""
    with sqlite3.connect(f"file:{service.exposures}?mode=ro", uri=True, timeout=30) as conn:
        row = conn.execute(
            "SELECT COUNT(*), MIN(decided_at_us), MAX(decided_at_us) FROM exposures "
            "WHERE rollout = ? AND variant = ?",
            (rollout, variant),
        ).fetchone()
    return int(row[0]), row[1], row[2]


def variant_mix(service: Service, rollout: str) -> dict[str, int]:
    with sqlite3.connect(f"file:{service.exposures}?mode=ro", uri=True, timeout=30) as conn:
        rows = conn.execute(
            "SELECT variant, COUNT(*) FROM exposures WHERE rollout = ? GROUP BY variant",
            (rollout,),
        ).fetchall()
    return {str(v): int(n) for v, n in rows}


def plan_for(name: str, candidate: Path, baseline: Path, share: float, evaluate_seconds: float) -> RolloutPlan:  # fmt: skip
    """A two-step plan whose first step holds (minimums far away) unless a gate fails."""
    first = {"name": "canary", "share": share, "min_seconds": 3600, "min_decisions": 200,
             "min_outcomes": 0, "max_wait_seconds": 7200, "gates": ["errors", "latency", "srm"]}  # fmt: skip
    return parse_plan(
        {
            "name": name,
            "campaign": CAMPAIGN,
            "candidate": {"model_dir": str(candidate)},
            "baseline": {"model_dir": str(baseline)},
            "holdout": 0.05,
            "steps": [first, {"name": "full", "share": 1.0, "business": "none"}],
            "evaluate_seconds": evaluate_seconds,
        },
        source="bench plan",
    )


def end(store: RolloutStore, name: str, note: str) -> None:
    """Abort the rollout as ``liftwise rollout abort`` does, unless it is over already."""
    state = store.get(name)
    if state is not None and state.status not in FINAL:
        controller.abort(store, name, by="bench_rollout", now_us=now_us(), note=note)


# --------------------------------------------------------------------------- (a) rollback


@dataclass(frozen=True)
class RollbackRun:
    name: str
    pickup_s: float | None  # start row -> first candidate decision
    detect_s: float | None  # first candidate decision -> failing evaluation (or abort row)
    rollback_s: float | None  # failing evaluation (or abort) -> last candidate decision
    gate: str  # what failed
    candidate_decisions: int
    own_errors: int  # failed requests of candidate units while the candidate served
    other_errors: int  # every other failed request
    server_errors: dict[str, int]  # the service's error + time-out counters per variant
    requests: int


def rehearsal_candidate(model_dir: Path, out: Path, fault: str, seed: int) -> Path:
    """A copy of the model with an injected fault (liftwise.rollout.faults), or the model
    itself for ``--fault abort``."""
    if fault == "abort":
        return model_dir
    save_bundle(rehearsal_bundle(load_bundle(model_dir), fault, error_rate=0.05, seed=seed), out)
    return out


def failing_row_us(store: RolloutStore, name: str, fault: str) -> tuple[int | None, str]:
    """Time of the gate-failing evaluation (or of the manual abort) and its reason."""
    for entry in store.history(name):
        failed = entry.kind == "evaluation" and entry.verdict == "fail"
        if failed if fault != "abort" else entry.action == "abort":
            return entry.at_us, (entry.reason or entry.action)
    return None, "no failing evaluation"


def one_rollback(service: Service, candidate: Path, baseline: Path, run: int, args: argparse.Namespace, workdir: Path) -> RollbackRun:  # fmt: skip
    name = f"bench-rollback-{run}-{time.time_ns()}"
    spec = {**service.single, "mode": "open", "rate": args.rollback_rate,
            "seconds": args.rollback_seconds, "tag": name, "report_failed": True}  # fmt: skip
    box: dict[str, dict] = {}
    loader = threading.Thread(target=lambda: box.update(load=run_load(spec, workdir)))
    loader.start()
    time.sleep(1.5)  # steady load first
    plan = plan_for(name, candidate, baseline, args.share, args.evaluate_seconds)
    started = service.store.create(plan, now_us(), by="bench_rollout").step_started_us
    deadline = time.monotonic() + args.rollback_seconds - 3
    if args.fault == "abort":
        time.sleep(args.abort_after)
        end(service.store, name, "benchmark: the failing event")
    while time.monotonic() < deadline:  # wait for the controller's rollback
        state = service.store.get(name)
        if state is not None and state.status == "aborted":
            break
        time.sleep(0.1)
    loader.join()
    time.sleep(1.0)  # the last exposures commit
    end(service.store, name, "benchmark: run over")  # a rollout that never failed ends here
    load = box["load"]
    count, first, last = exposure_times(service, name, "candidate")
    failed_us, gate = failing_row_us(service.store, name, args.fault)
    # failed requests: a candidate unit's, due before the switch (+ slack), is the candidate's
    failed = np.asarray(load["failed"], dtype=np.int64)
    units = service.units[failed % len(service.units)]
    candidate_unit = variant_codes(plan.effective_salt, units, plan.holdout, args.share) == CANDIDATE_CODE  # fmt: skip
    due = load["started_at"] + failed / args.rollback_rate
    switch = (failed_us / 1e6 if failed_us is not None else np.inf) + SWITCH_SLACK_S
    own = candidate_unit & (due <= switch)
    counters = service.store.counters(name, 0)
    server = {v: c.errors + c.timeouts for v, c in counters.items()}

    def seconds(a: int | None, b: int | None) -> float | None:
        return None if a is None or b is None else (b - a) / 1e6

    return RollbackRun(name, seconds(started, first), seconds(first, failed_us),
                       seconds(failed_us, last), gate, count, int(own.sum()),
                       int((~own).sum()), server, int(load["requests"]))  # fmt: skip


def bench_rollback(service: Service, model_dir: Path, args: argparse.Namespace, root: Path) -> list[RollbackRun]:  # fmt: skip
    print(f"\n(a) rollback: {args.runs} runs, candidate '{args.fault}', share {args.share:g}, "
          f"{args.rollback_rate} req/s open loop, evaluate every {args.evaluate_seconds:g} s", flush=True)  # fmt: skip
    runs = []
    for run in range(args.runs):
        candidate = rehearsal_candidate(model_dir, root / f"candidate-{run}", args.fault, seed=run)
        result = one_rollback(service, candidate, model_dir, run, args, root)
        runs.append(result)
        print(f"  run {run}: pickup {_s(result.pickup_s)}  detect {_s(result.detect_s)}  "
              f"rollback {_s(result.rollback_s)}  errors own {result.own_errors} other "
              f"{result.other_errors}  ({result.gate[:70]})", flush=True)  # fmt: skip
    return runs


def _s(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.2f} s"


def report_rollback(runs: list[RollbackRun], args: argparse.Namespace) -> None:
    failing = "abort transition" if args.fault == "abort" else "gate-failing evaluation"
    print(f"\n== (a) rollback time ({len(runs)} runs; candidate '{args.fault}'; "
          f"{args.rollback_rate} req/s; {WORKERS} workers; evaluate_seconds {args.evaluate_seconds:g})")  # fmt: skip
    print(f"{'run':>4s} {'pickup s':>9s} {'detect s':>9s} {'rollback s':>11s} {'cand. dec.':>10s} "
          f"{'own err':>8s} {'other err':>9s}  server errors per variant; what failed")  # fmt: skip
    for i, r in enumerate(runs):
        server = ", ".join(f"{v} {n}" for v, n in sorted(r.server_errors.items()))
        print(f"{i:>4d} {_s(r.pickup_s):>9s} {_s(r.detect_s):>9s} {_s(r.rollback_s):>11s} "
              f"{r.candidate_decisions:>10,} {r.own_errors:>8,} {r.other_errors:>9,}  "
              f"{server or '-'}; {r.gate[:60]}")  # fmt: skip
    for label, values in (
        ("start -> first candidate decision", [r.pickup_s for r in runs]),
        ("first candidate decision -> " + failing, [r.detect_s for r in runs]),
        (failing + " -> last candidate decision", [r.rollback_s for r in runs]),
    ):
        seen = [v for v in values if v is not None]
        if seen:
            print(f"{label:58s} median {np.median(seen):6.2f} s  worst {max(seen):6.2f} s  "
                  f"({len(seen)}/{len(runs)} runs)")  # fmt: skip
        else:
            print(f"{label:58s} n/a (no run reached it)")
    done = [r.rollback_s for r in runs if r.rollback_s is not None]
    worst = max(done) if done else None
    met = worst is not None and worst <= GOAL_ROLLBACK_S and len(done) == len(runs)
    other = sum(r.other_errors for r in runs)
    print(f"goal: zero candidate traffic <= {GOAL_ROLLBACK_S:g} s after the {failing}: worst "
          f"{_s(worst).strip()} -> {'met' if met else 'MISSED'}")  # fmt: skip
    print(f"requests failed outside the candidate's own: {other} of "
          f"{sum(r.requests for r in runs):,} -> {'met' if other == 0 else 'MISSED'}")  # fmt: skip
    print(f"peer: {ARGO}")


# --------------------------------------------------------------------------- (b) split cost


def wait_serving(service: Service, name: str, workdir: Path) -> None:
    """Light load until the rollout's candidate shows in the exposure log."""
    for attempt in range(15):
        run_load({**service.single, "mode": "open", "rate": 100, "seconds": 1,
                  "tag": f"{name}-wait-{attempt}"}, workdir)  # fmt: skip
        if exposure_times(service, name, "candidate")[0] > 0:
            return
    raise RuntimeError(f"rollout {name} never served its candidate")


def one_phase(service: Service, label: str, args: argparse.Namespace, workdir: Path) -> dict:
    single = argparse.Namespace(repeats=1, seconds=args.seconds)
    rows = bench_server(label, service.single, [args.rate], single, workdir)
    batches = argparse.Namespace(repeats=1, seconds=args.batch_seconds, concurrency=args.concurrency)  # fmt: skip
    sizes = bench_batches(label, service.batch, args.batch_sizes, batches, workdir)
    return {**rows[args.rate], **{f"batch{s}": v for s, v in sizes.items()}}


def bench_split(service: Service, model_dir: Path, args: argparse.Namespace, root: Path) -> dict:
    print(f"\n(b) the split's cost: {args.repeats} rounds of (no rollout, A/A rollout), "
          f"{args.rate} req/s x {args.seconds:g} s, batches x {args.batch_seconds:g} s", flush=True)  # fmt: skip
    off: list[dict] = []
    on: list[dict] = []
    mixes: list[dict[str, int]] = []
    for rep in range(args.repeats):
        off.append(one_phase(service, "none", args, root))
        name = f"bench-aa-{rep}-{time.time_ns()}"
        plan = plan_for(name, model_dir, model_dir, 0.5, args.evaluate_seconds)
        service.store.create(plan, now_us(), by="bench_rollout")
        wait_serving(service, name, root)
        on.append(one_phase(service, "A/A", args, root))
        state = service.store.get(name)
        print(f"  rollout {name}: {state.status if state else '?'} during the phase", flush=True)
        mixes.append(variant_mix(service, name))
        end(service.store, name, "benchmark: phase over")
        time.sleep(1.5)  # every worker polls every 0.5 s
    return {"off": off, "on": on, "mixes": mixes}


def report_split(result: dict, args: argparse.Namespace) -> None:
    off, on = result["off"], result["on"]
    keys = ["p50", "p95", "p99", "achieved"] + [f"batch{s}" for s in args.batch_sizes]
    med = {label: {k: float(np.median([r[k] for r in runs])) for k in keys}
           for label, runs in (("no rollout", off), ("A/A rollout", on))}  # fmt: skip
    errors = {"no rollout": sum(r["errors"] for r in off), "A/A rollout": sum(r["errors"] for r in on)}  # fmt: skip
    print(f"\n== (b) the split's cost (median of {args.repeats} rounds; single decisions at "
          f"{args.rate} req/s x {args.seconds:g} s, open loop; batches closed loop, "
          f"{args.concurrency} connections)")  # fmt: skip
    head = "".join(f"{'batch ' + format(s, ','):>14s}" for s in args.batch_sizes)
    print(f"{'':12s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} {'errors':>7s} {'achieved/s':>11s}{head}")  # fmt: skip
    for label, m in med.items():
        cells = "".join(f"{m[f'batch{s}']:>12,.0f}/s" for s in args.batch_sizes)
        print(f"{label:12s} {m['p50'] * 1e3:8.2f} {m['p95'] * 1e3:8.2f} {m['p99'] * 1e3:8.2f} "
              f"{errors[label]:>7} {m['achieved']:>11,.0f}{cells}")  # fmt: skip
    a, b = med["no rollout"], med["A/A rollout"]
    ratios = "".join(f"{b[f'batch{s}'] / a[f'batch{s}']:>13.2f}x" for s in args.batch_sizes)
    print(f"{'ratio':12s} {b['p50'] / a['p50']:7.2f}x {b['p95'] / a['p95']:7.2f}x "
          f"{b['p99'] / a['p99']:7.2f}x {'':7s} {'':11s}{ratios}")  # fmt: skip
    for i, mix in enumerate(result["mixes"]):
        total = sum(mix.values()) or 1
        shares = ", ".join(f"{v} {n / total:.1%}" for v, n in sorted(mix.items()))
        print(f"  round {i} A/A rollout exposures: {total:,} ({shares})")
    added = b["p99"] / a["p99"] - 1
    met = added < GOAL_ADDED_P99 and errors["A/A rollout"] == 0
    print(f"goal: < {GOAL_ADDED_P99:.0%} added p99 at {args.rate} req/s, 0 errors: "
          f"{added:+.1%}, {errors['A/A rollout']} errors -> {'met' if met else 'MISSED'}")  # fmt: skip


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--units", type=int, default=8_000, help="world size")
    parser.add_argument("--runs", type=int, default=5, help="rollback runs")
    parser.add_argument("--fault", choices=["broken", "slow", "abort"], default="broken")
    parser.add_argument("--abort-after", type=float, default=3.0, help="--fault abort: seconds")
    parser.add_argument("--share", type=float, default=0.1, help="rollback runs' canary share")
    parser.add_argument("--rollback-rate", type=int, default=300)
    parser.add_argument("--rollback-seconds", type=float, default=16.0)
    parser.add_argument("--evaluate-seconds", type=float, default=1.0)
    parser.add_argument("--rate", type=int, default=500, help="split cost: single decisions/s")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--batch-seconds", type=float, default=4.0)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--concurrency", type=int, default=4, help="batch connections")
    parser.add_argument("--repeats", type=int, default=3, help="split cost rounds")
    parser.add_argument("--skip-rollback", action="store_true")
    parser.add_argument("--skip-split", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    root = Path(tempfile.mkdtemp(prefix="liftwise-bench-rollout-"))
    process = None
    try:
        print(f"setup: world of {args.units:,} units, race ({root})", flush=True)
        model_dir, templates, _, _, _ = prepare(root, args.units)
        service, process = start_service(root, model_dir, templates, max(args.batch_sizes))
        rollback = [] if args.skip_rollback else bench_rollback(service, model_dir, args, root)
        split = None if args.skip_split else bench_split(service, model_dir, args, root)
        if rollback:
            report_rollback(rollback, args)
        if split is not None:
            report_split(split, args)
    finally:
        if process is not None:
            stop(process)
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
