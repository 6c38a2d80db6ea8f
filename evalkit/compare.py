"""Base vs tuned: absolute and relative change of every metric in every shared column, the
paired significance of each column's ndcg@10 change, and the queries that lost most (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ragctl.evalkit.errors import EvalError
from ragctl.evalkit.report import render_markdown_table, render_table
from ragctl.evalkit.results import EvalReport
from ragctl.evalkit.significance import PairedTest, paired_test

TESTED_METRIC = "ndcg@10"


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
class QueryChange:
    """One query's ndcg@10 in both reports (for wins and losses)."""

    query_id: str
    text: str
    base: float
    tuned: float

    @property
    def delta(self) -> float:
        return self.tuned - self.base


@dataclass(frozen=True)
class Comparison:
    """Every shared (column, metric) of two reports, with paired tests where both reports
    have per-query values.

    Attributes:
        tests: Column -> the paired test of its ndcg@10 change.
        losses: Column -> its queries, biggest ndcg@10 loss first (those that lost only).
    """

    base: EvalReport
    tuned: EvalReport
    deltas: list[MetricDelta]
    warnings: list[str]
    tests: dict[str, PairedTest] = field(default_factory=dict)
    losses: dict[str, list[QueryChange]] = field(default_factory=dict)

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
    tests: dict[str, PairedTest] = {}
    losses: dict[str, list[QueryChange]] = {}
    for row in tuned.rows:
        other = base.row(row.name)
        mine = row.query_values(TESTED_METRIC)
        theirs = {} if other is None else other.query_values(TESTED_METRIC)
        shared = [q for q in theirs if q in mine]
        if not shared:
            continue
        tests[row.name] = paired_test([theirs[q] for q in shared], [mine[q] for q in shared])
        changes = [
            QueryChange(q, tuned.queries.get(q) or base.queries.get(q, ""), theirs[q], mine[q])
            for q in shared
            if mine[q] < theirs[q]
        ]
        losses[row.name] = sorted(changes, key=lambda c: (c.delta, c.query_id))
    return Comparison(base, tuned, deltas, warnings, tests, losses)


def comparison_dict(comparison: Comparison, *, top: int = 10) -> dict[str, Any]:
    """JSON-friendly form: deltas, each column's paired test and its `top` biggest losses."""
    return {
        "base": comparison.base.model,
        "tuned": comparison.tuned.model,
        "dataset": comparison.tuned.dataset,
        "split": comparison.tuned.split,
        "warnings": comparison.warnings,
        "deltas": [
            {
                "column": d.column,
                "metric": d.metric,
                "base": d.base,
                "tuned": d.tuned,
                "absolute": d.absolute,
                "relative": d.relative,
            }
            for d in comparison.deltas
        ],
        "tests": {column: test.to_dict() for column, test in comparison.tests.items()},
        "losses": {
            column: [
                {"query_id": c.query_id, "text": c.text, "base": c.base, "tuned": c.tuned}
                for c in changes[:top]
            ]
            for column, changes in comparison.losses.items()
        },
    }


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


def _test_grid(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    headers = ["column", "ndcg@10 gain", "95% CI", "p better", "p worse", "wins/losses/ties"]
    rows = [
        [
            column,
            f"{t.gain:+.4f}",
            f"[{t.ci_low:+.4f}, {t.ci_high:+.4f}]",
            f"{t.p_better:.4f}",
            f"{t.p_worse:.4f}",
            f"{t.wins}/{t.losses}/{t.ties}",
        ]
        for column, t in comparison.tests.items()
    ]
    return headers, rows


def _loss_lines(comparison: Comparison, column: str, top: int) -> list[str]:
    changes = comparison.losses.get(column, [])[:top]
    return [
        f"{c.delta:+.4f}  {c.base:.4f} -> {c.tuned:.4f}  {c.query_id}: {c.text[:70]}"
        for c in changes
    ]


def _loss_column(comparison: Comparison) -> str | None:
    """The full-dim column of the tuned report (where losses are listed), if it was tested."""
    full = comparison.tuned.full_row()
    if full is not None and full.name in comparison.losses:
        return full.name
    return next(iter(comparison.losses), None)


def format_comparison(comparison: Comparison, *, top: int = 10) -> str:
    """Terminal tables: every metric's change, each column's paired test of its ndcg@10
    change (when the reports have per-query values), and the `top` biggest per-query losses."""
    headers, rows = _grid(comparison)
    lines = [_title(comparison), *(f"warning: {w}" for w in comparison.warnings), ""]
    lines.append(render_table(headers, rows))
    if comparison.tests:
        lines += ["", "paired randomization test per column (ndcg@10, per query):"]
        lines.append(render_table(*_test_grid(comparison)))
    column = _loss_column(comparison)
    if column is not None:
        losses = _loss_lines(comparison, column, top)
        lines += ["", f"biggest per-query losses at {column} (ndcg@10):"]
        lines += [f"  {line}" for line in losses] or ["  none: no query lost"]
    return "\n".join(lines)


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
    if comparison.tests:
        out += ["## Paired test per column (ndcg@10)", ""]
        out += [render_markdown_table(*_test_grid(comparison)), ""]
    column = _loss_column(comparison)
    if column is not None:
        losses = _loss_lines(comparison, column, 10)
        out += [f"## Biggest per-query losses at {column}", ""]
        out += [f"- {line}" for line in losses] or ["none: no query lost"]
        out.append("")
    out += ["## All metrics", "", render_markdown_table(headers, rows), ""]
    return "\n".join(out)
