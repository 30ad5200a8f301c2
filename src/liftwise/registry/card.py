"""Model card v1: Model Card Toolkit's field set as pydantic models, filled from a race.

Model Card Toolkit (MCT) itself is not installed (its dependencies conflict with this
environment), so :class:`ModelCard` mirrors its schema (``model_details``,
``model_parameters``, ``quantitative_analysis``, ``considerations``; schema 0.0.2 with
MCT 2's confidence intervals and thresholds) field for field, and adds a few clearly
named liftwise fields (``PerformanceMetric.arm``/``units``, ``Dataset.rows``/``sha256``/
``feature_views``). A card is built when the race is logged (:func:`card_from_race`:
everything the run knows) and completed when a version is registered
(:func:`complete_card`: name, version, date, links), then rendered as Markdown and HTML.
"""

from __future__ import annotations

import base64
import datetime as dt
import getpass
import re
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from liftwise import __version__
from liftwise.contracts.experiment import ExperimentFrame
from liftwise.errors import UserError
from liftwise.evaluate.bootstrap import bootstrap_ci, metric_with_ci
from liftwise.evaluate.bundle import ModelBundle
from liftwise.evaluate.metrics import policy_profit_at_k
from liftwise.evaluate.race import RaceResult
from liftwise.report import (
    Block,
    Bullets,
    Column,
    Facts,
    Paragraph,
    Plot,
    Section,
    Table,
    format_value,
    render_page,
)

SCHEMA_VERSION = "0.0.2"
MIN_UNITS_PER_ARM = 20  # a segment slice needs this many validation units in every arm
_SENSITIVE = re.compile(r"age|gender|sex|income|region|ethnic|race\b|relig|marital|nation|zip")


class _Field(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------- MCT schema (mirrored)


class Owner(_Field):
    name: str
    contact: str | None = None


class Version(_Field):
    name: str | None = None
    date: str | None = None  # ISO 8601
    diff: str | None = None


class License(_Field):
    identifier: str | None = None  # SPDX identifier, or "proprietary"
    custom_text: str | None = None


class Reference(_Field):
    reference: str


class Citation(_Field):
    style: str | None = None
    citation: str


class ModelDetails(_Field):
    name: str | None = None
    overview: str | None = None
    documentation: str | None = None
    owners: list[Owner] = Field(default_factory=list)
    version: Version = Field(default_factory=Version)
    licenses: list[License] = Field(default_factory=list)
    references: list[Reference] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)
    path: str | None = None


class Graphic(_Field):
    name: str
    image: str  # PNG, base64


class GraphicsCollection(_Field):
    description: str | None = None
    collection: list[Graphic] = Field(default_factory=list)


class SensitiveData(_Field):
    sensitive_data: list[str] = Field(default_factory=list)


class Dataset(_Field):
    name: str
    description: str | None = None
    link: str | None = None
    sensitive: SensitiveData = Field(default_factory=SensitiveData)
    graphics: GraphicsCollection = Field(default_factory=GraphicsCollection)
    rows: int | None = None  # liftwise
    sha256: str | None = None  # liftwise: content hash of these rows of the training frame
    feature_views: dict[str, str] = Field(default_factory=dict)  # liftwise: view -> version


class KeyVal(_Field):
    key: str
    value: str


class ModelParameters(_Field):
    model_architecture: str | None = None
    data: list[Dataset] = Field(default_factory=list)
    input_format: str | None = None
    input_format_map: list[KeyVal] = Field(default_factory=list)
    output_format: str | None = None
    output_format_map: list[KeyVal] = Field(default_factory=list)


class ConfidenceInterval(_Field):
    lower_bound: float
    upper_bound: float


class PerformanceMetric(_Field):
    type: str
    value: float
    slice: str | None = None
    confidence_interval: ConfidenceInterval | None = None
    threshold: str | None = None
    arm: str | None = None  # liftwise: the treatment arm compared with control
    units: int | None = None  # liftwise: validation units the value is computed on


class QuantitativeAnalysis(_Field):
    performance_metrics: list[PerformanceMetric] = Field(default_factory=list)
    graphics: GraphicsCollection = Field(default_factory=GraphicsCollection)


class User(_Field):
    description: str


class UseCase(_Field):
    description: str


class Limitation(_Field):
    description: str


class Tradeoff(_Field):
    description: str


class Risk(_Field):
    name: str
    mitigation_strategy: str


