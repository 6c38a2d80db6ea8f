"""An evaluation result: one row per dim / pipeline mode / baseline, with a JSON round trip."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ragctl.evalkit.errors import EvalError

SCHEMA = "ragctl.evalkit.report/1"

EXACT = "exact"
TWO_STAGE = "two-stage"
SINGLE_STAGE = "single-stage"
BM25 = "bm25"
SPARSE = "sparse"  # the store's BM25 lexical vectors, through the production path
HYBRID = "hybrid"  # dense two-stage and sparse, fused in one store query
# With several fusions tried, `hybrid` is the best of them on this set and `hybrid-default`
# (kind hybrid) the first, untuned one: the pair shows what tuning on this set bought.
HYBRID_DEFAULT = "hybrid-default"
ROW_KINDS: tuple[str, ...] = (EXACT, TWO_STAGE, SINGLE_STAGE, SPARSE, HYBRID, BM25)
PER_QUERY_KEYS: tuple[str, ...] = ("ndcg@10", "recall@10")
"""The metrics kept per query in a report (for paired tests and per-query wins and losses)."""


def per_query_values(
    per_query: Mapping[str, Mapping[str, float]], keys: Sequence[str] = PER_QUERY_KEYS
) -> dict[str, dict[str, float]]:
    """The `keys` of each query's metrics, rounded for storage (1e-6 is far below noise)."""
    return {
        qid: {k: round(values[k], 6) for k in keys if k in values}
        for qid, values in per_query.items()
    }


@dataclass
class RunRow:
    """Metrics of one way of retrieving.

    Attributes:
        name: Column label: the dim for exact rows (`"384"`), else the kind (`"two-stage"`).
        kind: `exact`, `two-stage`, `single-stage`, `sparse`, `hybrid` or `bm25`.
        dim: Vector size used for ranking (exact rows; the full dim for pipeline rows).
        metrics: Metric key (`ndcg@10`) -> mean value.
        seconds: Search plus scoring time of this row (encoding and indexing are in timings).
        params: How it ran (shortlist size and dim, hits per query, BM25 settings, ...).
        per_query: Query id -> `PER_QUERY_KEYS` values (empty in reports written before).
    """

    name: str
    kind: str
    dim: int | None
    metrics: dict[str, float]
    seconds: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)

    def query_values(self, metric: str) -> dict[str, float]:
        """Query id -> this row's `metric` (empty when the row has no per-query values)."""
        return {q: v[metric] for q, v in self.per_query.items() if metric in v}

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "name": self.name,
            "kind": self.kind,
            "dim": self.dim,
            "metrics": dict(self.metrics),
            "seconds": self.seconds,
            "params": dict(self.params),
            "per_query": {q: dict(v) for q, v in self.per_query.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRow:
        """Inverse of `to_dict`."""
        kind = str(data["kind"])
        if kind not in ROW_KINDS:
            raise EvalError(f"unknown row kind {kind!r} (known: {', '.join(ROW_KINDS)})")
        dim = data.get("dim")
        return cls(
            name=str(data["name"]),
            kind=kind,
            dim=None if dim is None else int(dim),
            metrics={str(k): float(v) for k, v in dict(data["metrics"]).items()},
            seconds=float(data.get("seconds", 0.0)),
            params=dict(data.get("params") or {}),
            per_query={
                str(q): {str(k): float(x) for k, x in dict(v).items()}
                for q, v in dict(data.get("per_query") or {}).items()
            },
        )


@dataclass
class EvalReport:
    """Everything one evaluation measured.

    Attributes:
        model: Model id or path as given (`default` = packaged all-MiniLM-L6-v2).
        dataset: Dataset name.
        split: Qrels split.
        full_dim: The model's full embedding size.
        sizes: `queries`, `corpus`, `relevant_pairs`, `dropped_queries`, `chunks`.
        rows: One per exact dim, pipeline mode and baseline, in column order.
        timings: Seconds per stage (`encode_corpus`, `encode_queries`, `ingest`, ..., `total`).
        config: Metric cut-offs, shortlist, chunking, device and other settings used.
        notes: Remarks from loading and running.
        created_at: ISO timestamp (UTC).
        queries: Query id -> text of the evaluated queries (for per-query wins and losses).
    """

    model: str
    dataset: str
    split: str
    full_dim: int | None
    sizes: dict[str, int]
    rows: list[RunRow]
    timings: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    queries: dict[str, str] = field(default_factory=dict)

    def row(self, name: str) -> RunRow | None:
        """The row named `name` (`"384"`, `"two-stage"`, `"bm25"`), or None."""
        return next((r for r in self.rows if r.name == name), None)

    def exact_rows(self) -> list[RunRow]:
        """Exact rows, largest dim first."""
        rows = [r for r in self.rows if r.kind == EXACT]
        return sorted(rows, key=lambda r: -(r.dim or 0))

    def full_row(self) -> RunRow | None:
        """The exact row at the model's full dim."""
        return next((r for r in self.exact_rows() if r.dim == self.full_dim), None)

    def metric_keys(self) -> list[str]:
        """Metric keys in the order of the first row, then any others."""
        keys: list[str] = []
        for row in self.rows:
            keys.extend(k for k in row.metrics if k not in keys)
        return keys

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (see `SCHEMA`)."""
        return {
            "schema": SCHEMA,
            "model": self.model,
            "dataset": self.dataset,
            "split": self.split,
            "full_dim": self.full_dim,
            "sizes": dict(self.sizes),
            "rows": [r.to_dict() for r in self.rows],
            "timings": dict(self.timings),
            "config": self.config,
            "notes": list(self.notes),
            "created_at": self.created_at,
            "queries": dict(self.queries),
        }

    def summary(self) -> EvalReport:
        """This report without its per-query values (for the registry; files keep them)."""
        rows = [replace(r, per_query={}) for r in self.rows]
        return replace(self, rows=rows, queries={})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalReport:
        """Inverse of `to_dict`.

        Raises:
            EvalError: Another schema, or a missing or malformed field.
        """
        schema = data.get("schema")
        if schema != SCHEMA:
            raise EvalError(f"not an evalkit report (schema {schema!r}, expected {SCHEMA!r})")
        try:
            full_dim = data.get("full_dim")
            return cls(
                model=str(data["model"]),
                dataset=str(data["dataset"]),
                split=str(data["split"]),
                full_dim=None if full_dim is None else int(full_dim),
                sizes={str(k): int(v) for k, v in dict(data["sizes"]).items()},
                rows=[RunRow.from_dict(r) for r in data["rows"]],
                timings={str(k): float(v) for k, v in dict(data.get("timings") or {}).items()},
                config=dict(data.get("config") or {}),
                notes=[str(n) for n in data.get("notes") or []],
                created_at=str(data.get("created_at", "")),
                queries={str(k): str(v) for k, v in dict(data.get("queries") or {}).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EvalError(f"malformed evalkit report: {exc!r}") from exc

    def to_json(self) -> str:
        """Indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def save_report(report: EvalReport, path: Path) -> Path:
    """Write `report` as JSON to `path` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.to_json() + "\n", encoding="utf-8")
    return path


def load_report(path: Path) -> EvalReport:
    """Read a report written by `save_report`.

    Raises:
        EvalError: The file is missing, not JSON, or not an evalkit report.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvalError(f"cannot read report {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise EvalError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise EvalError(f"{path}: not an evalkit report (a JSON object is expected)")
    try:
        return EvalReport.from_dict(data)
    except EvalError as exc:
        raise EvalError(f"{path}: {exc}") from exc
