"""Figures on a page: a matplotlib figure becomes PNG bytes once (the plot files beside a
report and the page use the same bytes) and is embedded as a ``data:`` URI, so every page
is one self-contained file."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # matplotlib comes with the learn extra; only its figures pass through here
    from matplotlib.figure import Figure

DPI = 110


def figure_png(figure: Figure) -> bytes:
    """``figure`` as PNG (110 dpi, tight box). Build figures with ``matplotlib.figure.Figure``,
    not pyplot: no global state and no display backend."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


@dataclass(frozen=True)
class Plot:
    """A PNG shown inline; ``name`` is its alt text, ``caption`` the line under it."""

    name: str
    png: bytes
    caption: str | None = None
    block: ClassVar[str] = "plot"

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")
