"""Loaders that turn real experiment data into the common :class:`ExperimentFrame`."""

from liftwise.contracts.experiment import ExperimentFrame
from liftwise.ingest.experiment import (
    EncodingLimits,
    encode_like,
    load_experiment,
    read_experiment,
    read_table,
    resolve_unit_id,
    save_experiment,
)
from liftwise.ingest.hillstrom import load_hillstrom

__all__ = [
    "EncodingLimits",
    "ExperimentFrame",
    "encode_like",
    "load_experiment",
    "load_hillstrom",
    "read_experiment",
    "read_table",
    "resolve_unit_id",
    "save_experiment",
]
