"""Response bodies of the read-mostly routes the console (and apps) use: the model registry,
feedback statistics, eval reports, the retune status and what a key may do."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ModelOut(BaseModel):
    """One model version of the registry (without its eval reports; see `ModelDetail`)."""

    version: int
    ref: str = Field(description="`default`, a Hub id, a path, or `models/vN` (data dir).")
    parent: int | None
    status: str = Field(description="serving, candidate, rejected or retired (derived).")
    created_at: str
    base_model: str
    served_at: str | None = None
    gate: dict[str, Any] | None = Field(
        description="The promotion gate's decision: `promote`, `reason` (and `comparisons` "
        "when the gate recorded them)."
    )
    search: dict[str, Any] | None = Field(
        description="The search mode (and fusion) measured best for this version."
    )
    training: dict[str, Any] | None


class ServingProfileOut(BaseModel):
    """How the serving collection is searched by default."""

    physical: str
    model_version: int
    mode: str
    fusion: dict[str, Any]
    source: str = Field(description="tuned (retune measured it), settings or default.")


class ModelsResponse(BaseModel):
    """`GET /v1/models`: the registry as one collection sees it."""

    collection: str
    serving: int | None = Field(description="The version serving this collection.")
    history: list[int] = Field(
        description="Versions that served it, oldest first (rollback goes back through them)."
    )
    profile: ServingProfileOut | None = None
    models: list[ModelOut]


class GateLine(BaseModel):
    """One column the gate (or this view) compared: serving vs candidate (a gate's own
    comparisons keep their other fields: check, threshold, passed)."""

    model_config = {"extra": "allow"}

    column: str
    kind: str | None = None
    metric: str
    serving: float | None
    candidate: float | None
    delta: float | None
    test: dict[str, Any] | None = Field(
        default=None,
        description="Paired test on per-query values when the reports have them: gain, "
        "ci_low, ci_high (95% bootstrap), p_better, wins, losses, ties, n.",
    )


class ModelDetail(ModelOut):
    """`GET /v1/models/{version}`: one version with its eval reports and the gate's numbers."""

    evaluation: dict[str, Any] | None = Field(
        description="Eval reports stored at retune time: `serving` and `candidate` on the "
        "held-out queries (and `guard_*` on the guard set)."
    )
    gate_reason_lines: list[str] = Field(description="The gate's reason, one finding a line.")
    comparisons: list[GateLine] = Field(
        description="ndcg@10 of serving and candidate per compared column."
    )


class DayCount(BaseModel):
    """Judgements of one UTC day."""

    model_config = {"extra": "allow"}

    day: str
    relevant: int = 0
    not_relevant: int = 0


class FeedbackStatsResponse(BaseModel):
    """`GET /v1/feedback/stats`."""

    collection: str
    days: int
    total: int = Field(description="Judgements ever recorded for this collection.")
    by_label: dict[str, int]
    by_day: list[DayCount] = Field(description="The last `days` days, oldest first, zeros kept.")
    searches: int = Field(description="Searches logged in the last `days` days.")
    recent: list[dict[str, Any]] = Field(description="The 20 newest judgements, newest first.")


class ReportSummary(BaseModel):
    """One eval report the console can show."""

    id: str = Field(description="`registry/vN/ROLE` or `files/FOLDER`.")
    source: str
    title: str
    version: int | None
    role: str | None
    baseline: str | None = Field(description="The report a candidate's was compared with.")
    path: str | None
    model: str | None
    dataset: str | None
    split: str | None
    created_at: str | None
    queries: int | None
    rows: list[str | None]
    per_query: bool = Field(description="Its rows carry per-query values.")


class ReportsResponse(BaseModel):
    """`GET /v1/reports`."""

    folder: str = Field(description="The folder searched for report.json files.")
    reports: list[ReportSummary]


class ReportDetail(ReportSummary):
    """`GET /v1/reports/{id}`: the summary and the whole report."""

    report: dict[str, Any]


class RetuneStatusResponse(BaseModel):
    """`GET /v1/retune/status`."""

    collection: str
    status: dict[str, Any] | None = Field(
        description="The latest retune run (state running, finished, failed or interrupted; "
        "step, steps, result, error), or null when none ran."
    )


class AccessResponse(BaseModel):
    """`GET /v1/access`: what the key sent (or no key) may do here."""

    role: str | None = Field(description="The key's role, or null without a (known) key.")
    read: bool
    write: bool
    admin: bool
