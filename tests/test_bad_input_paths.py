"""Bad paths on every command: a missing, empty or corrupt input and an output that is a
directory, sits under a file, is an input or has a suffix the writer would not honour. Each
is exit 2 with one line ``error: ...`` naming the path, no traceback, and no input touched."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liftwise.cli import run
from liftwise.errors import UserError
from liftwise.io import atomic_directory, atomic_path, check_output, write_frame
from liftwise.simulate import WorldConfig, simulate


@dataclass(frozen=True)
class Kit:
    """Small inputs every command can read: a world, an experiment table and a model."""

    root: Path
    world: Path
    table: Path
    table_parquet: Path
    model: Path
    exposures: Path
    outcomes: Path
    config: Path

    @property
    def manifest(self) -> Path:
        return self.world / "manifest.json"


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    root = tmp_path_factory.mktemp("kit")
    simulate(WorldConfig(world="fintech", units=2000, days=30, seed=3), root / "world")
    rng = np.random.default_rng(0)
    n = 600
    table = pd.DataFrame(
        {
            "unit_id": np.arange(n),
            "arm": rng.choice(["control", "offer"], n),
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
        }
    )
    table["converted"] = (rng.random(n) < 0.2 + 0.1 * (table["arm"] == "offer")).astype(int)
    table.to_csv(root / "exp.csv", index=False)
    table.to_parquet(root / "exp.parquet", index=False)
    train = f"train --data {root / 'exp.csv'} {TABLE_ARGS} --out {root / 'trained'} --no-track"
    assert run([*train.split(), "--learners", "t_lgbm", "--n-boot", "20"]) == 0
    fw = root / "fw"
    assert run(["experiment", "from-world", str(root / "world"), "--out", str(fw)]) == 0
    return Kit(
        root=root,
        world=root / "world",
        table=root / "exp.csv",
        table_parquet=root / "exp.parquet",
        model=root / "trained" / "model",
        exposures=fw / "exposures.parquet",
        outcomes=fw / "outcomes.parquet",
        config=fw / "experiment.yaml",
    )


def _fingerprint(root: Path) -> dict[str, str]:
    """Every file's bytes under ``root`` (the inputs must come out byte-identical)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def one_error_line(command: list[str], capsys: pytest.CaptureFixture[str], *named: Path) -> str:
    """Run ``command``: exit 2 and exactly one ``error:`` line naming every path in ``named``."""
    capsys.readouterr()
    assert run(command) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err and ".tmp" not in err, err
    for path in named:
        assert str(path) in err, err
    return err


# ------------------------------------------------------------------------------ output paths

TABLE_ARGS = "--treatment arm --control control --outcome converted --unit-id unit_id"


def argv(template: str, kit: Kit, **paths: Path) -> list[str]:
    """``template`` split on spaces, each ``{name}`` a path of ``kit`` or of ``paths``."""
    names = {field: str(getattr(kit, field)) for field in (*kit.__dataclass_fields__, "manifest")}
    names |= {name: str(path) for name, path in paths.items()}
    return [word.format(**names) for word in template.replace("TABLE_ARGS", TABLE_ARGS).split()]


@dataclass(frozen=True)
class Writer:
    """A command writing to ``{out}``; ``input`` names a kit path it must never overwrite."""

    name: str
    template: str
    directory: bool = False
    input: str | None = None
    suffix: str = ".csv"


