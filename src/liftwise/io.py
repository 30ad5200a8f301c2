"""Atomic file output and content hashing shared by every stage.

Nothing is half-written: writers produce a temporary sibling and rename it into place,
so a crash leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from liftwise.errors import UserError

PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "coerce_timestamps": "us",  # Feast's DuckDB offline store rejects nanoseconds
    "allow_truncated_timestamps": False,
    "write_statistics": True,
}


CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")
TABLE_SUFFIXES = CSV_SUFFIXES + PARQUET_SUFFIXES


def table_format(path: str | Path) -> Literal["csv", "parquet"] | None:
    """``csv`` or ``parquet`` by the file name's ending (any case), None for anything else."""
    name = Path(path).name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    return "parquet" if name.endswith(PARQUET_SUFFIXES) else None


def _one_of(suffixes: tuple[str, ...]) -> str:
    return suffixes[0] if len(suffixes) == 1 else f"one of {', '.join(suffixes)}"


def check_output(
    path: str | Path,
    *,
    kind: Literal["file", "directory"] = "file",
    inputs: Iterable[str | Path | None] = (),
    suffixes: tuple[str, ...] = (),
    option: str = "--out",
) -> Path:
    """Refuse, before any work, an output path that cannot be written or would destroy an
    input: a file output that is a directory (or a directory output that is a file), a path
    under a file, an unwritable parent, a suffix the writer would not honour, a path equal to
    one of ``inputs`` or an existing path inside an input directory (new files beside a
    world's tables are harmless; replacing one is not). One line naming path and option."""
    path = Path(path)
    if suffixes and not path.name.lower().endswith(suffixes):
        raise UserError(f"must end in {_one_of(suffixes)}", file=path, option=option)
    if kind == "file" and path.is_dir():
        raise UserError("is a directory, expected a file name", file=path, option=option)
    if kind == "directory" and path.exists() and not path.is_dir():
        raise UserError("is a file, expected a directory", file=path, option=option)
    parent = next(p for p in path.absolute().parents if p.exists())
    if not parent.is_dir():
        raise UserError(f"cannot write under {parent}: it is a file", file=path, option=option)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"cannot write: {parent} is not writable", file=path, option=option)
    target = path.resolve()
    for given in inputs:
        source = None if given is None else Path(given).resolve()
        if source is not None and target == source:
            raise UserError(f"is the input {given}; write elsewhere", file=path, option=option)
        if source is not None and source in target.parents and target.exists():
            raise UserError(f"would overwrite part of the input {given}", file=path, option=option)
    return path


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks so any size fits in memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def _default_file_mode() -> int:
    """0666 less the process umask, the mode ``open()`` would have given the file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def _named_errors(target: Path) -> Iterator[None]:
    """An OSError while writing ``target`` becomes one line naming ``target`` itself (never
    the temporary sibling the writer was using)."""
    try:
        yield
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise UserError(f"cannot write: {reason}", file=target) from None


def _make_parent(target: Path) -> None:
    with _named_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; rename it onto ``target`` on success."""
    target = Path(target)
    _make_parent(target)
    with _named_errors(target):
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
    tmp = Path(tmp_name)
    try:
        with _named_errors(target):
            tmp.chmod(_default_file_mode())  # mkstemp makes 0600; outputs are ordinary files
            yield tmp
            os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; on success it replaces ``target`` as a whole."""
    target = Path(target)
    _make_parent(target)
    with _named_errors(target):
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        with _named_errors(target):
            tmp.chmod(_default_file_mode() | 0o111)  # mkdtemp makes 0700
            yield tmp
            _replace_directory(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_directory(new: Path, target: Path) -> None:
    """Move ``new`` onto ``target``, keeping the old one aside until the swap is done."""
    if not target.exists():
        os.replace(new, target)
        return
    if not target.is_dir():
        raise NotADirectoryError(20, "a file is in the way", str(target))
    backup = target.with_name(f".{target.name}.old")
    shutil.rmtree(backup, ignore_errors=True)
    os.replace(target, backup)
    os.replace(new, target)
    shutil.rmtree(backup, ignore_errors=True)


def read_yaml_mapping(path: str | Path, *, option: str | None = None) -> dict[str, Any]:
    """The top-level mapping of a YAML settings file. A missing, empty, non-UTF-8 or invalid
    file, or one whose top level is not a mapping, is one UserError naming the file (an empty
    file is refused: it would silently mean "no settings")."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(
            "no such file" if not path.exists() else "not a file", file=path, option=option
        )
    try:
        text = path.read_text(encoding="utf-8")
        payload = yaml.safe_load(text)
    except UnicodeDecodeError:
        raise UserError("not a text (UTF-8) file", file=path, option=option) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"invalid YAML{where}", file=path, option=option) from None
    if payload is None:
        raise UserError("the file is empty", file=path, option=option)
    if not isinstance(payload, dict):
        raise UserError("expected a mapping of settings at the top level", file=path, option=option)
    return payload


def write_json(path: str | Path, payload: Any) -> None:
    """Write JSON atomically with sorted keys, so equal payloads give equal bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(path: str | Path, table: pa.Table) -> None:
    """Write one Arrow table as Parquet atomically with the project's options."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **PARQUET_OPTIONS)


class ParquetStream:
    """Append Arrow record batches to one Parquet file chunk by chunk (bounded memory).

    The file appears under its final name only when :meth:`close` succeeds.
    """

    def __init__(self, path: str | Path, schema: pa.Schema) -> None:
        self.path = Path(path)
        self.schema = schema
        self.rows = 0
        self._context = atomic_path(self.path)
        self._tmp = self._context.__enter__()
        self._writer = pq.ParquetWriter(self._tmp, schema, **PARQUET_OPTIONS)

    def write(self, table: pa.Table) -> None:
        table = table.select(self.schema.names).cast(self.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()
        self._context.__exit__(None, None, None)

    def abort(self) -> None:
        """Drop the partial file (called when generation fails midway)."""
        with contextlib.suppress(Exception):
            self._writer.close()
        self._tmp.unlink(missing_ok=True)


def write_frame(path: str | Path, frame: Any) -> None:
    """Write a DataFrame atomically as CSV (``.csv``, gzipped for ``.csv.gz``) or Parquet
    (``.parquet``, ``.pq``) by the path's ending; any other ending is refused, so a file's
    name never lies about its bytes."""
    path = Path(path)
    kind = table_format(path)
    if kind is None:
        raise UserError(f"must end in {_one_of(TABLE_SUFFIXES)}", file=path)
    with atomic_path(path) as tmp:
        if kind == "csv":
            gzip = path.name.lower().endswith(".gz")
            frame.to_csv(tmp, index=False, compression="gzip" if gzip else None)
        else:
            frame.to_parquet(tmp, index=False)
