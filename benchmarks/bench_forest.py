"""Benchmark: liftwise's UpliftRandomForest against causalml's UpliftRandomForestClassifier.

Same synthetic data (binary outcome, one treatment arm, 20 features), same held-out split,
same number of trees, depth, features per split, leaf sizes and split criterion (KL). Each
model fits in a fresh subprocess, so its peak RSS (``ru_maxrss``) is its own. The child
generates the data itself (identically seeded); the parent scores the held-out
predictions with the Qini coefficient and a Poisson-bootstrap 95% half-width, paired
across models for the difference. Prints a table; not a test.

    .venv/bin/python benchmarks/bench_forest.py [--sizes 100000 1000000] [--trees 10]
        [--depth 6] [--max-features 10] [--features 20] [--repeats 1]
        [--models causalml liftwise liftwise-2t]

Columns: fit / predict wall seconds (median over repeats), fit CPU seconds (user + sys of
the fit: robust to a busy machine), peak RSS of the process, its increase over the RSS
just before ``fit`` (data already in memory), Qini ± half-width, and speedup / memory
ratio against causalml on the same size: "mem ratio" of peak RSS, "fit mem ratio" of the
increase during fit. liftwise's one-off numba cache load happens in a
warm-up fit on 2,000 rows before the timed fit (reported below the table).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

N_FEATURES = 20
TEST_ROWS = 100_000
SEED = 20240601
HERE = Path(__file__).resolve().parent


def make_data(
    n: int, p: int = N_FEATURES, seed: int = SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``n`` rows: X (n, p) float64, treatment 0/1, binary y, true effect tau.

    The effect depends on x0 (step), x1 (smooth) and x2 (tail); the baseline on x3, x4.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    t = rng.integers(0, 2, n)
    tau = 0.02 + 0.06 * (X[:, 0] > 0) + 0.03 * np.tanh(X[:, 1]) - 0.03 * (X[:, 2] > 1.0)
    base = 1.0 / (1.0 + np.exp(-(-1.0 + 0.5 * X[:, 3] + 0.3 * X[:, 4])))
    p = np.clip(base + t * tau, 0.0, 1.0)
    y = (rng.random(n) < p).astype(np.float64)
    return X, t, y, tau


CHILD = textwrap.dedent(
    """
    import json, os, resource, sys, time
    import numpy as np
    sys.path.insert(0, sys.argv[1])
    from bench_forest import make_data
    model, n, n_test, trees, depth, mtry, p, out = sys.argv[2], *map(int, sys.argv[3:9]), sys.argv[9]

    def rss_mb():
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    X, t, y, _ = make_data(n + n_test, p)
    X_train, t_train, y_train = X[:n], t[:n], y[:n]
    X_test = X[n:]
    warmup = 0.0
    if model == "causalml":
        import warnings
        warnings.simplefilter("ignore")
        from causalml.inference.tree import UpliftRandomForestClassifier
        labels = np.where(t_train == 1, "treatment", "control")
        y_int = y_train.astype(np.int64)
        est = UpliftRandomForestClassifier(
            control_name="control", n_estimators=trees, max_depth=depth, max_features=mtry,
            min_samples_leaf=100, min_samples_treatment=10, evaluationFunction="KL",
            random_state=0, n_jobs=1,
        )
        fit = lambda: est.fit(X_train, treatment=labels, y=y_int)
        predict = lambda: est.predict(X_test)[:, 0]
    else:
        from liftwise.learn.forest import UpliftRandomForest
        n_jobs = 2 if model == "liftwise-2t" else 1
        make = lambda k: UpliftRandomForest(
            n_estimators=k, max_depth=depth, max_features=mtry, min_samples_leaf=100,
            min_samples_treatment=10, criterion="kl", random_state=0, n_jobs=n_jobs,
        )
        start = time.perf_counter()
        make(2).fit(X_train[:2000], t_train[:2000], y_train[:2000]).predict(X_test[:10])
        warmup = time.perf_counter() - start
        est = make(trees)
        fit = lambda: est.fit(X_train, t_train, y_train)
        predict = lambda: est.predict(X_test)[:, 0]
    before = rss_mb()
    c0, start = cpu(), time.perf_counter()
    fit()
    fit_s, fit_cpu = time.perf_counter() - start, cpu() - c0
    start = time.perf_counter()
    score = predict()
    predict_s = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    np.save(out, np.asarray(score, dtype=np.float64))
    print(json.dumps({"fit_s": fit_s, "fit_cpu_s": fit_cpu, "predict_s": predict_s,
                      "peak_mb": peak, "before_fit_mb": before, "warmup_s": warmup}))
    """
)


def run_child(model: str, n: int, args: argparse.Namespace, out: Path) -> dict | None:
    cmd = [
        sys.executable,
        "-c",
        CHILD,
        str(HERE),
        model,
        str(n),
        str(args.test_rows),
        str(args.trees),
        str(args.depth),
        str(args.max_features),
        str(args.features),
        str(out),
    ]
    try:
        done = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print(f"  {model} at {n:,} rows: no result within {args.timeout} s", file=sys.stderr)
        return None
    except subprocess.CalledProcessError as err:
        print(f"  {model} at {n:,} rows failed:\n{err.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def qini_curve_area(y: np.ndarray, treated: np.ndarray, weight: np.ndarray) -> float:
    """Qini coefficient of rows already sorted by descending score: the mean gap between
    the Qini curve (incremental responders among the top k) and the random-targeting line,
    divided by the (weighted) number of rows; 0 for a random ranking."""
    wt = weight * treated
    wc = weight * ~treated
    n_t = np.cumsum(wt)
    n_c = np.cumsum(wc)
    y_t = np.cumsum(wt * y)
    y_c = np.cumsum(wc * y)
    ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c > 0)
    curve = y_t - y_c * ratio
    total = np.cumsum(weight)
    random_line = curve[-1] * total / total[-1]
    return float(np.sum((curve - random_line) * weight) / total[-1] ** 2)


def qini_with_ci(
    y: np.ndarray, treated: np.ndarray, scores: dict[str, np.ndarray], n_boot: int
) -> dict[str, tuple[float, float, np.ndarray]]:
    """Qini per model and its Poisson-bootstrap draws (the same weights for every model,
    so differences are paired). Returns model -> (qini, 95% half-width, draws)."""
    rng = np.random.default_rng(0)
    orders = {name: np.argsort(-score, kind="stable") for name, score in scores.items()}
    sorted_rows = {name: (y[o], treated[o]) for name, o in orders.items()}
    points = {
        name: qini_curve_area(ys, ts, np.ones(len(y))) for name, (ys, ts) in sorted_rows.items()
    }
    draws = {name: np.empty(n_boot) for name in scores}
    for b in range(n_boot):
        weight = rng.poisson(1.0, size=len(y)).astype(np.float64)
        for name, (ys, ts) in sorted_rows.items():
            draws[name][b] = qini_curve_area(ys, ts, weight[orders[name]])
    return {
        name: (points[name], 1.96 * float(draws[name].std(ddof=1)), draws[name]) for name in scores
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--trees", type=int, default=10)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--max-features", type=int, default=10)
    parser.add_argument("--features", type=int, default=N_FEATURES)
    parser.add_argument("--test-rows", type=int, default=TEST_ROWS)
    parser.add_argument("--repeats", type=int, default=1, help="runs per model and size")
    parser.add_argument("--boot", type=int, default=200, help="bootstrap draws for the Qini CI")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per child run")
    parser.add_argument(
        "--models",
        nargs="+",
        default=["causalml", "liftwise", "liftwise-2t"],
        choices=["causalml", "liftwise", "liftwise-2t"],
    )
    args = parser.parse_args()

    print(
        f"trees={args.trees} depth={args.depth} max_features={args.max_features} "
        f"min_samples_leaf=100 min_samples_treatment=10 criterion=KL features={args.features} "
        f"held-out rows={args.test_rows:,} repeats={args.repeats} (medians)"
    )
    print(
        "liftwise: honest, little-bags half-samples, 64 bins; 'liftwise-2t' = n_jobs=2; "
        "causalml: bootstrap trees, n_jobs=1"
    )
    header = (
        f"{'rows':>10} {'model':>12} {'fit s':>8} {'fit cpu s':>9} {'pred s':>7} "
        f"{'peak MB':>8} {'fit +MB':>8} {'Qini':>8} {'± 95%':>7} {'speedup':>8} {'mem ratio':>9} "
        f"{'fit mem ratio':>13}"
    )
    print(header)
    print("-" * len(header))
    notes = []
    if any(model.startswith("liftwise") for model in args.models):
        # compile or load the numba kernels once, outside the measured processes
        with tempfile.TemporaryDirectory() as tmp:
            run_child("liftwise", 5_000, args, Path(tmp) / "warm.npy")
    for n in args.sizes:
        _, t_all, y_all, _ = make_data(n + args.test_rows, args.features)
        y_test, treated = y_all[n:], t_all[n:] == 1
        del t_all, y_all
        rows: dict[str, dict] = {}
        scores: dict[str, np.ndarray] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for model in args.models:
                runs = []
                for rep in range(args.repeats):
                    out = Path(tmp) / f"{model}-{rep}.npy"
                    result = run_child(model, n, args, out)
                    if result is None:
                        break
                    runs.append(result)
                    if rep == 0:
                        scores[model] = np.load(out)
                if runs:
                    rows[model] = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        qini = qini_with_ci(y_test, treated, scores, args.boot)
        ref = rows.get("causalml")
        for model, row in rows.items():
            q, half, _ = qini[model]
            speed = f"{ref['fit_s'] / row['fit_s']:.1f}x" if ref else "-"
            mem = f"{row['peak_mb'] / ref['peak_mb']:.2f}" if ref else "-"
            grow = row["peak_mb"] - row["before_fit_mb"]
            fit_mem = f"{grow / (ref['peak_mb'] - ref['before_fit_mb']):.2f}" if ref else "-"
            print(
                f"{n:>10,} {model:>12} {row['fit_s']:>8.2f} {row['fit_cpu_s']:>9.2f} "
                f"{row['predict_s']:>7.2f} {row['peak_mb']:>8.0f} "
                f"{grow:>8.0f} {q:>8.5f} {half:>7.5f} "
                f"{speed:>8} {mem:>9} {fit_mem:>13}",
                flush=True,
            )
            if row["warmup_s"]:
                notes.append(f"{n:,} {model}: warm-up (numba cache load) {row['warmup_s']:.1f} s")
        if "causalml" in qini:
            for model in qini:
                if model == "causalml":
                    continue
                diff = qini[model][2] - qini["causalml"][2]
                delta = qini[model][0] - qini["causalml"][0]
                notes.append(
                    f"{n:,} {model} - causalml Qini: {delta:+.5f} "
                    f"(paired 95% half-width {1.96 * diff.std(ddof=1):.5f}); "
                    f"goal: >= -{qini['causalml'][1]:.5f}"
                )
    print()
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
