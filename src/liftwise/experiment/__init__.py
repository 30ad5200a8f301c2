"""The experimentation engine: assignment, analysis and the experiment report.

- :mod:`assign`: deterministic salted hashing, arm weights and coverage, holdout, layers.
- :mod:`config`: the typed analysis config (metrics, guardrails, segments, profit).
- :mod:`data`, :mod:`aggregate`, :mod:`analyze`, :mod:`report`: exposures + outcomes in,
  ``summary.json`` and ``report.html`` out; every statistic comes from the pure core
  :mod:`liftwise.stats` (docs/experiments.md).
- :mod:`world`: a synthetic world's campaign as ready-to-analyse files.

Exports load on first use, so importing one module (``assign`` for serving, say) does not
pull in matplotlib.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "AnalysisConfig": "liftwise.experiment.config",
    "load_config": "liftwise.experiment.config",
    "parse_config": "liftwise.experiment.config",
    "Design": "liftwise.experiment.assign",
    "assign_units": "liftwise.experiment.assign",
    "bucket": "liftwise.experiment.assign",
    "buckets": "liftwise.experiment.assign",
    "uniformity_check": "liftwise.experiment.assign",
    "ExperimentAnalysis": "liftwise.experiment.analyze",
    "analyze_files": "liftwise.experiment.analyze",
    "analyze_tables": "liftwise.experiment.analyze",
    "write_report": "liftwise.experiment.report",
    "world_experiment": "liftwise.experiment.world",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'liftwise.experiment' has no attribute {name!r}")


__all__ = sorted(_LAZY)
