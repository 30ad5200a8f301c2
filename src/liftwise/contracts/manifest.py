"""The world manifest: reading it with located errors (writing lives in liftwise.simulate)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from liftwise.errors import UserError

MANIFEST = "manifest.json"
WORLDS = ("fintech", "learning")


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Parse ``<path>/manifest.json``; a missing, broken or foreign manifest is a UserError."""
    path = Path(path)
    manifest_path = path / MANIFEST
    if not path.is_dir():
        raise UserError("no such directory", file=path)
    if not manifest_path.is_file():
        raise UserError("not a liftwise world: manifest.json is missing", file=path)
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(
            f"invalid JSON at line {err.lineno}: {err.msg}", file=manifest_path
        ) from None
    for key in ("world", "tables"):
        if key not in manifest:
            raise UserError(f"missing field '{key}'", file=manifest_path, column=key)
    if manifest["world"] not in WORLDS:
        raise UserError(f"unknown world {manifest['world']!r}", file=manifest_path, column="world")
    return manifest
