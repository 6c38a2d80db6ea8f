"""What one search asks for: mode, fusion, payload filter and limits, validated in one place.

`SearchParams` is built once -- from an HTTP request or CLI flags (with the serving defaults
filled in), or by ragctl itself (evaluation, mining) -- and goes unchanged through the retriever
service to `VectorStore.search_batch`. Building it checks every rule on a search's parameters;
what depends on the collection searched (lexical vectors, shortlist dims) the store checks.
Invalid values raise pydantic's `ValidationError` (a `ValueError`) naming the field.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ragctl.core.limits import INT64_MAX, check_text

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover

    class StrEnum(str, Enum):
        """`enum.StrEnum` of Python 3.11: members are strings and print as their value."""

        def __str__(self) -> str:
            return str(self.value)


class SearchMode(StrEnum):
    """How a search ranks chunks."""

    DENSE = "dense"  # Matryoshka shortlist, then the full vector (or the full vector alone)
    SPARSE = "sparse"  # BM25 on the lexical vectors
    HYBRID = "hybrid"  # both branches, fused in one query


class FusionMethod(StrEnum):
    """How a hybrid search fuses its dense and sparse candidates."""

    RRF = "rrf"  # reciprocal rank fusion
    DBSF = "dbsf"  # distribution-based score fusion


MAX_K = 100
"""The most results one request (HTTP or CLI) may ask for; ragctl's own searches go beyond."""
MAX_SHORTLIST = 1000
"""The largest shortlist one request may ask for."""

Scalar = str | int | bool
PayloadFilter = Mapping[str, Any]
"""A payload filter, as JSON: every key is a condition and all must match (AND).

- `{"doc_id": "a.md"}`: equals; `{"metadata.lang": ["en", "de"]}`: equals any (OR);
- `{"metadata.year": {"gte": 2020, "lt": 2024}}`: a numeric range (`gt`, `gte`, `lt`, `lte`);
- `{"must_not": {"metadata.lang": "de", "doc_id": ["x.md"]}}`: negation: a chunk matching ANY of
  these conditions is left out (keys and conditions as above).

Keys: `doc_id`, `source`, `chunk_id` or `metadata.FIELD` (ranges: `metadata.FIELD` only).
"""

