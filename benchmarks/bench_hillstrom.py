"""Benchmark: uplift quality on the Hillstrom e-mail experiment, liftwise vs causalml and
scikit-uplift, on the same stratified split, each e-mail arm against `No E-Mail`.

Every liftwise learner is fitted once on all three arms; peers that take one treatment at
a time (scikit-uplift) are fitted per arm on that arm and control only. No model ever
sees the other e-mail arm as control. Metrics on the 30% test split, with bootstrap CIs:
Qini and AUUC (scikit-uplift normalisation), uplift@30%, Profit@30% (value per outcome
from the training split, 0.10 USD per e-mail sent).

    .venv/bin/python benchmarks/bench_hillstrom.py [--data ../shared/data/hillstrom.csv]
        [--outcomes visit conversion spend] [--n-boot 100] [--learners t_lgbm,...]
"""

from __future__ import annotations

import argparse
import functools
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from liftwise.evaluate.bootstrap import bootstrap_ci
from liftwise.evaluate.metrics import auuc, profit_at_k, qini_coefficient, uplift_at_k
from liftwise.evaluate.race import split_by_arm
from liftwise.ingest import load_hillstrom
from liftwise.learn.registry import DEFAULT_RACE, make_learner

ROOT = Path(__file__).resolve().parents[1]
EMAIL_COST = 0.10  # USD per e-mail sent (an assumption, stated in the output)
K = 0.3

warnings.filterwarnings("ignore")


def lgbm(kind: str, seed: int):
    from lightgbm import LGBMClassifier, LGBMRegressor

    cls = LGBMClassifier if kind == "binary" else LGBMRegressor
    return cls(n_estimators=200, learning_rate=0.05, num_leaves=31, min_child_samples=50,
               subsample=0.8, subsample_freq=1, colsample_bytree=0.8, verbose=-1, n_jobs=2,
               random_state=seed)  # fmt: skip


def causalml_models(kind: str, seed: int) -> dict[str, Callable]:
    """causalml peers: (X, treatment labels, y) -> fitted predictor of (n, K) effects."""
    from causalml.inference.meta import (
        BaseTClassifier,
        BaseTRegressor,
        BaseXClassifier,
        BaseXRegressor,
    )
    from causalml.inference.tree import UpliftRandomForestClassifier

    def meta(cls):
        def fit(X, labels, y):
            if cls is BaseXClassifier:  # outcome classifiers, effect regressors
                model = cls(
                    outcome_learner=lgbm(kind, seed),
                    effect_learner=lgbm("continuous", seed),
                    control_name="No E-Mail",
                )
            else:
                model = cls(learner=lgbm(kind, seed), control_name="No E-Mail")
            model.fit(X=X, treatment=labels, y=y)
            return lambda Xt: np.asarray(model.predict(X=Xt))

        return fit

    def forest(X, labels, y):
        model = UpliftRandomForestClassifier(control_name="No E-Mail", n_estimators=50, max_depth=6,
                                             min_samples_leaf=100, random_state=seed, n_jobs=2)  # fmt: skip
        model.fit(X, labels, y.astype(int))
        return lambda Xt: np.asarray(model.predict(Xt))

    if kind == "binary":
        return {
            "causalml T": meta(BaseTClassifier),
            "causalml X": meta(BaseXClassifier),
            "causalml UpliftRF": forest,
        }
    return {"causalml T": meta(BaseTRegressor), "causalml X": meta(BaseXRegressor)}


def sklift_models(kind: str, seed: int) -> dict[str, Callable]:
    """scikit-uplift peers, one treatment at a time: (X, t01, y) -> predictor of (n,).

    scikit-uplift's models call predict_proba, so they take binary outcomes only."""
    from sklift.models import ClassTransformation, SoloModel, TwoModels

    if kind != "binary":
        print("scikit-uplift: no models for a continuous outcome (binary outcomes only)")
        return {}

    def wrap(build):
        def fit(X, t01, y):
            model = build().fit(X, y, t01)
            return lambda Xt: np.asarray(model.predict(Xt))

        return fit

    return {
        "sklift SoloModel": wrap(lambda: SoloModel(estimator=lgbm(kind, seed))),
        "sklift TwoModels": wrap(
            lambda: TwoModels(estimator_trmnt=lgbm(kind, seed), estimator_ctrl=lgbm(kind, seed))
        ),
        "sklift ClassTransformation": wrap(lambda: ClassTransformation(estimator=lgbm(kind, seed))),
    }


