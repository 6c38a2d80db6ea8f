"""Report output: a terminal table (metrics x dims/pipelines/bm25), Markdown, and a PNG plot.

JSON lives with the data classes (`evalkit.results.save_report` / `load_report`).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ragctl.core.errors import require_extra
from ragctl.evalkit.errors import EvalError
from ragctl.evalkit.results import (
    BM25,
    EXACT,
    HYBRID,
    SINGLE_STAGE,
    SPARSE,
    TWO_STAGE,
    EvalReport,
    RunRow,
)

logger = logging.getLogger(__name__)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain text columns: the first left-aligned, the others right-aligned."""
    cells = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            row[0].ljust(widths[0]),
            *(v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)),
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths), *map(line, cells[1:])])


def render_markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table, numbers right-aligned."""
    head = "| " + " | ".join(headers) + " |"
    rule = "|" + "|".join([":---", *["---:"] * (len(headers) - 1)]) + "|"
    body = ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def metric_grid(report: EvalReport) -> tuple[list[str], list[list[str]]]:
    """Headers (`metric`, then one column per row of the report) and one line per metric."""
    headers = ["metric", *(row.name for row in report.rows)]
    lines = [
        [key, *(_fmt(row.metrics.get(key)) for row in report.rows)] for key in report.metric_keys()
    ]
    return headers, lines


def summary_lines(report: EvalReport) -> list[str]:
    """Model, dataset, sizes and timings in a few lines."""
    sizes = report.sizes
    parts = [f"{sizes.get('queries', 0)} queries", f"{sizes.get('corpus', 0)} docs"]
    if "chunks" in sizes:
        parts.append(f"{sizes['chunks']} chunks")
    if sizes.get("dropped_queries"):
        parts.append(f"{sizes['dropped_queries']} queries dropped (no relevant doc)")
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in report.timings.items())
    lines = [
        f"model {report.model} ({report.full_dim} dims) on {report.dataset} [{report.split}]: "
        + ", ".join(parts)
    ]
    pipeline = report.config.get("pipeline")
    if isinstance(pipeline, dict):
        lines.append(
            f"two-stage = prefetch {pipeline.get('shortlist')} on mrl_"
            f"{(pipeline.get('shortlist_dims') or ['?'])[0]}, rescore on full; chunks of "
            f"{pipeline.get('chunk_size_tokens')} tokens, doc score = best chunk"
        )
    profile = report.config.get("profile")
    if isinstance(profile, dict):
        measured = report.row(str(profile.get("row"))) is not None
        lines.append(served_line(profile) + ("" if measured else " (not measured: no pipeline)"))
    if timing:
        lines.append(f"timings: {timing}")
    return lines


def describe_fusion(fusion: Mapping[str, Any]) -> str:
    """`rrf (dense x1.0, sparse x0.5, k=20)` of a recorded fusion (`FusionParams` as JSON)."""
    method = fusion.get("method")
    weights = f"dense x{fusion.get('dense_weight')}, sparse x{fusion.get('sparse_weight')}"
    extra = f", k={fusion.get('rrf_k')}" if method == "rrf" else ""
    rescore = ", rescored on full" if fusion.get("rescore") else ""
    return f"{method} ({weights}{extra}{rescore})"


def served_line(profile: dict[str, object]) -> str:
    """`served as v2: hybrid mode, fusion ... (tuned) -> row hybrid`."""
    fusion = profile.get("fusion")
    fusion_text = ""
    if isinstance(fusion, dict) and profile.get("mode") == "hybrid":
        fusion_text = f", fusion {describe_fusion(fusion)}"
    return (
        f"served as v{profile.get('version')}: {profile.get('mode')} mode{fusion_text} "
        f"({profile.get('source')}) -> the `{profile.get('row')}` row is what its users get"
    )


def row_notes(report: EvalReport) -> list[str]:
    """What the sparse and bm25 rows are, for the reports that have them."""
    return [ROW_NOTES[r.name] for r in report.rows if r.name in ROW_NOTES]


def format_text(report: EvalReport, *, width: int | None = None) -> str:
    """The terminal form: summary lines, the metrics table (in blocks of columns that fit
    `width` characters, the metric names repeated), and what the BM25 rows are."""
    headers, lines = metric_grid(report)
    blocks = [render_table(h, r) for h, r in split_columns(headers, lines, width)]
    notes = [textwrap.fill(n, width or 100, subsequent_indent="  ") for n in row_notes(report)]
    summary = [textwrap.fill(line, width, subsequent_indent="  ") if width else line
               for line in summary_lines(report)]  # fmt: skip
    return "\n".join([*summary, "", "\n\n".join(blocks), *notes])


def split_columns(
    headers: Sequence[str], rows: Sequence[Sequence[str]], width: int | None
) -> list[tuple[list[str], list[list[str]]]]:
    """The table cut into blocks of columns that each fit `width`, the first column repeated."""
    if width is None:
        return [(list(headers), [list(r) for r in rows])]
    cells = [list(headers), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    blocks: list[list[int]] = [[]]
    used = widths[0]
    for i in range(1, len(headers)):
        if blocks[-1] and used + 2 + widths[i] > width:
            blocks.append([])
            used = widths[0]
        blocks[-1].append(i)
        used += 2 + widths[i]
    return [
        ([headers[0], *(headers[i] for i in block)], [[r[0], *(r[i] for i in block)] for r in rows])
        for block in blocks
    ]


def format_markdown(report: EvalReport) -> str:
    """A Markdown document: title, sizes, the metrics table, timings and notes."""
    headers, lines = metric_grid(report)
    sizes = ", ".join(f"{k} {v}" for k, v in report.sizes.items())
    out = [
        f"# Evaluation: {report.model} on {report.dataset} ({report.split})",
        "",
        f"- model: `{report.model}` ({report.full_dim} dims)",
        f"- dataset: `{report.dataset}`, split `{report.split}`",
        f"- sizes: {sizes}",
        f"- created: {report.created_at}",
    ]
    pipeline = report.config.get("pipeline")
    if isinstance(pipeline, dict):
        out.append(
            f"- pipeline: Qdrant Edge, two-stage = prefetch {pipeline.get('shortlist')} on "
            f"`mrl_{(pipeline.get('shortlist_dims') or ['?'])[0]}` then rescore on `full`; "
            f"chunks of {pipeline.get('chunk_size_tokens')} tokens (overlap "
            f"{pipeline.get('chunk_overlap_tokens')}), a doc scores as its best chunk"
        )
    profile = report.config.get("profile")
    if isinstance(profile, dict):
        out.append(f"- {served_line(profile)}")
    if "bm25" in report.config:
        out.append(f"- bm25: bm25s {report.config['bm25']}")
    out += ["", render_markdown_table(headers, lines), ""]
    if report.timings:
        out += ["## Timings (s)", ""]
        out.append(
            render_markdown_table(
                ["stage", "seconds"], [[k, f"{v:.2f}"] for k, v in report.timings.items()]
            )
        )
        out.append("")
    notes = [*row_notes(report), *report.notes]
    if notes:
        out += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(out)


def _label(report: EvalReport) -> str:
    name = report.model.rstrip("/").split("/")[-1] or report.model
    return f"{name} ({report.dataset})"


# The pipeline columns of the plot's right panel, left to right, and how they are labeled.
MODE_COLUMNS: tuple[tuple[str, str], ...] = (
    (TWO_STAGE, "dense\ntwo-stage"),
    (SINGLE_STAGE, "dense\nsingle-stage"),
    (HYBRID, "hybrid"),
    (SPARSE, "sparse\n(BM25 in\nQdrant)"),
    (BM25, "bm25s\nbaseline"),
)
ROW_NOTES = {
    SPARSE: "sparse: BM25 through Qdrant's sparse vectors on the stored chunks (ragctl's "
    "lexical recipe), a document scoring as its best chunk: what `--mode sparse` serves",
    BM25: "bm25: the bm25s baseline on whole documents (k1 0.9, b 0.4, the published BEIR "
    "setting): a reference point, not a served mode",
}


def served_row(mode: str | None) -> str | None:
    """The report row of a served search mode (`dense` -> `two-stage`)."""
    return {"dense": TWO_STAGE, "hybrid": HYBRID, "sparse": SPARSE}.get(mode or "")


def y_top(values: Sequence[float]) -> float:
    """The top of a y axis that starts at 0: the largest value plus a margin, rounded up to a
    tenth (at most 1 for metrics in [0, 1]); never a zoom onto the data's own range."""
    largest = max(values, default=0.0)
    if largest <= 0:
        return 1.0
    top = math.ceil(largest * 1.08 * 10) / 10
    return min(top, 1.0) if largest <= 1 else top


