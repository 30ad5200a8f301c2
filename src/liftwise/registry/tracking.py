"""Log a model race as one MLflow run: parameters, metrics with CIs, curves, the race
table and report, the winner as a pyfunc model, its bundle, the dataset and feature-view
versions, and the inputs of its model card.

Run layout (artefact paths):

- ``race/``: ``race.csv``, ``race.json``, ``report.html``, ``plots/*.png``,
  ``curves/policy_curves.csv`` and ``curves/arm_curves.csv`` (every point of every curve)
- ``bundle/``: the liftwise model bundle (``load_bundle``)
- ``dataset/dataset.json``: path, hashes, rows, world manifest facts, feature views
- ``card/model_card_inputs.json``: the model card without version (completed on register)
- the logged model ``model`` (pyfunc, MLflow 3 logged model linked to the run)
"""

from __future__ import annotations

import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from liftwise import __version__
from liftwise.contracts.experiment import ExperimentFrame
from liftwise.errors import UserError
from liftwise.evaluate.bundle import ModelBundle
from liftwise.evaluate.race import RaceResult
from liftwise.io import atomic_path, sha256_file, write_json
from liftwise.registry.card import CardContext, card_from_race, frame_sha256
from liftwise.registry.store import active_store, ensure_experiment, environment
from liftwise.settings import Settings
from liftwise.simulate import World

MODEL_ARTIFACT = "model"
BUNDLE_PATH = "bundle"
CARD_INPUTS = "card/model_card_inputs.json"
TAG_MODEL_ID = "liftwise.model_id"
TAG_KIND = "liftwise.kind"
TAG_WINNER = "liftwise.winner"
WINNER_METRIC = "profit_at_k"  # the metric that picked the winner, logged under this key
CARD_IMAGES = {"profit vs K": "profit_vs_K.png", "Qini curves": "Qini_curves.png"}
_PARAM_LIMIT = 6000  # MLflow's longest parameter value
MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")  # models from code, not a pickle


def metric_key(*parts: str) -> str:
    """An MLflow metric key from parts (characters MLflow refuses become ``_``)."""
    cleaned = [re.sub(r"[^\w.\- ]", "_", p.replace("@", "_at_")).strip() for p in parts]
    return "/".join(p for p in cleaned if p)


def contestant_key(name: str) -> str:
    """``treat all: cashback_10`` -> ``treat_all_cashback_10``."""
    return re.sub(r"_+", "_", re.sub(r"[^\w.\-]", "_", name)).strip("_")


def race_metrics(result: RaceResult) -> dict[str, float]:
    """Every number of the race table: ``race/<contestant>/<metric>[/<arm>]``, and the
    winner's once more at the top level (``profit_at_k``, ``qini/<arm>``, ...), so runs
    compare on the same keys whoever won."""
    out: dict[str, float] = {}
    numeric = [
        c
        for c in result.table.columns
        if c != "winner" and pd.api.types.is_numeric_dtype(result.table[c])
    ]
    for row in result.table.to_dict(orient="records"):
        for column in numeric:
            value = row[column]
            if value is None or not np.isfinite(value):
                continue
            name, _, arm = column.partition("[")
            parts = (name, arm.rstrip("]"))
            out[metric_key("race", contestant_key(str(row["name"])), *parts)] = float(value)
            if row["name"] == result.winner:
                out[metric_key(*parts)] = float(value)
    out["n_validation"] = float(result.n_validation)
    return out


def race_params(
    result: RaceResult,
    bundle: ModelBundle,
    frame: ExperimentFrame,
    dataset: dict[str, object],
    feature_versions: dict[str, str],
) -> dict[str, str]:
    """Race settings, money, data shape, dataset facts and feature-view versions as
    MLflow parameters (scalars only; nested dataset facts go to ``dataset.json``)."""
    settings = result.settings
    params: dict[str, object] = {
        "outcome": settings.outcome,
        "learners": ",".join(settings.learners),
        "k": settings.k,
        "uplift_k": settings.uplift_k,
        "validation_fraction": settings.validation_fraction,
        "n_boot": settings.n_boot,
        "seed": settings.seed,
        "value_per_outcome": settings.economics.value_per_outcome,
        "arms": ",".join(frame.arms),
        "control": frame.control,
        "units": len(frame.data),
        "n_features": len(frame.features),
        "winner": result.winner,
        "world": bundle.world,
        "liftwise_version": __version__,
    }
    for arm, cost in sorted(settings.economics.costs.items()):
        params[f"cost.{arm}.contact"] = cost.contact
        params[f"cost.{arm}.redemption"] = cost.redemption
    for key, value in sorted(dataset.items()):
        if isinstance(value, str | int | float | bool) or value is None:
            params[f"dataset.{key}"] = value
    for view, version in sorted(feature_versions.items()):
        params[f"feature_view.{view}"] = version
    return {metric_key(k): str(v)[:_PARAM_LIMIT] for k, v in params.items()}


