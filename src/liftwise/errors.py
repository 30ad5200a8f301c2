"""User-facing errors: one line that names the file, column, row or option at fault.

The CLI turns any :class:`UserError` into that single line and exit status 2, so every
stage raises these (never bare ``ValueError``) for problems the user can fix. Library code
names its own parameter (``parameter="validation_fraction"``), never a command-line flag;
the CLI renders the parameter as the flag of the command that ran (``--validation-fraction``).
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem in the user's input or arguments, reported without a traceback."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        column: str | None = None,
        row: int | None = None,
        option: str | None = None,
        parameter: str | None = None,
    ) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.column = column
        self.row = row
        self.option = option
        self.parameter = parameter
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """Render ``file: column 'c', row r: message`` with whichever parts are known."""
        where = []
        if self.file is not None:
            where.append(self.file)
        if self.option is not None:
            where.append(f"option {self.option}")
        elif self.parameter is not None:
            where.append(f"parameter {self.parameter}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        if self.row is not None:
            where.append(f"row {self.row}")
        prefix = ": ".join([", ".join(where)]) + ": " if where else ""
        return f"{prefix}{self.message}"

    def for_option(self, option: str) -> UserError:
        """This error re-addressed to the command-line flag that set the parameter."""
        self.option = option
        self.args = (self.one_line(),)
        return self


class ParameterError(UserError, ValueError):
    """A bad argument to a library function, named by its parameter (``y``, ``treatment``).

    A :class:`UserError`, so the CLI prints it as one line and exits 2 (and may map the
    parameter to its flag), and a ``ValueError``, as scikit-learn's conventions promise
    the callers of estimators and metrics.
    """

    def __init__(self, message: str, *, parameter: str) -> None:
        super().__init__(message, parameter=parameter)
