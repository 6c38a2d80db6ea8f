"""Eval output for people: plots from 0 with CIs and the served mode, tables that fit 80
columns, the BM25 rows explained, gate reasons as lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragctl.evalkit.gate_view import comparison_rows, reason_lines
from ragctl.evalkit.report import (
    format_markdown,
    format_text,
    plot_metric,
    row_interval,
    served_row,
    split_columns,
    y_top,
)
from ragctl.evalkit.results import EvalReport, RunRow


def _report(model: str, base: float) -> EvalReport:
    rows = [RunRow(str(d), "exact", d, {"ndcg@10": base - (384 - d) / 4000, "mrr@10": base})
            for d in (384, 256, 128, 64)]  # fmt: skip
    rows += [
        RunRow(name, name, 384, {"ndcg@10": base + shift, "mrr@10": base})
        for name, shift in (("two-stage", 0.0), ("single-stage", 0.0), ("hybrid", 0.02),
                            ("sparse", -0.1))
    ]  # fmt: skip
    rows.append(RunRow("bm25", "bm25", None, {"ndcg@10": base - 0.05, "mrr@10": base}))
    return EvalReport(model, "scifact", "test", 384, {"queries": 4, "corpus": 9}, rows)


def test_y_axis_starts_at_zero_and_does_not_zoom_onto_the_data():
    assert y_top([0.62, 0.64]) == pytest.approx(0.7)  # 0 .. 0.7, not 0.61 .. 0.65
    assert y_top([0.95]) == 1.0 and y_top([]) == 1.0 and y_top([0.01]) == pytest.approx(0.1)
    assert served_row("dense") == "two-stage" and served_row("hybrid") == "hybrid"
    assert served_row("auto") is None


def test_row_interval_is_a_bootstrap_ci_from_per_query_values():
    row = RunRow("two-stage", "two-stage", 384, {"ndcg@10": 0.5})
    assert row_interval(row, "ndcg@10") is None  # no per-query values: no error bar
    row.per_query = {f"q{i}": {"ndcg@10": v} for i, v in enumerate([0.2, 0.4, 0.6, 0.8] * 5)}  # type: ignore[attr-defined]
    low, high = row_interval(row, "ndcg@10")  # type: ignore[misc]
    assert 0.2 < low < 0.5 < high < 0.8


def test_plot_draws_modes_beside_dims_with_error_bars(tmp_path: Path):
    pytest.importorskip("matplotlib")
    base, tuned = _report("base", 0.6), _report("tuned", 0.62)
    for row in tuned.rows:
        row.per_query = {f"q{i}": {"ndcg@10": row.metrics["ndcg@10"] + d}  # type: ignore[attr-defined]
                         for i, d in enumerate((-0.1, 0.0, 0.05, 0.05))}  # fmt: skip
    path = plot_metric([base, tuned], tmp_path / "ndcg.png", served="hybrid")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_text_table_fits_80_columns_and_explains_the_bm25_rows():
    report = _report("a-long-organisation-name/a-long-model-name-for-testing", 0.6)
    text = format_text(report, width=80)
    assert all(len(line) <= 80 for line in text.splitlines()), text
    assert text.count("\nmetric ") == 2  # two blocks of columns, metric names repeated
    assert "sparse: BM25 through Qdrant's sparse vectors" in text
    assert "bm25: the bm25s baseline on whole documents" in text
    assert "bm25s baseline" in format_markdown(report)
    headers, rows = ["metric", "a", "b"], [["x", "1", "2"]]
    assert split_columns(headers, rows, None) == [(headers, rows)]


def test_gate_reason_lines_and_comparisons_from_reports():
    assert reason_lines("reject: gain at 384 is -0.01 < +0.005; at 64 regressed by 0.02") == [
        "reject:", "gain at 384 is -0.01 < +0.005", "at 64 regressed by 0.02"
    ]  # fmt: skip
    assert reason_lines(None) == [] and reason_lines("a; b") == ["a", "b"]
    rows = comparison_rows(_report("s", 0.6).to_dict(), _report("c", 0.65).to_dict())
    assert [r["column"] for r in rows] == [
        "384", "256", "128", "64", "two-stage", "single-stage", "hybrid", "sparse"
    ]  # fmt: skip
    assert all(r["delta"] == pytest.approx(0.05) and r["test"] is None for r in rows)
    assert comparison_rows(None, None) == []