WRITERS = [
    Writer(
        "score", "score --model {model} --data {table} --out {out} --unit-id unit_id", input="table"
    ),
    Writer(
        "decide",
        "decide --model {model} --data {table} --budget 50 --out {out} --unit-id unit_id",
        input="table",
    ),
    Writer(
        "ingest",
        "ingest --data {table_parquet} TABLE_ARGS --out {out}",
        input="table_parquet",
        suffix=".parquet",
    ),
    Writer("hillstrom", "hillstrom --data {table} --out {out}", suffix=".parquet"),
    Writer(
        "experiment assign",
        "experiment assign {table} --experiment e --arms a=0.5,control=0.5 --out {out}",
        input="table",
    ),
    Writer("features training-frame", "features training-frame {table} --out {out}", input="table"),
    Writer("validate --report", "validate {world} --report {out}", input="manifest"),
    Writer(
        "train",
        "train --data {table} TABLE_ARGS --out {out} --no-track",
        directory=True,
        input="table",
    ),
    Writer("simulate", "simulate --world fintech --units 500 --out {out}", directory=True),
    Writer(
        "experiment from-world",
        "experiment from-world {world} --out {out}",
        directory=True,
        input="world",
    ),
    Writer(
        "experiment analyze",
        "experiment analyze {exposures} {outcomes} --config {config} --out {out}",
        directory=True,
        input="outcomes",
    ),
    Writer("quickstart", "quickstart --out {out}", directory=True),
    Writer("pipeline run", "pipeline run --data-dir {out}", directory=True),
    Writer(
        "features build",
        "features build {world} --data-dir {out}",
        directory=True,
        input="world",
    ),
]


def _output_cases() -> list[tuple[Writer, str]]:
    cases = [(w, case) for w in WRITERS for case in ("wrong kind", "under a file")]
    cases += [(w, "an input") for w in WRITERS if w.input is not None]
    cases += [(w, "wrong suffix") for w in WRITERS if not w.directory]
    return cases


@pytest.mark.parametrize(
    "writer, case", _output_cases(), ids=lambda v: v if isinstance(v, str) else v.name
)
def test_bad_output_path_is_refused_naming_it(
    writer: Writer, case: str, kit: Kit, capsys: pytest.CaptureFixture[str]
) -> None:
    scratch = kit.root / "scratch"
    scratch.mkdir(exist_ok=True)
    (scratch / "a_file.txt").write_text("keep me\n")
    out = {
        "wrong kind": scratch / "a_file.txt" if writer.directory else scratch,
        "under a file": kit.table / "sub" / f"out{writer.suffix}",
        "an input": getattr(kit, writer.input or "root"),
        "wrong suffix": scratch / ("out.csv" if writer.suffix == ".parquet" else "out.txt"),
    }[case]
    before = _fingerprint(kit.root)
    one_error_line(argv(writer.template, kit, out=out), capsys, out)
    assert _fingerprint(kit.root) == before


# ---------------------------------------------------------------- the shared check and writers


def test_check_output_accepts_a_new_file_in_a_new_directory(tmp_path: Path) -> None:
    out = tmp_path / "new" / "deeper" / "scores.csv"
    assert check_output(out, inputs=(tmp_path / "in.csv",), suffixes=(".csv",)) == out


def test_check_output_refuses_replacing_a_file_inside_an_input_directory(tmp_path: Path) -> None:
    world = tmp_path / "world"
    world.mkdir()
    (world / "table.csv").write_text("a\n1\n")
    assert check_output(world / "extra.csv", inputs=(world,)) == world / "extra.csv"
    with pytest.raises(UserError, match=r"table\.csv, option --report: would overwrite part of"):
        check_output(world / "table.csv", inputs=(world,), option="--report")
    with pytest.raises(UserError, match="is the input"):
        check_output(tmp_path / "." / "world", kind="directory", inputs=(world,))


def test_writer_errors_name_the_target_not_the_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "taken.csv").mkdir()
    frame = pd.DataFrame({"a": [1]})
    with pytest.raises(UserError, match=r"taken\.csv: cannot write") as caught:
        write_frame(tmp_path / "taken.csv", frame)
    assert ".tmp" not in str(caught.value)
    (tmp_path / "file").write_text("x")
    for writer in (atomic_path, atomic_directory):
        with (
            pytest.raises(UserError, match=r"file/out: cannot write") as caught,
            writer(tmp_path / "file" / "out"),
        ):
            pass
        assert ".tmp" not in str(caught.value)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("name", ["t.csv", "t.CSV", "t.csv.gz", "t.parquet", "t.pq"])
