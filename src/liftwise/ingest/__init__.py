"""Loaders that turn real experiment data into the common :class:`ExperimentFrame`."""

from liftwise.contracts.experiment import ExperimentFrame
from liftwise.ingest.experiment import load_experiment, read_experiment, save_experiment
from liftwise.ingest.hillstrom import load_hillstrom

__all__ = [
    "ExperimentFrame",
    "load_experiment",
    "load_hillstrom",
    "read_experiment",
    "save_experiment",
]
