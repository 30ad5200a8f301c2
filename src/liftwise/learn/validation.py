"""Input validation shared by the learners and the metrics, on scikit-learn's validators.

scikit-learn's ``check_array`` / ``column_or_1d`` / ``check_consistent_length`` do the
checking (shape, dtype, NaN and inf, empty input, equal lengths); this module only names
the parameter at fault: every failure is a :class:`~liftwise.errors.ParameterError` (a
``UserError`` and a ``ValueError``) with the first line of scikit-learn's message. The arm
codes are checked here once, for the learners and the metrics alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.utils.validation import check_array, check_consistent_length, column_or_1d

from liftwise.errors import ParameterError


def _named(parameter: str, check: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a scikit-learn validator; its ValueError (or TypeError for a scalar) becomes a
    one-line ParameterError naming ``parameter``."""
    try:
        return check(*args, **kwargs)
    except (ValueError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0].rstrip(":")
        raise ParameterError(first_line, parameter=parameter) from None


def check_vector(values: object, parameter: str, *, allow_nan: bool = False) -> np.ndarray:
    """A non-empty 1-d float64 array (a column vector (n, 1) is raveled, as scikit-learn
    does for ``y``), finite unless ``allow_nan``."""
    vector = _named(parameter, column_or_1d, values, dtype=np.float64, input_name=parameter)
    return _named(
        parameter,
        check_array,
        vector,
        ensure_2d=False,
        dtype=np.float64,
        ensure_all_finite="allow-nan" if allow_nan else True,
        input_name=parameter,
    )


def check_matrix(values: object, parameter: str, *, allow_nan: bool = False) -> np.ndarray:
    """A float64 array of shape (n, k), k >= 1, finite unless ``allow_nan``."""
    return _named(
        parameter,
        check_array,
        values,
        dtype=np.float64,
        ensure_all_finite="allow-nan" if allow_nan else True,
        input_name=parameter,
    )


def check_vector_or_matrix(values: object, parameter: str) -> np.ndarray:
    """A finite float64 array of shape (n,) or (n, k): a score per unit, or per unit and arm."""
    return _named(
        parameter,
        check_array,
        values,
        ensure_2d=False,
        dtype=np.float64,
        input_name=parameter,
    )


def check_arm_codes(treatment: object, parameter: str = "treatment") -> np.ndarray:
    """Integer arm codes >= 0 (0 = control, 1..K the arms) as int64; booleans and floats
    holding whole numbers are accepted."""
    codes = _named(parameter, column_or_1d, treatment, input_name=parameter)
    if codes.dtype == bool:
        codes = codes.astype(np.int64)
    whole = np.issubdtype(codes.dtype, np.integer) or (
        np.issubdtype(codes.dtype, np.floating) and bool(np.all(np.mod(codes, 1) == 0))
    )
    if not whole:
        raise ParameterError(
            f"{parameter} must hold integer arm codes (0 = control)", parameter=parameter
        )
    codes = codes.astype(np.int64)
    if codes.size and codes.min() < 0:
        raise ParameterError(f"{parameter} codes must be >= 0 (0 = control)", parameter=parameter)
    return codes


def check_same_length(reference: str, length_of: dict[str, np.ndarray | None]) -> None:
    """Every array of ``length_of`` (None: not given) has as many rows as the first, named
    ``reference``; the first that differs is named in the error."""
    arrays = {name: array for name, array in length_of.items() if array is not None}
    expected = arrays[reference]
    for name, array in arrays.items():
        try:
            check_consistent_length(expected, array)
        except ValueError:
            raise ParameterError(
                f"{name} has {len(array)} entries but {reference} has {len(expected)}",
                parameter=name,
            ) from None
