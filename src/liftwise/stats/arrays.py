"""The element-wise convention every formula of :mod:`liftwise.stats` follows.

A statistic is a float or a NumPy array (one value per segment, say); inputs are read as
float64 arrays and 0-d results come back as plain floats, so one call analyses every
segment at once and a single comparison still prints as a number.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Array = np.ndarray | float


def float_array(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def scalar_or_array(value: np.ndarray) -> Array:
    """0-d results come back as plain floats, the rest as arrays."""
    return float(value) if np.ndim(value) == 0 else value
