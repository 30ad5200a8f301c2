"""Features: point-in-time unit features from raw tables, and experiment frames of worlds."""

from liftwise.features.offline import experiment_frame, unit_features

__all__ = ["experiment_frame", "unit_features"]
