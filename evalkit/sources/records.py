"""Record readers shared by the dataset loaders: every error names the file, line and field."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragctl.core.errors import require_extra
from ragctl.evalkit.errors import EvalError

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
TABLE_SUFFIXES = (*JSON_SUFFIXES, ".csv", ".parquet")


@dataclass
class RawDataset:
    """What a loader read, before queries without a relevant doc are dropped.

    Attributes:
        corpus: Doc id -> text (in file order).
        queries: Query id -> text (in file order).
        qrels: Query id -> doc id -> score (0 = judged not relevant).
        notes: Human-readable remarks (duplicates merged, conflicts resolved, ...).
    """

    corpus: dict[str, str] = field(default_factory=dict)
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def where(path: Path | str, line: int, unit: str = "line") -> str:
    """`corpus.jsonl, line 3` style location."""
    return f"{path}, {unit} {line}"


def iter_json_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, record) of a JSON lines file, or of a file holding one JSON array.

    Raises:
        EvalError: The file is unreadable, a line is not JSON, or a record is not an object.
    """
    try:
        with path.open("r", encoding="utf-8-sig") as stream:
            head = stream.read(1)
            while head and head.isspace():
                head = stream.read(1)
            stream.seek(0)
            if head == "[":
                yield from _json_array(path, stream.read())
                return
            for line_no, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                loc = where(path, line_no)
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise EvalError(
                        f"{loc}: invalid JSON ({exc.msg} at column {exc.colno})"
                    ) from exc
                if not isinstance(record, dict):
                    raise EvalError(f"{loc}: expected a JSON object, got {type(record).__name__}")
                yield loc, record
    except UnicodeDecodeError as exc:
        raise EvalError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise EvalError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _json_array(path: Path, text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvalError(
            f"{where(path, exc.lineno)}: invalid JSON ({exc.msg} at column {exc.colno})"
        ) from exc
    for index, record in enumerate(records, start=1):
        loc = where(path, index, "record")
        if not isinstance(record, dict):
            raise EvalError(f"{loc}: expected a JSON object, got {type(record).__name__}")
        yield loc, record


def iter_table_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(location, record) of a JSON lines, CSV or Parquet file, chosen by extension.

    Raises:
        EvalError: Unsupported extension, unreadable file, or a malformed record.
    """
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        yield from iter_json_records(path)
    elif suffix == ".csv":
        yield from _iter_csv(path)
    elif suffix == ".parquet":
        yield from _iter_parquet(path)
    else:
        raise EvalError(
            f"{path}: unsupported file type {suffix!r} (use {', '.join(TABLE_SUFFIXES)})"
        )


def _iter_csv(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as stream:
            reader = csv.DictReader(stream)
            start = 2  # line 1 is the header
            for record in reader:
                loc = where(path, start)
                start = reader.line_num + 1
                if None in record:
                    raise EvalError(f"{loc}: more values than header columns")
                yield loc, dict(record)
    except UnicodeDecodeError as exc:
        raise EvalError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise EvalError(f"{path}: malformed CSV ({exc})") from exc
    except OSError as exc:
        raise EvalError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _iter_parquet(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    require_extra("pyarrow", "parquet", f"reading the Parquet file {path}")
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise EvalError(f"cannot read Parquet file {path}: {exc}") from exc
    for index, record in enumerate(table.to_pylist(), start=1):
        yield where(path, index, "row"), record


def text_field(record: Mapping[str, Any], name: str, loc: str, *, required: bool = True) -> str:
    """A string field of a record (may be empty); None when optional and absent.

    Raises:
        EvalError: Missing when required, or not a string.
    """
    value = record.get(name)
    if value is None:
        if required:
            raise EvalError(f"{loc}: missing field '{name}'")
        return ""
    if not isinstance(value, str):
        raise EvalError(f"{loc}: field '{name}' must be a string, got {type(value).__name__}")
    return value


def nonempty_text(record: Mapping[str, Any], name: str, loc: str) -> str:
    """A required, non-blank string field, stripped.

    Raises:
        EvalError: Missing, not a string, or blank.
    """
    value = text_field(record, name, loc).strip()
    if not value:
        raise EvalError(f"{loc}: field '{name}' is empty")
    return value


def id_field(record: Mapping[str, Any], name: str, loc: str) -> str:
    """An id field (a non-empty string or an integer) as a string.

    Raises:
        EvalError: Missing, empty, or of another type.
    """
    value = record.get(name)
    if value is None:
        raise EvalError(f"{loc}: missing field '{name}'")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # integer ids read back as floats (CSV/Parquet through pandas)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise EvalError(
            f"{loc}: field '{name}' must be a string or an integer, got {type(value).__name__}"
        )
    text = str(value).strip()
    if not text:
        raise EvalError(f"{loc}: field '{name}' is empty")
    return text