def curves_frames(result: RaceResult) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every curve point: policy profit per contestant; uplift and Qini per learner and arm."""
    policy = pd.concat(
        [
            pd.DataFrame({"contestant": name, "units_targeted": c.x, "profit": c.y})
            for name, c in result.policy_curves.items()
        ],
        ignore_index=True,
    )
    arms = [
        pd.DataFrame(
            {"learner": learner, "arm": arm, "curve": kind, "units_targeted": c.x, "value": c.y}
        )
        for learner, per_arm in result.arm_curves.items()
        for arm, pair in per_arm.items()
        for kind, c in zip(("uplift", "qini"), pair, strict=True)
    ]
    columns = ["learner", "arm", "curve", "units_targeted", "value"]
    arm_frame = pd.concat(arms, ignore_index=True) if arms else pd.DataFrame(columns=columns)
    return policy, arm_frame


def describe_dataset(path: str | Path, frame: ExperimentFrame) -> dict[str, object]:
    """Dataset facts for :func:`log_race`: a world directory's manifest (world, seed,
    manifest hash, table hashes) or a table file's SHA-256, plus rows and the frame hash."""
    path = Path(path)
    facts: dict[str, object] = {"path": str(path.resolve()), "rows": len(frame.data)}
    manifest = path / "manifest.json"
    if manifest.is_file():
        from liftwise.simulate import load_world

        world = load_world(path)
        facts |= {
            "kind": "world",
            "world": world.name,
            "seed": world.manifest.seed,
            "manifest_sha256": sha256_file(manifest),
            "tables": {name: table.sha256 for name, table in sorted(world.manifest.tables.items())},
        }
    elif path.is_file():
        facts |= {"kind": "table", "sha256": sha256_file(path), "bytes": path.stat().st_size}
    else:
        raise UserError("no such dataset file or world directory", file=path)
    return facts


def world_segments(world: World, frame: ExperimentFrame) -> pd.Series:
    """Each frame row's customer segment (fintech) or plan (learning), for card slices."""
    table, key, column = {
        "fintech": ("customers", "customer_id", "segment"),
        "learning": ("learners", "learner_id", "plan"),
    }[world.name]
    labels = world.read(table, columns=[key, column]).set_index(key)[column]
    values = labels.reindex(frame.data["unit_id"].to_numpy()).to_numpy()
    return pd.Series(values, index=frame.data.index, name=column)


def source_segments(
    source: str | Path, frame: ExperimentFrame, column: str | None = None
) -> pd.Series | None:
    """Model-card segments for a training source: a world's customer segment (or plan),
    or ``column`` of a table file (row-aligned with the frame); ``None`` without either."""
    source = Path(source)
    if (source / "manifest.json").is_file():
        from liftwise.simulate import load_world

        world = load_world(source)
        if column is None:
            return world_segments(world, frame)
        raise UserError("is for tables; worlds use their segment", parameter="segment_column")
    if column is None:
        return None
    from liftwise.ingest import read_table

    table = read_table(source)
    if column not in table.columns:
        raise UserError(
            "no such column for the segment slices",
            file=source,
            column=column,
            parameter="segment_column",
        )
    return table[column].astype(str).rename(column)


