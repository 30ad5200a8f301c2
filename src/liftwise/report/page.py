"""The page shell: one Jinja2 template (head, stylesheet, header, sections, footer) that
every HTML report fills with typed content blocks, autoescaped.

Pages build blocks, not HTML: text is escaped by the template; the few inline marks a
sentence needs (bold, code) go through :func:`markup`, which escapes every value put in.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import ClassVar

import jinja2
from markupsafe import Markup

from liftwise import __version__
from liftwise.report.figure import Plot
from liftwise.report.table import Table

SHELL_MARKER = "liftwise-report"  # the <body> class and generator tag of every shell page


def markup(template: str, *values: object) -> Markup:
    """Trusted ``template`` (``str.format`` syntax, inline tags) with escaped ``values``."""
    return Markup(template).format(*values)


@dataclass(frozen=True)
class Paragraph:
    """A paragraph: plain text (escaped) or :func:`markup`."""

    text: str | Markup
    block: ClassVar[str] = "paragraph"


@dataclass(frozen=True)
class Bullets:
    items: Sequence[str]
    block: ClassVar[str] = "bullets"


@dataclass(frozen=True)
class Facts:
    """Labelled values (a definition list); empty values are left out."""

    items: Sequence[tuple[str, str]]
    block: ClassVar[str] = "facts"


@dataclass(frozen=True)
class Live:
    """A region a live page's script fills in (``id`` names it), showing ``placeholder``
    until then: the shell lays it out like any block, the script writes its content."""

    id: str
    placeholder: str
    block: ClassVar[str] = "live"


Block = Paragraph | Bullets | Facts | Table | Plot | Live


@dataclass(frozen=True)
class Section:
    """A heading (``level`` 2 or 3) and its blocks, in order."""

    title: str
    blocks: Sequence[Block] = field(default_factory=tuple)
    level: int = 2


def plot_sections(images: dict[str, bytes]) -> list[Section]:
    """One section per figure, titled (and alt-texted) by its name."""
    return [Section(name, [Plot(name, png)]) for name, png in images.items()]


def generated_time() -> dt.datetime:
    """Now (UTC), or ``SOURCE_DATE_EPOCH`` when set, so a rebuild can be byte-identical."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if epoch.isdigit():
        return dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC)
    return dt.datetime.now(dt.UTC)


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("liftwise.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt field fails, never renders empty
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_page(
    title: str,
    sections: Sequence[Section],
    *,
    intro: Sequence[Block] = (),
    note: str | None = None,
    generated_at: dt.datetime | None = None,
    script: str | None = None,
) -> str:
    """A self-contained HTML page: ``title``, the ``intro`` blocks, the ``sections`` and a
    footer with ``note``, the liftwise version and the generation time (UTC). ``script``
    is trusted JavaScript (a file of the package, never data) run at the end of the body:
    a live page's polling code, which fills its :class:`Live` blocks."""
    if script is not None and "</script" in script.lower():
        raise ValueError("a page script cannot contain '</script'")
    when = (generated_at or generated_time()).astimezone(dt.UTC)
    return (
        _environment()
        .get_template("page.html.j2")
        .render(
            title=title,
            intro=intro,
            sections=sections,
            note=note,
            version=__version__,
            generated=when.strftime("%Y-%m-%d %H:%M UTC"),
            marker=SHELL_MARKER,
            script=Markup(script) if script is not None else None,
        )
    )
