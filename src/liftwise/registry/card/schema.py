"""The model card's schema: Model Card Toolkit's field set (schema 0.0.2 with MCT 2's
confidence intervals and thresholds) mirrored field for field as pydantic models, plus a
few clearly named liftwise fields, and :class:`CardContext` (what the data cannot tell)."""

from __future__ import annotations

import getpass

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "0.0.2"


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