NEGATION_KEY = "must_not"
RANGE_OPERATORS = ("gt", "gte", "lt", "lte")
MAX_FILTER_CONDITIONS = 16
"""The most conditions one filter may hold, the negated ones included."""
_FILTER_FIELDS = ("doc_id", "source", "chunk_id")
_MAX_FILTER_VALUES = 100
_METADATA_KEY = re.compile(r"metadata\.[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class NumericRange:
    """Bounds of a numeric range condition (None: unbounded on that side)."""

    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


@dataclass(frozen=True)
class FilterCondition:
    """One validated condition on `key`: equals `values[0]` or any of `values`, or lies in
    `range` (exactly one of the two is set)."""

    key: str
    values: tuple[Scalar, ...] = ()
    range: NumericRange | None = None


@dataclass(frozen=True)
class ParsedFilter:
    """A validated filter: every `must` condition matches and no `must_not` condition does."""

    must: tuple[FilterCondition, ...] = ()
    must_not: tuple[FilterCondition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.must or self.must_not)


def parse_filter(payload_filter: PayloadFilter | None) -> ParsedFilter:
    """Validate a filter (see `PayloadFilter`); `ValueError` names the key and what is wrong."""
    if not payload_filter:
        return ParsedFilter()
    must = _conditions(payload_filter, negated=False)
    negated = payload_filter.get(NEGATION_KEY)
    must_not: list[FilterCondition] = []
    if negated is not None:
        if not isinstance(negated, Mapping) or not negated:
            raise ValueError(
                f"{NEGATION_KEY!r} takes a non-empty object of KEY: value(s) or range, got "
                f"{_short(negated)}"
            )
        must_not = _conditions(negated, negated=True)
    if len(must) + len(must_not) > MAX_FILTER_CONDITIONS:
        raise ValueError(
            f"a filter holds at most {MAX_FILTER_CONDITIONS} conditions, got "
            f"{len(must) + len(must_not)}"
        )
    return ParsedFilter(tuple(must), tuple(must_not))


def _conditions(payload_filter: Mapping[str, Any], *, negated: bool) -> list[FilterCondition]:
    conditions = []
    where = f"{NEGATION_KEY}." if negated else ""
    for key, value in payload_filter.items():
        if not isinstance(key, str):
            raise ValueError(f"filter keys are strings, got {_short(key)}")
        valid_text(key)
        if key == NEGATION_KEY:
            if negated:
                raise ValueError(f"{NEGATION_KEY!r} cannot be nested inside {NEGATION_KEY!r}")
            continue
        if key not in _FILTER_FIELDS and not _METADATA_KEY.fullmatch(key):
            raise ValueError(
                f"cannot filter on {where}{key!r}: allowed keys are {', '.join(_FILTER_FIELDS)} "
                f"or metadata.<field> (and {NEGATION_KEY!r} for negation)"
            )
        if isinstance(value, Mapping):
            conditions.append(FilterCondition(key, range=_range(f"{where}{key}", value)))
        else:
            conditions.append(FilterCondition(key, values=_values(f"{where}{key}", value)))
    return conditions


def _values(key: str, value: Any) -> tuple[Scalar, ...]:
    values = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    if not values:
        raise ValueError(f"filter {key!r} has an empty list of values")
    if len(values) > _MAX_FILTER_VALUES:
        raise ValueError(f"filter {key!r} has over {_MAX_FILTER_VALUES} values")
    for item in values:
        if isinstance(item, float) or not isinstance(item, (str, int, bool)):
            raise ValueError(
                f"filter {key!r}: values must be strings, integers or booleans, "
                f'got {_short(item)} (numeric ranges: {{"gte": 1.5}})'
            )
        if isinstance(item, str):
            valid_text(item)
        elif not isinstance(item, bool) and abs(item) > INT64_MAX:
            raise ValueError(f"filter {key!r}: {item} is outside the 64-bit range")
    return values


def _range(key: str, bounds: Mapping[str, Any]) -> NumericRange:
    if not key.removeprefix(f"{NEGATION_KEY}.").startswith("metadata."):
        raise ValueError(f"filter {key!r}: ranges apply to numeric metadata.<field> keys only")
    unknown = [op for op in bounds if op not in RANGE_OPERATORS]
    if unknown or not bounds:
        raise ValueError(
            f"filter {key!r}: a range takes {', '.join(RANGE_OPERATORS)} (at least one), got "
            f"{_short(dict(bounds))}"
        )
    for op, number in bounds.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ValueError(f"filter {key!r}: {op} takes a number, got {_short(number)}")
        if not math.isfinite(number) or abs(number) > INT64_MAX:
            raise ValueError(f"filter {key!r}: {op} {number} is not a finite 64-bit number")
    if "gt" in bounds and "gte" in bounds or "lt" in bounds and "lte" in bounds:
        raise ValueError(
            f"filter {key!r}: give one lower bound (gt or gte) and one upper (lt or lte)"
        )
    low = bounds.get("gt", bounds.get("gte"))
    high = bounds.get("lt", bounds.get("lte"))
    if low is not None and high is not None:
        closed = "gte" in bounds and "lte" in bounds
        if low > high or (low == high and not closed):
            raise ValueError(f"filter {key!r}: the range {_short(dict(bounds))} is empty")
    return NumericRange(**{op: float(n) for op, n in bounds.items()})


def _checked_filter(value: Any) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(f"a filter is an object of KEY: value(s), got {_short(value)}")
    parse_filter(value)
    return dict(value) if value else None


def valid_text(text: str) -> str:
    """`text`, unless it cannot be stored or tokenized (lone UTF-16 surrogates)."""
    return check_text(text)


def _short(value: Any, width: int = 60) -> str:
    shown = repr(value)
    return shown if len(shown) <= width else shown[: width - 3] + "..."


class FusionParams(BaseModel):
    """How a hybrid search fuses its dense and sparse candidates.

    Attributes:
        method: `rrf` (reciprocal rank fusion) or `dbsf` (distribution-based score fusion:
            each branch's scores normalized by their mean and spread, then summed).
            `search.fusion` in settings.
        rrf_k: The RRF rank constant (larger = flatter).
        dense_weight: Weight of the dense branch.
        sparse_weight: Weight of the sparse branch.
        candidates: How many candidates each branch brings to the fusion
            (`search.hybrid_candidates` in settings).
        rescore: Rerank the fused top `candidates` with the full dense vector (dense order
            over the fused pool) instead of returning the fused order.

    The weights mean different things per method, as Qdrant implements them:
      rrf: Qdrant's weighted RRF divides a branch's (1-based) rank by its weight,
        score = sum of 1 / (rrf_k - 1 + rank / weight): a larger weight lifts that branch's
        hits but flattens the differences between them (its order counts for less);
      dbsf: a weight is how many times the branch's normalized score is counted (the branch
        is prefetched that many times in the one query), so it must be a whole number 0-8.
    """

    model_config = ConfigDict(frozen=True)

    method: FusionMethod = Field(
        default=FusionMethod.DBSF, validation_alias=AliasChoices("method", "fusion")
    )
    rrf_k: int = Field(default=60, ge=1, le=10_000)
    dense_weight: float = Field(default=1.0, ge=0, le=100)
    sparse_weight: float = Field(default=2.0, ge=0, le=100)
    candidates: int = Field(
        default=100, ge=1, le=1000, validation_alias=AliasChoices("candidates", "hybrid_candidates")
    )
    rescore: bool = False

    @model_validator(mode="after")
    def _weights_fit_the_method(self) -> FusionParams:
        if self.dense_weight + self.sparse_weight <= 0:
            raise ValueError("at least one fusion weight must be > 0")
        if self.method is FusionMethod.DBSF:
            for weight in (self.dense_weight, self.sparse_weight):
                if weight != int(weight) or weight > 8:
                    raise ValueError(
                        f"dbsf weights count how often a branch is summed: whole numbers "
                        f"0-8, got {weight:g}"
                    )
        return self

    def describe(self) -> str:
        """`rrf k=60 dense 1 : sparse 2`, or `dbsf dense 1 : sparse 2`."""
        weights = f"dense {self.dense_weight:g} : sparse {self.sparse_weight:g}"
        dbsf = self.method is FusionMethod.DBSF
        name = f"dbsf {weights}" if dbsf else f"rrf k={self.rrf_k} {weights}"
        return name + (", rescored by full" if self.rescore else "")


class SearchParams(BaseModel):
    """Everything one search asks for, besides its query.

    Attributes:
        k: Results wanted.
        shortlist: Dense two-stage: candidates taken on the shortlist vector (>= k).
        shortlist_dim: The shortlist vector's dims; None = the collection's first.
        single_stage: Dense: search the full vector only, for comparison.
        filter: Payload filter (see `PayloadFilter`); None = everything.
        mode: dense, sparse or hybrid.
        fusion: How hybrid fuses its branches.
        score_threshold: Leave out hits scoring below this (the mode's own score: cosine
            for dense, BM25 for sparse, the fused score for hybrid); None = keep all k.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    k: int = Field(default=10, ge=1)
    shortlist: int = Field(default=100, ge=1)
    shortlist_dim: int | None = Field(default=None, ge=1)
    single_stage: bool = False
    filter: Annotated[PayloadFilter | None, PlainValidator(_checked_filter)] = None
    mode: SearchMode = SearchMode.DENSE
    fusion: FusionParams = FusionParams()
    score_threshold: float | None = Field(default=None, allow_inf_nan=False)

    @field_validator("shortlist")
    @classmethod
    def _shortlist_covers_k(cls, shortlist: int, info: ValidationInfo) -> int:
        k = info.data.get("k")
        if k is not None and shortlist < k:
            raise ValueError(f"shortlist ({shortlist}) must be >= k ({k})")
        return shortlist