class Considerations(_Field):
    users: list[User] = Field(default_factory=list)
    use_cases: list[UseCase] = Field(default_factory=list)
    limitations: list[Limitation] = Field(default_factory=list)
    tradeoffs: list[Tradeoff] = Field(default_factory=list)
    ethical_considerations: list[Risk] = Field(default_factory=list)


class ModelCard(_Field):
    """Model Card Toolkit's ``ModelCard`` (schema 0.0.2 + MCT 2 metric fields)."""

    schema_version: str = SCHEMA_VERSION
    model_details: ModelDetails = Field(default_factory=ModelDetails)
    model_parameters: ModelParameters = Field(default_factory=ModelParameters)
    quantitative_analysis: QuantitativeAnalysis = Field(default_factory=QuantitativeAnalysis)
    considerations: Considerations = Field(default_factory=Considerations)


class CardContext(_Field):
    """What the data cannot tell: owners, licence, references and extra considerations
    (appended to the defaults that every liftwise card carries)."""

    owners: list[Owner] = Field(default_factory=lambda: [Owner(name=_user())])
    licenses: list[License] = Field(default_factory=lambda: [License(identifier="proprietary")])
    references: list[Reference] = Field(default_factory=list)
    overview: str | None = None
    users: list[User] = Field(default_factory=list)
    use_cases: list[UseCase] = Field(default_factory=list)
    limitations: list[Limitation] = Field(default_factory=list)
    tradeoffs: list[Tradeoff] = Field(default_factory=list)
    ethical_considerations: list[Risk] = Field(default_factory=list)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "unknown"


# ----------------------------------------------------------------------- building


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
    metrics = [*_overall_metrics(result), *_baseline_metrics(result)]
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


def _interval(low: float, high: float) -> ConfidenceInterval:
    return ConfidenceInterval(lower_bound=float(low), upper_bound=float(high))


def _overall_metrics(result: RaceResult) -> list[PerformanceMetric]:
    """The winner's Profit@K and, per arm, AUUC, Qini and uplift@k, each with its CI."""
    row = result.winner_row
    k = result.settings.k
    out = [
        PerformanceMetric(
            type="Profit@K",
            value=float(row["profit_at_k"]),
            confidence_interval=_interval(row["profit_at_k_low"], row["profit_at_k_high"]),
            threshold=f"K = {k:.0%} of units, best arm each",
            units=result.n_validation,
        )
    ]
    uplift = f"uplift@{result.settings.uplift_k:g}"
    for arm in result.arms[1:]:
        for column, label in (("auuc", "AUUC"), ("qini", "Qini"), (uplift, uplift)):
            low, high = row.get(f"{column}_low[{arm}]"), row.get(f"{column}_high[{arm}]")
            out.append(
                PerformanceMetric(
                    type=label,
                    value=float(row[f"{column}[{arm}]"]),
                    confidence_interval=None
                    if low is None or pd.isna(low)
                    else _interval(low, high),
                    arm=arm,
                    units=result.n_validation,
                )
            )
    return out


def _baseline_metrics(result: RaceResult) -> list[PerformanceMetric]:
    """Profit@K of every other contestant, for scale."""
    return [
        PerformanceMetric(
            type=f"Profit@K, {row.kind}: {row.name}",
            value=float(row.profit_at_k),
            confidence_interval=_interval(row.profit_at_k_low, row.profit_at_k_high),
            threshold=f"K = {result.settings.k:.0%} of units",
            units=result.n_validation,
        )
        for row in result.table.itertuples()
        if row.name != result.winner
    ]


def align_segments(segments: pd.Series, frame: ExperimentFrame) -> np.ndarray:
    """Segment label per frame row: ``segments`` either shares the frame's index (row
    aligned) or is indexed by unit id."""
    data = frame.data
    if segments.index.equals(data.index):
        return segments.to_numpy(dtype=object)
    labels = segments.reindex(data["unit_id"].to_numpy())
    if labels.isna().any():
        missing = data["unit_id"].to_numpy()[labels.isna().to_numpy()][0]
        raise UserError(
            f"no segment for unit_id {missing}: pass a Series aligned with the frame's rows "
            "or indexed by unit_id",
            column=str(segments.name or "segment"),
        )
    return labels.to_numpy(dtype=object)


