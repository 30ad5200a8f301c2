"""Filling a card: everything a race knows (:func:`card_from_race`, when the race is
logged) and the registered version's name, date and links (:func:`complete_card`)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from liftwise import __version__
from liftwise.contracts.experiment import ExperimentFrame
from liftwise.evaluate.bundle import ModelBundle
from liftwise.evaluate.race import RaceResult
from liftwise.registry.card.schema import (
    CardContext,
    Considerations,
    Dataset,
    Graphic,
    GraphicsCollection,
    KeyVal,
    Limitation,
    ModelCard,
    ModelDetails,
    ModelParameters,
    QuantitativeAnalysis,
    Reference,
    Risk,
    SensitiveData,
    Tradeoff,
    UseCase,
    User,
    Version,
)
from liftwise.registry.card.stats import baseline_metrics, overall_metrics, segment_slices
from liftwise.report import format_value

_SENSITIVE = re.compile(r"age|gender|sex|income|region|ethnic|race\b|relig|marital|nation|zip")


def card_from_race(
    result: RaceResult,
    bundle: ModelBundle,
    frame: ExperimentFrame,
    *,
    dataset: dict[str, object],
    feature_versions: dict[str, str] | None = None,
    segments: pd.Series | None = None,
    images: dict[str, bytes] | None = None,
    context: CardContext | None = None,
) -> ModelCard:
    """Everything the race knows, as a card without a version (see :func:`complete_card`)."""
    context = context or CardContext()
    winner = result.winner_row
    metrics = [*overall_metrics(result), *baseline_metrics(result)]
    notes: list[str] = []
    if segments is not None:
        slices, notes = segment_slices(result, frame, segments)
        metrics += slices
    currency = str(bundle.metadata.get("currency", ""))
    details = ModelDetails(
        overview=context.overview
        or (
            f"Uplift model ({result.winner}) choosing, per unit, the treatment arm with the "
            f"highest expected incremental net profit among {', '.join(result.arms[1:])} "
            f"(control: {result.arms[0]}), for outcome '{result.settings.outcome}'."
        ),
        documentation=(
            f"Winner of a liftwise model race of {', '.join(result.settings.learners)} "
            f"by Profit@{result.settings.k:.0%} on {result.n_validation:,} validation units "
            f"(stratified by arm, seed {result.settings.seed}): {winner['profit_at_k']:,.0f} "
            f"{currency} (95% CI {winner['profit_at_k_low']:,.0f} to "
            f"{winner['profit_at_k_high']:,.0f}), then refitted on all {len(frame.data):,} "
            f"units. Trained with liftwise {__version__}."
        ),
        owners=context.owners,
        licenses=context.licenses,
        references=context.references,
    )
    return ModelCard(
        model_details=details,
        model_parameters=_parameters(result, bundle, frame, dataset, feature_versions or {}),
        quantitative_analysis=QuantitativeAnalysis(
            performance_metrics=metrics,
            graphics=GraphicsCollection(
                description="Validation split: incremental net profit vs units targeted "
                "(every contestant), and the Qini curves of every learner per arm.",
                collection=[
                    Graphic(name=name, image=base64.b64encode(data).decode())
                    for name, data in (images or {}).items()
                ],
            ),
        ),
        considerations=_considerations(result, bundle, frame, context, notes),
    )


def complete_card(
    card: ModelCard,
    *,
    name: str,
    version: int,
    registered_at: dt.datetime,
    model_uri: str,
    run_link: str,
    diff: str | None,
) -> ModelCard:
    """The card of one registered version: name, version, date, model and run links."""
    details = card.model_details.model_copy(
        update={
            "name": name,
            "version": Version(
                name=str(version),
                date=registered_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
                diff=diff or "First registered version.",
            ),
            "path": model_uri,
            "references": [Reference(reference=run_link), *card.model_details.references],
        }
    )
    return card.model_copy(update={"model_details": details})


def frame_sha256(data: pd.DataFrame) -> str:
    """Content hash of a frame's rows (values and column names, not the file they came from)."""
    digest = hashlib.sha256(",".join(map(str, data.columns)).encode())
    digest.update(pd.util.hash_pandas_object(data, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _parameters(
    result: RaceResult,
    bundle: ModelBundle,
    frame: ExperimentFrame,
    dataset: dict[str, object],
    feature_versions: dict[str, str],
) -> ModelParameters:
    """Learner, inputs and outputs, and the training and validation datasets."""
    from liftwise.registry.pyfunc import output_columns

    learner = bundle.learner
    params = learner.get_params() if hasattr(learner, "get_params") else {}
    shown = ", ".join(f"{k}={v!r}" for k, v in sorted(params.items()))
    sensitive = _sensitive_names(bundle)
    mask = result.validation_mask
    link = str(dataset.get("path", "")) or None
    source = ", ".join(
        f"{k}={v}"
        for k, v in sorted(dataset.items())
        if k != "path" and isinstance(v, str | int | float | bool)
    )
    splits = [("all units (final refit)", np.ones(len(frame.data), dtype=bool))]
    if mask is not None:
        splits += [("training split (race fit)", ~mask), ("validation split", mask)]
    data = [
        Dataset(
            name=split,
            description=f"{frame.source}: {int(rows.sum()):,} units; arms "
            + ", ".join(
                f"{arm} {count:,}"
                for arm, count in zip(
                    frame.arms,
                    np.bincount(frame.treatment_codes()[rows], minlength=len(frame.arms)),
                    strict=True,
                )
            )
            + (f"; {source}" if source else ""),
            link=link,
            sensitive=SensitiveData(sensitive_data=sensitive),
            rows=int(rows.sum()),
            sha256=frame_sha256(frame.data[rows]),
            feature_views=dict(sorted(feature_versions.items())),
        )
        for split, rows in splits
    ]
    return ModelParameters(
        model_architecture=f"{bundle.learner_name}: {type(learner).__name__}({shown})",
        data=data,
        input_format=(
            f"A table with the {len(bundle.features)} encoded float features below "
            "(point-in-time, as of the decision time) and optionally unit_id."
        ),
        input_format_map=[KeyVal(key=f, value="double") for f in bundle.features],
        output_format=(
            "One row per unit: per treatment arm the effect (with a 95% interval where the "
            "learner gives one), expected outcome and expected incremental net profit; the "
            "control outcome; the best arm (control if no arm's expected profit is positive)."
        ),
        output_format_map=[
            KeyVal(key=c, value="string" if c == "best_arm" else "double")
            for c in output_columns(bundle)
        ],
    )


def _considerations(
    result: RaceResult,
    bundle: ModelBundle,
    frame: ExperimentFrame,
    context: CardContext,
    notes: Sequence[str],
) -> Considerations:
    """Defaults every uplift model needs said, plus findings from this race's numbers."""
    settings = result.settings
    table = result.table
    winner = result.winner_row
    learners = table[(table["kind"] == "learner") & (table["name"] != result.winner)]
    costs = ", ".join(
        f"{arm}: contact {c.contact:g}, redemption {c.redemption:g}"
        for arm, c in sorted(settings.economics.costs.items())
    )
    shares = ", ".join(f"{a} {p:.0%}" for a, p in zip(result.arms, result.propensity, strict=True))
    limitations = [
        f"Learned from one randomised experiment ({frame.source}; arm shares {shares}): valid "
        "for the same population, arms, outcome definition and decision timing.",
        f"Expected profit uses the money fixed at training: value per outcome "
        f"{format_value(settings.economics.value_per_outcome, 'number')}; costs {costs or 'none'}. Re-score "
        "(or retrain) when costs or margins change.",
        "Effects are estimates: per-unit predictions are noisy, rankings matter more than "
        "single values; validation metrics come from one held-out split.",
        *notes,
    ]
    if winner["profit_at_k_low"] <= 0:
        limitations.append(
            f"The winner's Profit@{settings.k:.0%} 95% CI reaches zero or below "
            f"({winner['profit_at_k_low']:,.0f} to {winner['profit_at_k_high']:,.0f}): the "
            "gain is not established on validation."
        )
    close = learners[learners["profit_at_k"] >= winner["profit_at_k_low"]]
    if not close.empty:
        limitations.append(
            "Runner-up learner(s) within the winner's Profit@K CI: "
            + ", ".join(close["name"])
            + "; the choice between them is uncertain."
        )
    intervals = getattr(bundle.learner, "supports_interval", False)
    tradeoffs = [
        f"The winner maximises Profit@K at K = {settings.k:.0%}; at another budget a different "
        "learner may earn more (see the profit-vs-K curve).",
        "Per-unit effect intervals: "
        + ("given (usable by soft guardrails)." if intervals else "not given by this learner."),
    ]
    sensitive = _sensitive_names(bundle)
    return Considerations(
        users=[User(description=d) for d in DEFAULT_USERS] + context.users,
        use_cases=[UseCase(description=d) for d in DEFAULT_USE_CASES] + context.use_cases,
        limitations=[Limitation(description=d) for d in limitations] + context.limitations,
        tradeoffs=[Tradeoff(description=d) for d in tradeoffs] + context.tradeoffs,
        ethical_considerations=[
            Risk(
                name="Unequal treatment across segments: offers concentrate where predicted "
                "profit is highest.",
                mitigation_strategy="Review the segment slices before approval; use "
                "eligibility, do-not-contact and contact-cap guardrails in decide.",
            ),
            Risk(
                name="Features that are, or proxy, protected attributes"
                + (f" ({', '.join(sensitive)})." if sensitive else "."),
                mitigation_strategy="Check with compliance that their use is lawful for this "
                "campaign; drop them and retrain otherwise.",
            ),
            *context.ethical_considerations,
        ],
    )


DEFAULT_USERS = (
    "Data scientists and campaign managers choosing who gets which intervention under a budget.",
    "ML engineers serving decisions from the registry's champion.",
)
DEFAULT_USE_CASES = (
    "Rank units by the expected incremental net profit of each arm, then choose arms under a "
    "budget and guardrails (liftwise decide).",
    "Out of scope: credit, pricing or eligibility decisions about individuals; arms, "
    "populations or outcomes not in the experiment.",
)


def _sensitive_names(bundle: ModelBundle) -> list[str]:
    """Feature names that look like protected attributes or their usual proxies."""
    return [f for f in bundle.features if _SENSITIVE.search(f.lower())]
