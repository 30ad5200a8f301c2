"""The report shell every HTML page of liftwise renders into (stage 0: imports nothing
from the application): the page template, typed content blocks, figures as inline PNG and
tables of typed columns (money with separators, percentages, intervals, no ``nan``).

The race report (``evaluate``), the model card (``registry``), the experiment report and
the quickstart report build their content as :class:`Section` s of blocks and call
:func:`render_page`; templates are package data (``templates/*.html.j2``).
"""

from liftwise.report.figure import Plot, figure_png
from liftwise.report.page import (
    SHELL_MARKER,
    Block,
    Bullets,
    Facts,
    Live,
    Paragraph,
    Section,
    markup,
    plot_sections,
    render_page,
)
from liftwise.report.table import Column, Table, format_cell, format_value

__all__ = [
    "SHELL_MARKER",
    "Block",
    "Bullets",
    "Column",
    "Facts",
    "Live",
    "Paragraph",
    "Plot",
    "Section",
    "Table",
    "figure_png",
    "format_cell",
    "format_value",
    "markup",
    "plot_sections",
    "render_page",
]