def segment_slices(
    result: RaceResult, frame: ExperimentFrame, segments: pd.Series
) -> tuple[list[PerformanceMetric], list[str]]:
    """Per segment of the validation split: the winner's Profit@K, and per arm its
    uplift@k (bootstrap CIs), the observed effect (normal CI) and the mean predicted
    effect. Segments too small to measure are listed in the returned notes."""
    if (
        result.validation_mask is None
        or result.winner_profit_scores is None
        or result.winner_effects is None
    ):
        raise UserError("this race result has no validation predictions (rerun the race)")
    settings = result.settings
    mask = result.validation_mask
    labels = align_segments(segments, frame)[mask]
    y = frame.y(settings.outcome)[mask]
    t = frame.treatment_codes()[mask]
    profit, effects = result.winner_profit_scores, result.winner_effects
    contact, redemption = settings.economics.arrays(frame.treatments)
    money = {
        "value_per_outcome": settings.economics.value_per_outcome,
        "contact_cost": contact,
        "redemption_cost": redemption,
        "propensity": result.propensity,
    }
    name = str(segments.name or "segment")
    out: list[PerformanceMetric] = []
    notes: list[str] = []
    for label in sorted({str(v) for v in labels}):
        rows = np.array([str(v) == label for v in labels])
        per_arm = np.bincount(t[rows], minlength=len(frame.arms))
        where = f"{name}={label}"
        if per_arm.min() < MIN_UNITS_PER_ARM:
            notes.append(
                f"Slice {where} not measured: {int(rows.sum())} validation units, fewer than "
                f"{MIN_UNITS_PER_ARM} in some arm."
            )
            continue
        n = int(rows.sum())
        top = max(1, round(settings.k * n))
        boot = {"n_boot": settings.n_boot, "seed": settings.seed, "stratify": t[rows]}
        interval = bootstrap_ci(
            partial(_profit_at, k=top, money=money), y[rows], t[rows], profit[rows], **boot
        )
        out.append(
            PerformanceMetric(
                type="Profit@K",
                value=interval.estimate,
                slice=where,
                confidence_interval=_interval(interval.low, interval.high),
                threshold=f"K = {settings.k:.0%} of the slice's units",
                units=n,
            )
        )
        for index, arm in enumerate(frame.treatments, start=1):
            uplift = metric_with_ci(
                "uplift_at_k", y[rows], t[rows], effects[rows][:, index - 1],
                n_boot=settings.n_boot, seed=settings.seed, k=settings.uplift_k, arm=index,
            )  # fmt: skip
            observed, low, high = _observed_effect(y[rows], t[rows], index)
            common = {"slice": where, "arm": arm, "units": n}
            out += [
                PerformanceMetric(
                    type=f"uplift@{settings.uplift_k:g}",
                    value=uplift.estimate,
                    confidence_interval=_interval(uplift.low, uplift.high),
                    **common,
                ),
                PerformanceMetric(
                    type="observed effect (difference in means)",
                    value=observed,
                    confidence_interval=_interval(low, high),
                    **common,
                ),
                PerformanceMetric(
                    type="mean predicted effect",
                    value=float(effects[rows][:, index - 1].mean()),
                    **common,
                ),
            ]
    return out, notes


def _profit_at(
    y: np.ndarray, t: np.ndarray, scores: np.ndarray, *, k: int, money: dict[str, Any]
) -> float:
    return policy_profit_at_k(y, t, scores, min(k, len(y)), **money)


def _observed_effect(y: np.ndarray, t: np.ndarray, arm: int) -> tuple[float, float, float]:
    """Difference in mean outcome, arm minus control, with a 95% normal (Welch) interval."""
    treated, control = y[t == arm], y[t == 0]
    effect = float(treated.mean() - control.mean())
    se = float(np.sqrt(treated.var(ddof=1) / len(treated) + control.var(ddof=1) / len(control)))
    return effect, effect - 1.959964 * se, effect + 1.959964 * se


def frame_sha256(data: pd.DataFrame) -> str:
    """Content hash of a frame's rows (values and column names, not the file they came from)."""
    import hashlib

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


# ---------------------------------------------------------------------- rendering


def metric_table(card: ModelCard) -> Table:
    """Every performance metric: type, arm, slice, value, 95% CI, units."""
    columns = [
        Column("metric"),
        Column("arm"),
        Column("slice"),
        Column("value", "number"),
        Column("95% CI", "number", interval=True),
        Column("units", "integer"),
    ]
    rows = [
        [
            m.type,
            m.arm or "",
            m.slice or "all",
            m.value,
            None
            if m.confidence_interval is None
            else (m.confidence_interval.lower_bound, m.confidence_interval.upper_bound),
            m.units,
        ]
        for m in card.quantitative_analysis.performance_metrics
    ]
    return Table(columns, rows)