def row_interval(row: RunRow, metric: str, *, resamples: int = 2000) -> tuple[float, float] | None:
    """The 95% bootstrap interval of a row's mean `metric` over its queries, when the row has
    per-query values (`per_query`: {query_id: {metric: value}}); else None."""
    per_query = getattr(row, "per_query", None) or {}
    values = [m[metric] for m in per_query.values() if isinstance(m, dict) and metric in m]
    if len(values) < 2:
        return None
    import numpy as np

    data = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(0)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def plot_metric(
    reports: Sequence[EvalReport],
    path: Path,
    *,
    metric: str = "ndcg@10",
    title: str | None = None,
    served: str | None = None,
) -> Path:
    """Plot `metric` per exact dim (left) and per search mode through the store (right).

    One color per report, one legend entry each. The right panel shows what users get: dense
    two-stage and single-stage, hybrid, sparse (BM25 in Qdrant) and the bm25s baseline, with
    the `served` row (e.g. `hybrid`) marked. Both panels share a y axis from 0, so a 0.02
    difference looks like one; rows with per-query values get 95% bootstrap error bars.

    Raises:
        EvalError: No report has exact rows with `metric`.
    """
    require_extra("matplotlib", "plots", "plotting eval reports")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(metric in r.metrics for rep in reports for r in rep.exact_rows()):
        raise EvalError(f"no report has exact-dim rows with {metric!r} to plot")
    modes = [
        (name, label)
        for name, label in MODE_COLUMNS
        if any((row := rep.row(name)) is not None and metric in row.metrics for rep in reports)
    ]
    widths = [3, max(1, len(modes))] if modes else [3]
    fig, axes = plt.subplots(
        1, len(widths), figsize=(10, 4.6), dpi=110, sharey=True,
        gridspec_kw={"width_ratios": widths}, squeeze=False,
    )  # fmt: skip
    left = axes[0][0]
    right = axes[0][1] if modes else None
    values = [r.metrics[metric] for rep in reports for r in rep.rows if metric in r.metrics]
    try:
        all_dims: set[int] = set()
        handles: dict[str, Any] = {}
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for k, report in enumerate(reports):
            color = colors[k % len(colors)]
            rows = sorted(
                (r for r in report.exact_rows() if r.dim is not None and metric in r.metrics),
                key=lambda r: r.dim or 0,
            )
            if not rows:
                continue
            all_dims.update(r.dim for r in rows if r.dim is not None)
            label = _label(report)
            (line,) = left.plot(
                [r.dim for r in rows], [r.metrics[metric] for r in rows],
                marker="o", color=color, label=label,
            )  # fmt: skip
            handles.setdefault(label, line)
            _error_bars(left, [(float(r.dim or 0), r) for r in rows], metric, color)
            if right is not None:
                offset = (k - (len(reports) - 1) / 2) * 0.12
                points = [
                    (i + offset, report.row(name))
                    for i, (name, _) in enumerate(modes)
                    if report.row(name) is not None and metric in report.row(name).metrics  # type: ignore[union-attr]
                ]
                for x, row in points:
                    assert row is not None
                    filled = row.name != BM25
                    right.plot(
                        [x], [row.metrics[metric]], marker="s",
                        markersize=11 if row.name == served else 7, linestyle="none",
                        color=color, markerfacecolor=color if filled else "white",
                    )  # fmt: skip
                _error_bars(right, points, metric, color)  # type: ignore[arg-type]
        left.set_xscale("log", base=2)
        ticks = sorted(all_dims)
        left.set_xticks(ticks)
        left.set_xticklabels([str(t) for t in ticks])
        left.minorticks_off()
        left.set_xlabel("dimension (exact search, Matryoshka truncation)")
        left.set_ylabel(metric)
        left.set_ylim(0, y_top(values))
        left.grid(True, alpha=0.3)
        if right is not None:
            right.set_xticks(range(len(modes)))
            right.set_xticklabels(
                [f"{label}\n(served)" if name == served else label for name, label in modes],
                fontsize=8,
            )
            for tick, (name, _) in zip(right.get_xticklabels(), modes, strict=True):
                if name == served:
                    tick.set_fontweight("bold")
            right.set_xlim(-0.6, len(modes) - 0.4)
            right.set_xlabel("search mode, full dim, through the store")
            right.grid(True, axis="y", alpha=0.3)
        datasets = sorted({f"{r.dataset} [{r.split}]" for r in reports})
        default_title = f"{metric}" + (f": {datasets[0]}" if len(datasets) == 1 else "")
        fig.suptitle(title or default_title)
        fig.legend(
            handles=list(handles.values()),
            labels=list(handles),
            loc="lower center",
            ncol=min(3, max(1, len(handles))),
            fontsize=8,
            frameon=False,
        )
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def _error_bars(ax: Any, points: Sequence[tuple[float, RunRow]], metric: str, color: str) -> None:
    for x, row in points:
        interval = row_interval(row, metric)
        if interval is not None:
            value = row.metrics[metric]
            below, above = max(0.0, value - interval[0]), max(0.0, interval[1] - value)
            ax.errorbar(
                [x], [value], yerr=[[below], [above]], color=color, capsize=3, linestyle="none"
            )


def write_outputs(
    report: EvalReport, out_dir: Path, *, metric: str = "ndcg@10", served: str | None = None
) -> list[Path]:
    """Write `report.json`, `report.md` and `ndcg.png` into `out_dir`; returns the paths.

    `served` names the row of the search mode served (`two-stage`, `hybrid`, `sparse`), marked
    on the plot."""
    from ragctl.evalkit.results import save_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = save_report(report, out_dir / "report.json")
    md_path = out_dir / "report.md"
    md_path.write_text(format_markdown(report), encoding="utf-8")
    paths = [json_path, md_path]
    plottable = any(metric in r.metrics for r in report.rows if r.kind == EXACT)
    if plottable and importlib.util.find_spec("matplotlib") is None:
        logger.warning("no plot written: pip install 'ragctl[plots]' for %s", out_dir / "ndcg.png")
    elif plottable:
        paths.append(plot_metric([report], out_dir / "ndcg.png", metric=metric, served=served))
    return paths
