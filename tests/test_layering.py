"""The stage order of docs/architecture.md, checked on every import in src/liftwise.

Each module's imports are read with ``ast`` (also those inside functions and under
``TYPE_CHECKING``: a lazy import is still a dependency). A stage may import only stages
before it, and no later than the stage the table's "imports" column allows; the CLI and
``python -m liftwise`` may import anything. ``liftwise.stats``, the statistics core,
imports nothing from liftwise but ``liftwise.errors``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"
ROOT = "liftwise"  # the top package itself: only ``__version__``, stage 0


@dataclass(frozen=True)
class Stage:
    """One row of docs/architecture.md's stage table."""

    order: float
    # the highest stage order it may import (the table's "imports" column, 0-k) ...
    highest_import: float | None = None
    # ... or, for the bottom stages, exactly which packages
    only: frozenset[str] | None = None


STAGES: dict[str, Stage] = {
    "errors": Stage(0, only=frozenset()),
    ROOT: Stage(0, only=frozenset()),
    "params": Stage(0, only=frozenset({"errors"})),
    "io": Stage(0, only=frozenset({"errors"})),
    "times": Stage(0, only=frozenset({"errors"})),
    "hashing": Stage(0, only=frozenset({"errors"})),
    "sqlite": Stage(0, only=frozenset({"errors"})),
    "postgres": Stage(0, only=frozenset()),
    "settings": Stage(0, only=frozenset({"errors", "io"})),  # io: check_output on data_dir
    "report": Stage(0, only=frozenset({ROOT})),  # the page shell: only ``__version__``
    "stats": Stage(0.5, only=frozenset({"errors"})),
    "contracts": Stage(1, highest_import=0),
    "simulate": Stage(2, highest_import=1),
    "ingest": Stage(2, highest_import=1),
    "features": Stage(3, highest_import=2),
    "learn": Stage(4, highest_import=1),
    "evaluate": Stage(5, highest_import=4),
    "registry": Stage(6, highest_import=5),
    "decide": Stage(7, highest_import=5),
    "rollout": Stage(7.5, highest_import=7),
    "serve": Stage(8, highest_import=7.5),
    "experiment": Stage(9, highest_import=5),
    "pipeline": Stage(10, highest_import=7),
}
SHELLS = {"cli", "__main__"}  # thin shells over every stage


def package_of(path: Path) -> str:
    """The stage a source file belongs to: the first name under ``liftwise``."""
    parts = path.relative_to(SOURCE / ROOT).with_suffix("").parts
    return ROOT if parts == ("__init__",) else parts[0]


def imported_stages(path: Path, source: Path = SOURCE) -> set[tuple[str, int]]:
    """(stage, line) of every liftwise import in one file, relative imports resolved
    against the file's package (``source`` is the directory holding ``liftwise``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = list(path.relative_to(source).parts[:-1])
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if module == ROOT:  # ``from liftwise import x``: x may be a stage itself
                modules = [
                    f"{ROOT}.{a.name}" if a.name in STAGES or a.name in SHELLS else ROOT
                    for a in node.names
                ]
            else:
                modules = [module]
        else:
            continue
        for module in modules:
            names = module.split(".")
            if names[0] == ROOT:
                found.add((names[1] if len(names) > 1 else ROOT, node.lineno))
    return found


def violation(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported``, or None when it may."""
    if importer in SHELLS or imported == importer:
        return None
    if imported not in STAGES:
        return f"{imported} is in no stage"
    stage, target = STAGES[importer], STAGES[imported]
    if stage.only is not None:
        allowed = ", ".join(sorted(stage.only)) or "nothing from liftwise"
        return None if imported in stage.only else f"may import only {allowed}"
    if target.order >= stage.order:
        return f"stage {stage.order} imports stage {target.order} (not before it)"
    if stage.highest_import is not None and target.order > stage.highest_import:
        return f"stage {stage.order} may import stages up to {stage.highest_import}"
    return None


def dotted(stage: str) -> str:
    return stage if stage == ROOT else f"{ROOT}.{stage}"


SOURCES = sorted((SOURCE / ROOT).rglob("*.py"))


def test_every_package_has_a_stage():
    packages = {package_of(path) for path in SOURCES}
    assert packages - set(STAGES) - SHELLS == set(), "add the package to docs/architecture.md"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SOURCE)))
def test_imports_follow_the_stage_order(path: Path):
    importer = package_of(path)
    problems = [
        f"{path.relative_to(SOURCE)}:{line} imports {dotted(imported)}: {why}"
        for imported, line in sorted(imported_stages(path))
        if (why := violation(importer, imported)) is not None
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("importer", "imported", "allowed"),
    [
        ("stats", "errors", True),
        ("stats", "io", False),
        ("stats", "experiment", False),
        ("report", "evaluate", False),  # the page shell knows no page
        ("evaluate", "report", True),
        ("experiment", "stats", True),
        ("registry", "stats", True),
        ("learn", "features", False),  # learn reads only contracts and below
        ("evaluate", "registry", False),  # a later stage
        ("simulate", "ingest", False),  # same stage
        ("cli", "pipeline", True),
    ],
)
def test_the_rule_itself(importer: str, imported: str, allowed: bool):
    """The checker can fail: a later, same-stage or out-of-range import is a violation."""
    assert (violation(importer, imported) is None) is allowed


def test_relative_and_lazy_imports_are_seen(tmp_path: Path):
    """A relative import and an import inside a function count as the stages they name."""
    package = tmp_path / ROOT / "stats"
    package.mkdir(parents=True)
    source = package / "bad.py"
    source.write_text(
        "from ..experiment import analyze\n"
        "from . import moments\n"
        "from liftwise import errors, __version__\n"
        "def late():\n    from liftwise.io import atomic_path\n",
        encoding="utf-8",
    )
    found = {name for name, _ in imported_stages(source, tmp_path)}
    assert found == {"experiment", "stats", "errors", ROOT, "io"}