def dataset_table(card: ModelCard) -> Table:
    """Every dataset: rows, content hash, feature-view versions, description."""
    columns = [
        Column("dataset"),
        Column("rows", "integer"),
        Column("sha256 (first 16)"),
        Column("feature views"),
        Column("description"),
    ]
    rows = [
        [
            d.name,
            d.rows,
            (d.sha256 or "")[:16],
            ", ".join(f"{k}@{v}" for k, v in d.feature_views.items()),
            d.description or "",
        ]
        for d in card.model_parameters.data
    ]
    return Table(columns, rows)


def _facts(card: ModelCard) -> list[tuple[str, list[tuple[str, str]]]]:
    """Model details and parameters as (section, [(label, text)]), for both renderers."""
    d, p = card.model_details, card.model_parameters
    sensitive = p.data[0].sensitive.sensitive_data if p.data else []
    return [
        (
            "Model details",
            [
                ("Name", d.name or ""),
                ("Version", f"{d.version.name or ''} ({d.version.date or 'unregistered'})"),
                ("Changes", d.version.diff or ""),
                ("Overview", d.overview or ""),
                ("Documentation", d.documentation or ""),
                ("Owners", ", ".join(o.name for o in d.owners)),
                ("Licence", ", ".join(x.identifier or x.custom_text or "" for x in d.licenses)),
                ("Model URI", d.path or ""),
                ("References", ", ".join(r.reference for r in d.references)),
            ],
        ),
        (
            "Model parameters",
            [
                ("Architecture", p.model_architecture or ""),
                ("Input", p.input_format or ""),
                ("Features", ", ".join(kv.key for kv in p.input_format_map)),
                ("Possibly sensitive features", ", ".join(sensitive)),
                ("Output", p.output_format or ""),
            ],
        ),
    ]


def _considerations_lists(card: ModelCard) -> list[tuple[str, list[str]]]:
    c = card.considerations
    return [
        ("Intended users", [u.description for u in c.users]),
        ("Use cases", [u.description for u in c.use_cases]),
        ("Limitations", [x.description for x in c.limitations]),
        ("Trade-offs", [x.description for x in c.tradeoffs]),
        (
            "Ethical considerations",
            [f"{r.name} Mitigation: {r.mitigation_strategy}" for r in c.ethical_considerations],
        ),
    ]


def _title(card: ModelCard) -> str:
    d = card.model_details
    return f"Model card: {d.name or 'unregistered'} v{d.version.name or '?'}"


def render_markdown(card: ModelCard, image_files: dict[str, str] | None = None) -> str:
    """The card as Markdown; ``image_files`` maps graphic names to image files beside it."""

    def table(shown: Table) -> list[str]:
        def line(cells: list[str]) -> str:
            escaped = (c.replace("|", "\\|").replace("\n", " ") for c in cells)
            return "| " + " | ".join(escaped) + " |"

        header = shown.header
        return [line(header), line(["---"] * len(header)), *map(line, shown.cells()), ""]

    lines = [f"# {_title(card)}", ""]
    for title, fields in _facts(card):
        lines += [f"## {title}", ""] + [f"- **{k}**: {v}" for k, v in fields if v] + [""]
    lines += ["### Datasets", "", *table(dataset_table(card))]
    lines += ["## Quantitative analysis", "", *table(metric_table(card))]
    for graphic in card.quantitative_analysis.graphics.collection:
        if image_files and graphic.name in image_files:
            lines += [f"![{graphic.name}]({image_files[graphic.name]})", ""]
    lines += ["## Considerations", ""]
    for label, items in _considerations_lists(card):
        lines += [f"### {label}", "", *(f"- {item}" for item in items), ""]
    lines.append(f"_Model Card Toolkit schema {card.schema_version}, mirrored by liftwise._")
    return "\n".join(lines) + "\n"


def render_html(card: ModelCard) -> str:
    """The card as one self-contained HTML page in the report shell, plots inline."""
    sections = [Section(title, [Facts(fields)]) for title, fields in _facts(card)]
    sections.append(Section("Datasets", [dataset_table(card)], level=3))
    graphics = card.quantitative_analysis.graphics
    quantitative: list[Block] = [metric_table(card)]
    if graphics.description:
        quantitative.append(Paragraph(graphics.description))
    quantitative += [
        Plot(g.name, base64.b64decode(g.image), caption=g.name) for g in graphics.collection
    ]
    sections.append(Section("Quantitative analysis", quantitative))
    sections.append(Section("Considerations"))
    sections += [
        Section(label, [Bullets(items)], level=3) for label, items in _considerations_lists(card)
    ]
    return render_page(
        _title(card),
        sections,
        note=f"Model Card Toolkit schema {card.schema_version}, mirrored by liftwise.",
    )
