"""Model card v1: Model Card Toolkit's field set as pydantic models, filled from a race.

Model Card Toolkit (MCT) itself is not installed (its dependencies conflict with this
environment), so :class:`ModelCard` mirrors its schema (``model_details``,
``model_parameters``, ``quantitative_analysis``, ``considerations``; schema 0.0.2 with
MCT 2's confidence intervals and thresholds) field for field, and adds a few clearly
named liftwise fields (``PerformanceMetric.arm``/``units``, ``Dataset.rows``/``sha256``/
``feature_views``). A card is built when the race is logged (:func:`card_from_race`:
everything the run knows) and completed when a version is registered
(:func:`complete_card`: name, version, date, links), then rendered as Markdown and HTML.

One theme per module, imported in this order: :mod:`.schema` (the pydantic models),
:mod:`.stats` (what the card computes: the race's metrics, segment slices; intervals
from :mod:`liftwise.stats`), :mod:`.build` (filling a card), :mod:`.render` (Markdown,
and HTML in the report shell). This package re-exports their public names, so callers
import from ``liftwise.registry.card``.
"""

from liftwise.registry.card.build import card_from_race, complete_card, frame_sha256
from liftwise.registry.card.render import (
    dataset_table,
    metric_table,
    render_html,
    render_markdown,
)
from liftwise.registry.card.schema import (
    SCHEMA_VERSION,
    CardContext,
    Citation,
    ConfidenceInterval,
    Considerations,
    Dataset,
    Graphic,
    GraphicsCollection,
    KeyVal,
    License,
    Limitation,
    ModelCard,
    ModelDetails,
    ModelParameters,
    Owner,
    PerformanceMetric,
    QuantitativeAnalysis,
    Reference,
    Risk,
    SensitiveData,
    Tradeoff,
    UseCase,
    User,
    Version,
)
from liftwise.registry.card.stats import MIN_UNITS_PER_ARM, align_segments, segment_slices

__all__ = [
    "MIN_UNITS_PER_ARM",
    "SCHEMA_VERSION",
    "CardContext",
    "Citation",
    "ConfidenceInterval",
    "Considerations",
    "Dataset",
    "Graphic",
    "GraphicsCollection",
    "KeyVal",
    "License",
    "Limitation",
    "ModelCard",
    "ModelDetails",
    "ModelParameters",
    "Owner",
    "PerformanceMetric",
    "QuantitativeAnalysis",
    "Reference",
    "Risk",
    "SensitiveData",
    "Tradeoff",
    "UseCase",
    "User",
    "Version",
    "align_segments",
    "card_from_race",
    "complete_card",
    "dataset_table",
    "frame_sha256",
    "metric_table",
    "render_html",
    "render_markdown",
    "segment_slices",
]
