"""Base vs tuned: absolute and relative change of every metric in every shared column (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from ragctl.evalkit.errors import EvalError
from ragctl.evalkit.report import render_markdown_table, render_table
from ragctl.evalkit.results import EvalReport


@dataclass(frozen=True)
class MetricDelta:
    """One metric in one column of two reports.

    Attributes:
        column: Row name in the reports (`"384"`, `"two-stage"`, `"bm25"`).
        metric: Metric key (`ndcg@10`).
        base: Value in the base report.
        tuned: Value in the tuned report.
    """

    column: str
    metric: str
    base: float
    tuned: float

    @property
    def absolute(self) -> float:
        """tuned - base."""
        return self.tuned - self.base

    @property
    def relative(self) -> float | None:
        """(tuned - base) / base, or None when base is 0."""
        return None if self.base == 0 else (self.tuned - self.base) / self.base


@dataclass(frozen=True)
class Comparison:
    """Every shared (column, metric) of two reports."""

    base: EvalReport
    tuned: EvalReport
    deltas: list[MetricDelta]
    warnings: list[str]

    def columns(self) -> list[str]:
        """Shared columns in the tuned report's order."""
        return list(dict.fromkeys(d.column for d in self.deltas))

    def get(self, column: str, metric: str) -> MetricDelta | None:
        """The delta of one metric in one column, or None."""
        return next((d for d in self.deltas if d.column == column and d.metric == metric), None)


def compare_reports(base: EvalReport, tuned: EvalReport) -> Comparison:
    """Compare two reports column by column (columns only one report has are skipped).

    Raises:
        EvalError: The reports share no column and metric.
    """
    warnings: list[str] = []
    if (base.dataset, base.split) != (tuned.dataset, tuned.split):
        warnings.append(
            f"different datasets: base {base.dataset} [{base.split}], "
            f"tuned {tuned.dataset} [{tuned.split}]"
        )
    elif base.sizes.get("queries") != tuned.sizes.get("queries") or base.sizes.get(
        "corpus"
    ) != tuned.sizes.get("corpus"):
        warnings.append("different dataset sizes: the numbers are not directly comparable")
    deltas = []
    for row in tuned.rows:
        other = base.row(row.name)
        if other is None:
            continue
        for metric, value in row.metrics.items():
            if metric in other.metrics:
                deltas.append(MetricDelta(row.name, metric, other.metrics[metric], value))
    if not deltas:
        raise EvalError("the two reports share no column (dim, pipeline, bm25) and metric")
    return Comparison(base, tuned, deltas, warnings)


def _rel(delta: MetricDelta) -> str:
    rel = delta.relative
    return "n/a" if rel is None else f"{rel * 100:+.1f}%"


def _grid(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    headers = ["column", "metric", "base", "tuned", "abs", "rel"]
    rows = [
        [d.column, d.metric, f"{d.base:.4f}", f"{d.tuned:.4f}", f"{d.absolute:+.4f}", _rel(d)]
        for column in comparison.columns()
        for d in comparison.deltas
        if d.column == column
    ]
    return headers, rows


def _title(comparison: Comparison) -> str:
    return (
        f"base {comparison.base.model} vs tuned {comparison.tuned.model} on "
        f"{comparison.tuned.dataset} [{comparison.tuned.split}]"
    )


def format_comparison(comparison: Comparison) -> str:
    """Terminal table: column, metric, base, tuned, absolute and relative change."""
    headers, rows = _grid(comparison)
    lines = [_title(comparison), *(f"warning: {w}" for w in comparison.warnings), ""]
    return "\n".join([*lines, render_table(headers, rows)])


def format_comparison_markdown(comparison: Comparison) -> str:
    """Markdown: a summary table of ndcg@10 per column, then the full table."""
    headers, rows = _grid(comparison)
    out = [f"# {_title(comparison)}", ""]
    out += [f"> warning: {w}" for w in comparison.warnings]
    summary = [
        [d.column, f"{d.base:.4f}", f"{d.tuned:.4f}", f"{d.absolute:+.4f}", _rel(d)]
        for d in comparison.deltas
        if d.metric == "ndcg@10"
    ]
    if summary:
        out += ["## ndcg@10", ""]
        out += [render_markdown_table(["column", "base", "tuned", "abs", "rel"], summary), ""]
    out += ["## All metrics", "", render_markdown_table(headers, rows), ""]
    return "\n".join(out)
