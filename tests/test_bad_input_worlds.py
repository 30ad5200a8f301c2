"""A broken world is one located error in every stage that reads it, never a traceback.

Each command that takes a world directory (train --world, score, decide, features build,
experiment from-world, validate) meets each corruption of one small world: a dropped
(referenced) column, a mistyped column, a duplicated key, an empty table, a missing table
file, a missing manifest and a manifest with a mistyped field.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from liftwise.cli import run
from liftwise.simulate import WorldConfig, simulate

TABLE = "customers.parquet"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bad_input") / "world"
    simulate(WorldConfig(world="fintech", units=2_000, days=30, seed=1), out)
    return out


@pytest.fixture(scope="module")
def model(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the intact world (score and decide need one)."""
    out = tmp_path_factory.mktemp("bad_input_race")
    argv = ["train", "--world", str(world), "--out", str(out), "--no-track"]
    assert run([*argv, "--learners", "t_lgbm", "--n-boot", "5"]) == 0
    return out / "model"


def _rewrite(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(change(pq.read_table(path)), path)


def _cast_to_string(table: pa.Table) -> pa.Table:
    index = table.column_names.index("tenure_months")
    return table.set_column(index, "tenure_months", pc.cast(table["tenure_months"], pa.string()))


def _mistype_manifest(world: Path) -> None:
    manifest = json.loads((world / "manifest.json").read_text())
    manifest["campaign"]["decision_time"] = "soon"
    (world / "manifest.json").write_text(json.dumps(manifest))


# corruption -> (how to break a copy of the world, what the error line must name)
CORRUPTIONS: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "dropped column": (
        lambda w: _rewrite(w / TABLE, lambda t: t.drop_columns(["customer_id"])),
        (TABLE, "customer_id"),
    ),
    "wrong dtype": (
        lambda w: _rewrite(w / TABLE, _cast_to_string),
        (TABLE, "tenure_months"),
    ),
    "duplicated key": (
        lambda w: _rewrite(w / TABLE, lambda t: pa.concat_tables([t, t.slice(0, 1)])),
        (TABLE, "customer_id", "duplicate key"),
    ),
    "empty table": (
        lambda w: _rewrite(w / TABLE, lambda t: t.slice(0, 0)),
        (TABLE,),
    ),
    "missing table file": (lambda w: (w / TABLE).unlink(), (TABLE, "missing")),
    "missing manifest": (
        lambda w: (w / "manifest.json").unlink(),
        ("manifest.json is missing",),
    ),
    "corrupt manifest": (_mistype_manifest, ("manifest.json", "campaign.decision_time")),
}

COMMANDS: dict[str, Callable[[Path, Path, Path], list[str]]] = {
    "train --world": lambda w, m, o: [
        "train", "--world", str(w), "--out", str(o / "race"), "--no-track",
        "--learners", "t_lgbm", "--n-boot", "5",
    ],
    "score": lambda w, m, o: ["score", "--model", str(m), "--data", str(w), "--out", str(o / "s.parquet")],
    "decide": lambda w, m, o: [
        "decide", "--model", str(m), "--data", str(w), "--budget", "1000000",
        "--out", str(o / "d.parquet"),
    ],
    "features build": lambda w, m, o: ["features", "build", str(w), "--data-dir", str(o / "fs")],
    "experiment from-world": lambda w, m, o: ["experiment", "from-world", str(w), "--out", str(o / "x")],
    "validate": lambda w, m, o: ["validate", str(w)],
}  # fmt: skip


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_broken_world_is_one_located_error(
    command: str, corruption: str, world: Path, model: Path, tmp_path: Path, capsys
) -> None:
    broken = tmp_path / "world"
    shutil.copytree(world, broken)
    corrupt, names = CORRUPTIONS[corruption]
    corrupt(broken)
    capsys.readouterr()
    assert run(COMMANDS[command](broken, model, tmp_path)) == 2
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output
    if command == "validate" and "manifest" not in corruption:
        lines = output.splitlines()  # validate lists every violation, one per line
    else:
        lines = [line for line in captured.err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1, output  # (a progress bar may precede it)
    assert any(all(name in line for name in names) for line in lines), output
