"""The card as Markdown and as an HTML page of the report shell; both show the same table
cells (:func:`metric_table`, :func:`dataset_table`) and the same facts."""

from __future__ import annotations

import base64

from liftwise.registry.card.schema import ModelCard
from liftwise.report import (
    Block,
    Bullets,
    Column,
    Facts,
    Paragraph,
    Plot,
    Section,
    Table,
    render_page,
)


def metric_table(card: ModelCard) -> Table:
    """Every performance metric: type, arm, slice, value, 95% CI, units."""
    columns = [
        Column("metric"),
        Column("arm"),
        Column("slice"),
        Column("value", "number"),
        Column("95% CI", "number", interval=True),
        Column("units", "integer"),
    ]
    rows = [
        [
            m.type,
            m.arm or "",
            m.slice or "all",
            m.value,
            None
            if m.confidence_interval is None
            else (m.confidence_interval.lower_bound, m.confidence_interval.upper_bound),
            m.units,
        ]
        for m in card.quantitative_analysis.performance_metrics
    ]
    return Table(columns, rows)


def dataset_table(card: ModelCard) -> Table:
    """Every dataset: rows, content hash, feature-view versions, description."""
    columns = [
        Column("dataset"),
        Column("rows", "integer"),
        Column("sha256 (first 16)"),
        Column("feature views"),
        Column("description"),
    ]
    rows = [
        [
            d.name,
            d.rows,
            (d.sha256 or "")[:16],
            ", ".join(f"{k}@{v}" for k, v in d.feature_views.items()),
            d.description or "",
        ]
        for d in card.model_parameters.data
    ]
    return Table(columns, rows)


def _facts(card: ModelCard) -> list[tuple[str, list[tuple[str, str]]]]:
    """Model details and parameters as (section, [(label, text)]), for both renderers."""
    d, p = card.model_details, card.model_parameters
    sensitive = p.data[0].sensitive.sensitive_data if p.data else []
    return [
        (
            "Model details",
            [
                ("Name", d.name or ""),
                ("Version", f"{d.version.name or ''} ({d.version.date or 'unregistered'})"),
                ("Changes", d.version.diff or ""),
                ("Overview", d.overview or ""),
                ("Documentation", d.documentation or ""),
                ("Owners", ", ".join(o.name for o in d.owners)),
                ("Licence", ", ".join(x.identifier or x.custom_text or "" for x in d.licenses)),
                ("Model URI", d.path or ""),
                ("References", ", ".join(r.reference for r in d.references)),
            ],
        ),
        (
            "Model parameters",
            [
                ("Architecture", p.model_architecture or ""),
                ("Input", p.input_format or ""),
                ("Features", ", ".join(kv.key for kv in p.input_format_map)),
                ("Possibly sensitive features", ", ".join(sensitive)),
                ("Output", p.output_format or ""),
            ],
        ),
    ]


def _considerations_lists(card: ModelCard) -> list[tuple[str, list[str]]]:
    c = card.considerations
    return [
        ("Intended users", [u.description for u in c.users]),
        ("Use cases", [u.description for u in c.use_cases]),
        ("Limitations", [x.description for x in c.limitations]),
        ("Trade-offs", [x.description for x in c.tradeoffs]),
        (
            "Ethical considerations",
            [f"{r.name} Mitigation: {r.mitigation_strategy}" for r in c.ethical_considerations],
        ),
    ]


def _title(card: ModelCard) -> str:
    d = card.model_details
    return f"Model card: {d.name or 'unregistered'} v{d.version.name or '?'}"


def render_markdown(card: ModelCard, image_files: dict[str, str] | None = None) -> str:
    """The card as Markdown; ``image_files`` maps graphic names to image files beside it."""

    def table(shown: Table) -> list[str]:
        def line(cells: list[str]) -> str:
            escaped = (c.replace("|", "\\|").replace("\n", " ") for c in cells)
            return "| " + " | ".join(escaped) + " |"

        header = shown.header
        return [line(header), line(["---"] * len(header)), *map(line, shown.cells()), ""]

    lines = [f"# {_title(card)}", ""]
    for title, fields in _facts(card):
        lines += [f"## {title}", ""] + [f"- **{k}**: {v}" for k, v in fields if v] + [""]
    lines += ["### Datasets", "", *table(dataset_table(card))]
    lines += ["## Quantitative analysis", "", *table(metric_table(card))]
    for graphic in card.quantitative_analysis.graphics.collection:
        if image_files and graphic.name in image_files:
            lines += [f"![{graphic.name}]({image_files[graphic.name]})", ""]
    lines += ["## Considerations", ""]
    for label, items in _considerations_lists(card):
        lines += [f"### {label}", "", *(f"- {item}" for item in items), ""]
    lines.append(f"_Model Card Toolkit schema {card.schema_version}, mirrored by liftwise._")
    return "\n".join(lines) + "\n"


def render_html(card: ModelCard) -> str:
    """The card as one self-contained HTML page in the report shell, plots inline."""
    sections = [Section(title, [Facts(fields)]) for title, fields in _facts(card)]
    sections.append(Section("Datasets", [dataset_table(card)], level=3))
    graphics = card.quantitative_analysis.graphics
    quantitative: list[Block] = [metric_table(card)]
    if graphics.description:
        quantitative.append(Paragraph(graphics.description))
    quantitative += [
        Plot(g.name, base64.b64decode(g.image), caption=g.name) for g in graphics.collection
    ]
    sections.append(Section("Quantitative analysis", quantitative))
    sections.append(Section("Considerations"))
    sections += [
        Section(label, [Bullets(items)], level=3) for label, items in _considerations_lists(card)
    ]
    return render_page(
        _title(card),
        sections,
        note=f"Model Card Toolkit schema {card.schema_version}, mirrored by liftwise.",
    )