def evaluate(y, t, score, arm, value, n_boot, seed) -> dict[str, str]:
    """Metric (CI) strings for one model, arm and outcome on the test split."""
    rows = (t == 0) | (t == arm)
    yy, tt, ss = y[rows], np.where(t[rows] == arm, 1, 0), score[rows]
    metrics = {
        "Qini": functools.partial(qini_coefficient, arm=1),
        "AUUC": functools.partial(auuc, arm=1),
        "uplift@30%": lambda a, b, c: uplift_at_k(a, b, c, K, arm=1),
        "Profit@30%": lambda a, b, c: profit_at_k(
            a, b, c, K, value_per_outcome=value, contact_cost=EMAIL_COST, redemption_cost=0.0, arm=1
        ),
    }
    out = {}
    for name, metric in metrics.items():
        ci = bootstrap_ci(metric, yy, tt, ss, n_boot=n_boot, seed=seed, stratify=tt)
        fmt = "{:,.0f}" if name == "Profit@30%" else "{:.4f}"
        out[name] = f"{fmt.format(ci.estimate)} [{fmt.format(ci.low)}, {fmt.format(ci.high)}]"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data" / "hillstrom.csv"
    )
    parser.add_argument("--outcomes", nargs="+", default=["visit", "conversion", "spend"])
    parser.add_argument("--learners", default=",".join(DEFAULT_RACE))
    parser.add_argument("--n-boot", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    frame = load_hillstrom(args.data)
    X, t = frame.X(), frame.treatment_codes()
    test = split_by_arm(t, 0.3, args.seed)
    labels = frame.data["arm"].to_numpy()
    print(f"Hillstrom: {len(t):,} units, arms {frame.arms}, test {test.sum():,} units; "
          f"Profit@30% with {EMAIL_COST:.2f} USD per e-mail; CIs: {args.n_boot} bootstrap resamples")  # fmt: skip
    for outcome in args.outcomes:
        y = frame.y(outcome)
        kind = "binary" if outcome != "spend" else "continuous"
        train_y = y[~test]
        # value of one unit of outcome in USD: spend per visit / per conversion in training
        value = (
            1.0
            if outcome == "spend"
            else float(frame.y("spend")[~test].sum() / max(train_y.sum(), 1))
        )
        print(f"\n## outcome {outcome} (value per outcome {value:,.2f} USD)")
        effects: dict[str, np.ndarray] = {}
        seconds: dict[str, float] = {}
        for name in args.learners.split(","):
            started = time.perf_counter()
            model = make_learner(name, args.seed).fit(X[~test], t[~test], train_y)
            effects[f"liftwise {name}"] = model.predict(X[test])
            seconds[f"liftwise {name}"] = time.perf_counter() - started
        for name, fit in causalml_models(kind, args.seed).items():
            started = time.perf_counter()
            effects[name] = fit(X[~test], labels[~test], train_y)(X[test])
            seconds[name] = time.perf_counter() - started
        for name, fit in sklift_models(kind, args.seed).items():
            started = time.perf_counter()
            columns = []
            for arm in range(1, len(frame.arms)):
                rows = ~test & ((t == 0) | (t == arm))
                predictor = fit(X[rows], (t[rows] == arm).astype(int), y[rows])
                columns.append(predictor(X[test]))
            effects[name] = np.column_stack(columns)
            seconds[name] = time.perf_counter() - started
        table = []
        for name, effect in effects.items():
            for arm in range(1, len(frame.arms)):
                row = {"model": name, "arm": frame.arms[arm], "fit s": f"{seconds[name]:.1f}"}
                row.update(
                    evaluate(
                        y[test], t[test], effect[:, arm - 1], arm, value, args.n_boot, args.seed
                    )
                )
                table.append(row)
        with pd.option_context("display.width", 250, "display.max_columns", 20):
            print(pd.DataFrame(table).to_string(index=False))


if __name__ == "__main__":
    main()
