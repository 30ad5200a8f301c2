"""Tracking, model registry with a human approval gate, audit log and model cards.

Sits after ``evaluate`` and before ``decide``: :func:`log_race` records a model race as an
MLflow run (metrics with CIs, curves, the winner as a pyfunc model, the dataset and
feature-view versions, the model card's inputs); :class:`ModelRegistry` registers winners
as versions (alias ``challenger``), records approvals, moves ``champion`` only for
approved versions, rolls back in one call, and keeps an append-only audit log that
answers which version was champion at any time. MLflow is imported lazily (it is slow).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before anything imports mlflow

if TYPE_CHECKING:
    from liftwise.registry.audit import AuditEntry, AuditLog
    from liftwise.registry.card import ModelCard
    from liftwise.registry.models import ModelRef, ModelRegistry, VersionInfo
    from liftwise.registry.tracking import describe_dataset, log_race, world_segments

_EXPORTS = {
    "AuditEntry": "liftwise.registry.audit",
    "AuditLog": "liftwise.registry.audit",
    "ModelCard": "liftwise.registry.card",
    "ModelRef": "liftwise.registry.models",
    "ModelRegistry": "liftwise.registry.models",
    "VersionInfo": "liftwise.registry.models",
    "describe_dataset": "liftwise.registry.tracking",
    "log_race": "liftwise.registry.tracking",
    "world_segments": "liftwise.registry.tracking",
}

__all__ = [
    "AuditEntry",
    "AuditLog",
    "ModelCard",
    "ModelRef",
    "ModelRegistry",
    "VersionInfo",
    "describe_dataset",
    "log_race",
    "world_segments",
]


def __getattr__(name: str) -> Any:
    """Import each export on first use, so ``import liftwise.registry`` stays cheap."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'liftwise.registry' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