def test_write_frame_writes_what_the_suffix_says(tmp_path: Path, name: str) -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    path = tmp_path / name
    write_frame(path, frame)
    lower = name.lower()
    back = pd.read_csv(path) if ".csv" in lower else pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, frame)
    if lower.endswith(".csv"):
        assert path.read_text().startswith("a,b\n")


def test_write_frame_refuses_an_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="must end in one of"):
        write_frame(tmp_path / "t.txt", pd.DataFrame({"a": [1]}))
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------- input files


@dataclass(frozen=True)
class Reader:
    """A command reading the input file ``{bad}`` under test (outputs go to ``{o}``)."""

    name: str
    template: str
    suffix: str = ".csv"


DECIDE = "decide --model {model} --budget 9 --out {o}/d.csv"
ANALYZE = "experiment analyze --out {o}/r"
READERS = [
    Reader("score --data", "score --model {model} --data {bad} --out {o}/s.csv"),
    Reader("decide --data", f"{DECIDE} --data {{bad}}"),
    Reader(
        "decide --guardrails",
        f"{DECIDE} --data {{table}} --unit-id unit_id --guardrails {{bad}}",
        suffix=".yaml",
    ),
    Reader(
        "decide --exposures", f"{DECIDE} --data {{table}} --unit-id unit_id --exposures {{bad}}"
    ),
    Reader("ingest", "ingest --data {bad} TABLE_ARGS --out {o}/i.pq"),
    Reader("hillstrom", "hillstrom --data {bad} --out {o}/h.pq"),
    Reader("train --data", "train --data {bad} TABLE_ARGS --out {o}/t --no-track"),
    Reader(
        "experiment assign",
        "experiment assign {bad} --experiment e --arms a=0.5,control=0.5 --out {o}/a.csv",
    ),
    Reader("experiment analyze outcomes", f"{ANALYZE} {{exposures}} {{bad}} --config {{config}}"),
    Reader("experiment analyze exposures", f"{ANALYZE} {{bad}} {{outcomes}} --config {{config}}"),
    Reader(
        "experiment analyze --config",
        f"{ANALYZE} {{exposures}} {{outcomes}} --config {{bad}}",
        suffix=".yaml",
    ),
    Reader(
        "experiment from-world --policy",
        "experiment from-world {world} --design policy --policy {bad} --out {o}/fw",
    ),
]

CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "missing": lambda p: None,
    "empty": lambda p: p.write_bytes(b""),
    "garbage": lambda p: p.write_bytes(bytes(range(256)) * 4),
    "header only": lambda p: p.write_text("unit_id,arm,converted\n"),
}


def _input_cases() -> list[tuple[Reader, str, str]]:
    cases = [(r, c, r.suffix) for r in READERS for c in CORRUPTIONS]
    return cases + [
        (r, c, ".parquet")
        for r in READERS
        if r.suffix == ".csv"
        for c in CORRUPTIONS
        if c != "header only"
    ]


@pytest.mark.parametrize(
    "reader, corruption, suffix",
    _input_cases(),
    ids=lambda v: v.name if isinstance(v, Reader) else v,
)
def test_bad_input_file_is_one_line_naming_it(
    reader: Reader,
    corruption: str,
    suffix: str,
    kit: Kit,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / f"input{suffix}"
    CORRUPTIONS[corruption](path)
    before = _fingerprint(kit.root)
    one_error_line(argv(reader.template, kit, bad=path, o=tmp_path / "o"), capsys, path)
    assert _fingerprint(kit.root) == before


@pytest.mark.parametrize(
    "template",
    [
        "serve --model {model} --budget 5 --port 0",
        "model list m",
        "train --world {world} --out {o}/t",
        "features online 1",
        "features materialize",
    ],
    ids=lambda t: " ".join(t.split()[:2]),
)
def test_a_data_dir_under_a_file_is_one_line(
    template: str, kit: Kit, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = kit.table / "d"
    command = [*argv(template, kit, o=tmp_path), "--data-dir", str(data_dir)]
    before = _fingerprint(kit.root)
    one_error_line(command, capsys, data_dir)
    assert _fingerprint(kit.root) == before
