"""Report output: a terminal table (metrics x dims/pipelines/bm25), Markdown, and a PNG plot.

JSON lives with the data classes (`evalkit.results.save_report` / `load_report`).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path

from ragctl.core.errors import require_extra
from ragctl.evalkit.errors import EvalError
from ragctl.evalkit.results import BM25, EXACT, TWO_STAGE, EvalReport

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
    if timing:
        lines.append(f"timings: {timing}")
    return lines


def format_text(report: EvalReport) -> str:
    """The terminal form: summary lines, then the metrics table."""
    headers, lines = metric_grid(report)
    return "\n".join([*summary_lines(report), "", render_table(headers, lines)])


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
    if report.notes:
        out += ["## Notes", "", *(f"- {n}" for n in report.notes), ""]
    return "\n".join(out)


def _label(report: EvalReport) -> str:
    name = report.model.rstrip("/").split("/")[-1] or report.model
    return f"{name} ({report.dataset})"


def plot_metric(
    reports: Sequence[EvalReport], path: Path, *, metric: str = "ndcg@10", title: str | None = None
) -> Path:
    """Plot `metric` against the exact dims, one line per report, as a PNG.

    Two-stage results are drawn as a star at the full dim, BM25 as a dotted horizontal line in
    the color of the first report on that dataset.

    Raises:
        EvalError: No report has exact rows with `metric`.
    """
    require_extra("matplotlib", "plots", "plotting eval reports")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(metric in r.metrics for rep in reports for r in rep.exact_rows()):
        raise EvalError(f"no report has exact-dim rows with {metric!r} to plot")
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=120)
    try:
        all_dims: set[int] = set()
        bm25_drawn: set[str] = set()
        for report in reports:
            points = sorted(
                (r.dim, r.metrics[metric])
                for r in report.exact_rows()
                if r.dim is not None and metric in r.metrics
            )
            if not points:
                continue
            all_dims.update(d for d, _ in points)
            (line,) = ax.plot(
                [d for d, _ in points], [v for _, v in points], marker="o", label=_label(report)
            )
            two_stage = report.row(TWO_STAGE)
            if two_stage is not None and metric in two_stage.metrics and report.full_dim:
                ax.plot(
                    [report.full_dim],
                    [two_stage.metrics[metric]],
                    marker="*",
                    markersize=13,
                    linestyle="none",
                    color=line.get_color(),
                    label=f"{_label(report)}: two-stage",
                )
            bm25 = report.row(BM25)
            if bm25 is not None and metric in bm25.metrics and report.dataset not in bm25_drawn:
                ax.axhline(
                    bm25.metrics[metric],
                    linestyle=":",
                    color=line.get_color(),
                    label=f"BM25 ({report.dataset})",
                )
                bm25_drawn.add(report.dataset)
        ax.set_xscale("log", base=2)
        ticks = sorted(all_dims)
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
        ax.set_xlabel("embedding dimension (Matryoshka truncation)")
        ax.set_ylabel(metric)
        datasets = sorted({f"{r.dataset} [{r.split}]" for r in reports})
        default_title = f"{metric} vs dimension" + (
            f": {datasets[0]}" if len(datasets) == 1 else ""
        )
        ax.set_title(title or default_title)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


def write_outputs(report: EvalReport, out_dir: Path, *, metric: str = "ndcg@10") -> list[Path]:
    """Write `report.json`, `report.md` and `ndcg.png` into `out_dir`; returns the paths."""
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
        paths.append(plot_metric([report], out_dir / "ndcg.png", metric=metric))
    return paths
