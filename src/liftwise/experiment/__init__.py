"""The experimentation engine: assignment, analysis and the experiment report.

- :mod:`assign`: deterministic salted hashing, arm weights and coverage, holdout, layers.
- :mod:`stats`, :mod:`sequential`, :mod:`srm`, :mod:`multiple`, :mod:`segments`,
  :mod:`profit`: pure statistics over summary statistics (docs/experiments.md).
- :mod:`data`, :mod:`aggregate`, :mod:`analyze`, :mod:`report`: exposures + outcomes in,
  ``summary.json`` and ``report.html`` out.
- :mod:`world`: a synthetic world's campaign as ready-to-analyse files.
"""

from liftwise.experiment.analyze import ExperimentAnalysis, analyze_files, analyze_tables
from liftwise.experiment.assign import Design, assign_units, bucket, buckets, uniformity_check
from liftwise.experiment.config import AnalysisConfig, load_config, parse_config
from liftwise.experiment.report import write_report

__all__ = [
    "AnalysisConfig",
    "Design",
    "ExperimentAnalysis",
    "analyze_files",
    "analyze_tables",
    "assign_units",
    "bucket",
    "buckets",
    "load_config",
    "parse_config",
    "uniformity_check",
    "write_report",
]
