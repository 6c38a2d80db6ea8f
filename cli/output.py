"""Plain-text tables and lines for the terminal, and JSON for scripts (the CLI's output layer).

Tables fit `WIDTH` (80) columns: a column marked to wrap (free text) is narrowed and wrapped
onto more lines; otherwise the least useful columns (named by the caller, in order) are
dropped, and a note says which. `--json` output goes through `emit_json`: only JSON on stdout.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from typing import Any

import click

WIDTH = 80
_GAP = 2
_MIN_WRAP = 16


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    width: int | None = WIDTH,
    wrap: Sequence[str] = (),
    drop: Sequence[str] = (),
) -> str:
    """Left-aligned text columns, numbers right-aligned, with a rule under the header.

    Args:
        headers: Column names.
        rows: Cells (numbers are right-aligned when a whole column is numeric).
        width: Fit into this many characters (None: no limit).
        wrap: Columns that may be narrowed and wrapped onto several lines (free text).
        drop: Columns to leave out, first to last, while the table is still too wide.
    """
    columns = list(range(len(headers)))
    cells = [[_cell(v) for v in row] for row in rows]
    dropped: list[str] = []
    while True:
        widths = _widths(headers, cells, columns)
        limits = _fit(headers, widths, columns, wrap, width)
        if limits is not None:
            break
        left = [name for name in drop if name in headers and headers.index(name) in columns]
        if not left:
            limits = widths  # nothing more to drop: print it as it is
            break
        columns.remove(headers.index(left[0]))
        dropped.append(left[0])
    numeric = {
        i: bool(rows) and all(isinstance(row[i], (int, float)) for row in rows) for i in columns
    }

    def lines_of(row: Sequence[str]) -> list[str]:
        parts = {i: textwrap.wrap(row[i], limits[i]) or [""] for i in columns}
        height = max(len(p) for p in parts.values())
        out = []
        for n in range(height):
            line = [
                (parts[i][n] if n < len(parts[i]) else "").rjust(limits[i])
                if numeric[i]
                else (parts[i][n] if n < len(parts[i]) else "").ljust(limits[i])
                for i in columns
            ]
            out.append((" " * _GAP).join(line).rstrip())
        return out

    text = [(" " * _GAP).join(headers[i].ljust(limits[i]) for i in columns).rstrip()]
    text.append((" " * _GAP).join("-" * limits[i] for i in columns))
    for row in cells:
        text.extend(lines_of(row))
    if dropped:
        text.append(f"({', '.join(dropped)} left out to fit {width} columns; --wide shows all)")
    return "\n".join(text)


def _widths(headers: Sequence[str], cells: list[list[str]], columns: list[int]) -> dict[int, int]:
    return {i: max([len(headers[i]), *(len(row[i]) for row in cells)]) for i in columns}


def _fit(
    headers: Sequence[str],
    widths: dict[int, int],
    columns: list[int],
    wrap: Sequence[str],
    width: int | None,
) -> dict[int, int] | None:
    """Column widths that fit `width` (wrapping columns narrowed), or None if none do."""
    total = sum(widths.values()) + _GAP * (len(columns) - 1)
    if width is None or total <= width:
        return dict(widths)
    limits = dict(widths)
    wrapping = [i for i in columns if headers[i] in wrap]
    excess = total - width
    for i in sorted(wrapping, key=lambda i: -limits[i]):
        floor = max(_MIN_WRAP, len(headers[i]))
        cut = min(excess, limits[i] - floor)
        if cut > 0:
            limits[i] -= cut
            excess -= cut
    return limits if excess <= 0 else None


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return " ".join(str(value).split()) if isinstance(value, str) else str(value)


def shorten(text: str, width: int) -> str:
    """One line of at most `width` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def emit_json(data: Any) -> None:
    """`data` as indented JSON on stdout: the only thing a `--json` command prints there."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)