def log_race(
    result: RaceResult,
    bundle: ModelBundle,
    frame: ExperimentFrame,
    *,
    settings: Settings,
    experiment: str,
    dataset: dict[str, object],
    feature_versions: dict[str, str] | None = None,
    segments: pd.Series | None = None,
    params: dict[str, object] | None = None,
    run_name: str | None = None,
    card_context: CardContext | None = None,
) -> str:
    """Log one race as an MLflow run in ``experiment`` and return its run id.

    ``dataset`` describes the training data (``describe_dataset`` builds it from a path);
    ``feature_versions`` maps feature-view names to versions; ``segments`` (aligned with
    the frame's rows, or indexed by unit_id) gives the model card its per-segment slices;
    ``params`` are extra run parameters (they win over the race's own on a clash).
    """
    from liftwise.evaluate.report import save_race
    from liftwise.registry.pyfunc import BUNDLE_ARTIFACT, pip_requirements, signature

    feature_versions = dict(feature_versions or {})
    experiment_id = ensure_experiment(settings, experiment)
    with tempfile.TemporaryDirectory(prefix="liftwise-run-") as tmp:
        staged = Path(tmp)
        race_dir, bundle_dir = staged / "race", staged / BUNDLE_PATH
        save_race(result, bundle, race_dir)
        shutil.move(race_dir / "model", bundle_dir)
        policy, arms = curves_frames(result)
        for name, table in (("policy_curves", policy), ("arm_curves", arms)):
            with atomic_path(race_dir / "curves" / f"{name}.csv") as out:
                table.to_csv(out, index=False)
        images = {
            name: (race_dir / "plots" / file).read_bytes() for name, file in CARD_IMAGES.items()
        }
        card = card_from_race(
            result,
            bundle,
            frame,
            dataset=dataset,
            feature_versions=feature_versions,
            segments=segments,
            images=images,
            context=card_context,
        )
        write_json(staged / CARD_INPUTS, card.model_dump(mode="json"))
        frame_hash = frame_sha256(frame.data)
        write_json(
            staged / "dataset" / "dataset.json",
            {
                **dataset,
                "frame_sha256": frame_hash,
                "features": list(frame.features),
                "arms": list(frame.arms),
                "outcomes": list(frame.outcomes),
                "feature_views": feature_versions,
            },
        )
        run_params = race_params(result, bundle, frame, dataset, feature_versions)
        run_params |= {metric_key(k): str(v)[:_PARAM_LIMIT] for k, v in (params or {}).items()}
        winner = result.winner_row
        with (
            active_store(settings) as mlflow,
            mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run,
        ):
            mlflow.set_tags(
                {
                    TAG_KIND: "race",
                    TAG_WINNER: result.winner,
                    "liftwise.frame_sha256": frame_hash,
                    "liftwise.world": bundle.world or "",
                    "mlflow.note.content": (
                        f"liftwise model race: winner **{result.winner}**, Profit@"
                        f"{result.settings.k:.0%} {winner['profit_at_k']:,.0f} (95% CI "
                        f"{winner['profit_at_k_low']:,.0f} to {winner['profit_at_k_high']:,.0f})"
                        f" on {result.n_validation:,} validation units."
                    ),
                }
            )
            mlflow.log_params(run_params)
            mlflow.log_metrics(race_metrics(result))
            _log_inputs(mlflow, frame, result, dataset)
            mlflow.log_artifacts(str(race_dir), artifact_path="race")
            mlflow.log_artifacts(str(bundle_dir), artifact_path=BUNDLE_PATH)
            mlflow.log_artifacts(str(staged / "dataset"), artifact_path="dataset")
            mlflow.log_artifacts(str(staged / "card"), artifact_path="card")
            # no uv project files from the working directory (the requirements are explicit),
            # no input example (it would run the slow model once more)
            with (
                environment(MLFLOW_UV_AUTO_DETECT="false", MLFLOW_LOG_UV_FILES="false"),
                warnings.catch_warnings(),
            ):
                warnings.filterwarnings("ignore", message=".*input example was not provided")
                info = mlflow.pyfunc.log_model(
                    name=MODEL_ARTIFACT,
                    python_model=str(MODEL_CODE),
                    artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
                    signature=signature(bundle),
                    pip_requirements=pip_requirements(),
                    metadata={"liftwise_version": __version__, "learner": bundle.learner_name},
                )
            mlflow.set_tag(TAG_MODEL_ID, info.model_id)
            return run.info.run_id


def _log_inputs(
    mlflow: Any, frame: ExperimentFrame, result: RaceResult, dataset: dict[str, object]
) -> None:
    """The training frame and its validation rows as MLflow dataset inputs."""
    source = str(dataset.get("path") or frame.source)
    name = str(dataset.get("name") or dataset.get("world") or Path(frame.source).name)
    inputs = [("training", name, frame.data)]
    if result.validation_mask is not None:
        inputs.append(("validation", f"{name}/validation", frame.data[result.validation_mask]))
    with warnings.catch_warnings():  # the source is a local path; unit_id is an int column
        warnings.simplefilter("ignore", UserWarning)
        for context, title, rows in inputs:
            data = mlflow.data.from_pandas(
                rows, source=source, name=title, targets=result.settings.outcome
            )
            mlflow.log_input(data, context=context)
