"""The report shell: typed table cells, escaping, one page template for every HTML page
(the model card here; the race, experiment and quickstart pages in their own tests)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from liftwise.registry.card import (
    ConfidenceInterval,
    Graphic,
    GraphicsCollection,
    ModelCard,
    ModelDetails,
    PerformanceMetric,
    QuantitativeAnalysis,
    render_html,
    render_markdown,
)
from liftwise.report import (
    Column,
    Live,
    Paragraph,
    Plot,
    Section,
    Table,
    format_cell,
    markup,
    render_page,
)

SCRIPT = "<script>alert(1)</script>"
# A 1x1 PNG, enough for an inline image.
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@pytest.mark.parametrize(
    "value, column, shown",
    [
        (1234567.891, Column("profit", "money"), "1,234,568"),
        (-98765.4, Column("profit", "money"), "-98,765"),
        (12.345, Column("per unit", "money"), "12.35"),
        (0.0, Column("per unit", "money"), "0"),
        (float("nan"), Column("profit", "money"), ""),
        (None, Column("profit", "money"), ""),
        (np.float64("nan"), Column("x", "number"), ""),
        (0.123456, Column("x", "number"), "0.1235"),
        (123456.7, Column("x", "number"), "123,457"),
        (float("inf"), Column("x", "number"), "∞"),
        (12345, Column("n", "integer"), "12,345"),
        (0.0525, Column("share", "percent"), "5.25%"),
        ((-1500.0, 2500.5), Column("CI", "money", interval=True), "-1,500 .. 2,500"),
        ((0.01, np.nan), Column("CI", "number", interval=True), ""),
        (None, Column("CI", "number", interval=True), ""),
        ((-0.02, 0.031), Column("CI", "percent", interval=True), "-2% .. 3.1%"),
        (True, Column("passed", "flag"), "yes"),
        (np.bool_(False), Column("passed", "flag"), "no"),
        ("a < b", Column("name"), "a < b"),
    ],
)
def test_cells_are_written_by_their_column_kind(value, column, shown):
    assert format_cell(value, column) == shown


def test_an_interval_column_refuses_a_single_number():
    with pytest.raises(TypeError, match="'CI' holds \\(low, high\\) pairs"):
        format_cell(3.0, Column("CI", "number", interval=True))


def test_a_row_must_fill_every_column():
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        Table([Column("a"), Column("b"), Column("c")], [["x", "y"]])


def test_the_page_escapes_text_everywhere_and_keeps_trusted_markup(shell_page):
    table = Table([Column(SCRIPT), Column("profit", "money")], [[SCRIPT, float("nan")]])
    page = render_page(
        SCRIPT,
        [Section(SCRIPT, [table, Plot(SCRIPT, PIXEL, caption=SCRIPT)])],
        intro=[Paragraph(SCRIPT), Paragraph(markup("winner <b>{}</b>", SCRIPT))],
        note=SCRIPT,
    )
    assert "<script>" not in page
    # title and h1, section, header, cell, alt text, caption, two paragraphs, footer note
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 10
    assert "winner <b>&lt;script&gt;" in page  # the template's <b> stays, the value is escaped
    assert '<img alt="&lt;script&gt;alert(1)&lt;/script&gt;" src="data:image/png;base64,' in page
    assert '<td class="num"></td>' in page  # NaN money: an empty cell
    shell_page(page)


def test_the_footer_names_the_version_and_a_fixed_source_date(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    page = render_page("t", [])
    assert re.search(r"liftwise \S+ · generated 2026-01-01 00:00 UTC", page)
    assert page == render_page("t", [])  # same inputs, same bytes


def _card(name: str) -> ModelCard:
    metrics = [
        PerformanceMetric(
            type="Profit@K",
            value=1234567.0,
            confidence_interval=ConfidenceInterval(lower_bound=-2500.0, upper_bound=2.5e6),
            units=12000,
        ),
        PerformanceMetric(type="Qini", value=0.0123, arm="cashback", slice=f"segment={name}"),
    ]
    graphics = GraphicsCollection(collection=[Graphic(name="profit vs K", image="iVBORw0KGgo=")])
    return ModelCard(
        model_details=ModelDetails(name=name, overview=f"learner {name}"),
        quantitative_analysis=QuantitativeAnalysis(performance_metrics=metrics, graphics=graphics),
    )


def test_the_model_card_renders_in_the_shell_escaped_and_as_markdown_with_the_same_cells(
    shell_page,
):
    card = _card(SCRIPT)
    page = render_html(card)
    shell_page(page)
    assert "<script>" not in page and "segment=&lt;script&gt;" in page
    assert '<td class="num">1,234,567</td>' in page
    assert '<td class="num">-2,500 .. 2,500,000</td>' in page
    assert '<img alt="profit vs K" src="data:image/png;base64,iVBORw0KGgo=">' in page
    assert "Model Card Toolkit schema 0.0.2, mirrored by liftwise." in page
    markdown = render_markdown(card)
    assert "| Profit@K |  | all | 1,234,567 | -2,500 .. 2,500,000 | 12,000 |" in markdown
    assert f"| Qini | cashback | segment={SCRIPT} | 0.0123 |  |  |" in markdown


def test_a_live_page_has_its_regions_and_one_trusted_script(shell_page):
    page = render_page(
        "live", [Section("gates", [Live("gates", SCRIPT)])], script="document.title = 'x';"
    )
    shell_page(page)
    assert '<div class="live" id="gates"><p class="placeholder">&lt;script&gt;' in page
    assert page.count("<script>") == 1 and "document.title = 'x';\n</script>" in page
    assert "<script>" not in render_page("static", [])
    with pytest.raises(ValueError, match="cannot contain '</script'"):
        render_page("live", [], script="x = '</SCRIPT>'")
