"""Declared parameter constraints: every numeric setting is range-checked by one rule.

A stage declares its settings once as a :class:`Parameters` model (pydantic ``Field``
constraints: ``gt``, ``ge``, ``lt``, ``le``; NaN and infinity are refused everywhere).
Building one with a bad value raises a :class:`~liftwise.errors.UserError` that names the
library's own parameter (``parameter="validation_fraction"``); the CLI renders that as
its flag (``--validation-fraction``), so library code never names flags.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from liftwise.errors import UserError


def parameter_error(err: ValidationError, *, file: str | None = None) -> UserError:
    """pydantic's first complaint as one line naming the parameter (its top-level field)."""
    first = err.errors()[0]
    location = [str(part) for part in first["loc"]]
    message = str(first["msg"]).removeprefix("Value error, ")
    value = first.get("input")
    if location and not isinstance(value, dict | list | tuple):
        message = f"{message}, got {value!r}"
    return UserError(message, file=file, parameter=location[0] if location else None)


class Parameters(BaseModel):
    """Base of declared settings: frozen, no unknown names, finite numbers only."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise parameter_error(err) from None
