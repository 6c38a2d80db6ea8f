"""Evaluation commands: eval (per-dim, pipeline and BM25 metrics) and compare (base vs tuned)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ragctl.cli.context import state, translate_errors
from ragctl.cli.output import WIDTH, emit_json

if TYPE_CHECKING:
    from ragctl.core.encoder import Encoder


def _parse_dims(value: str | None) -> tuple[int, ...] | None:
    if value is None or not value.strip():
        return None
    try:
        dims = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of integers, e.g. 384,256,128,64",
            param_hint="--dims",
        ) from exc
    if not dims or any(d < 1 for d in dims):
        raise click.BadParameter(
            f"dims must be positive integers, got {value!r}", param_hint="--dims"
        )
    return dims


@click.command("eval")
@click.option(
    "--model",
    "model_name",
    help="Model to evaluate: a registry version (`v2` or `2`: evaluated as served, with the "
    "serving collection's dims and prompts and the search mode and fusion recorded for it), "
    "a Hub id, a local folder, or `default` (packaged all-MiniLM-L6-v2). Default: the model "
    "setting.",
)
@click.option(
    "--dataset",
    required=True,
    help="A BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv), a pair file or folder "
    "(JSON lines/CSV/Parquet with anchor, positive), a feedback export (JSON lines), or a "
    "Hugging Face dataset id owner/name.",
)
@click.option("--split", default="test", show_default=True, help="Qrels split to evaluate.")
@click.option(
    "--dims",
    help="Comma-separated Matryoshka dims for exact search, e.g. 384,256,128,64 "
    "(default: full dim + 512/256/128/64 below it; the full dim is always included).",
)
@click.option(
    "--protocol",
    type=click.Choice(["best-chunk", "whole-document"]),
    default="best-chunk",
    show_default=True,
    help="How the exact per-dim rows see a document. best-chunk: the corpus is chunked as the "
    "pipeline chunks it and encoded once for every row; a document scores as its best chunk. "
    "whole-document: each document encoded whole (truncated at the model's sequence limit), "
    "equal to sentence-transformers' InformationRetrievalEvaluator and published numbers; "
    "the pipeline then encodes the split documents' chunks again (slower).",
)
@click.option(
    "--pipeline/--no-pipeline",
    default=True,
    show_default=True,
    help="Also ingest the corpus into a temporary Qdrant Edge store and query it as the service "
    "does: dense two-stage and single-stage, and (lexical.enabled) sparse and hybrid.",
)
@click.option(
    "--tune-fusion",
    is_flag=True,
    help="Try every fusion of the retune grid (weighted RRF, DBSF) and report the best as the "
    "hybrid row, with all of them in the JSON (default: the search.* fusion settings). The "
    "best is chosen on this very set: report it on another split.",
)
@click.option(
    "--shortlist",
    type=click.IntRange(1, 10_000),
    help="Two-stage prefetch size (default: search.shortlist setting, 100).",
)
@click.option("--bm25/--no-bm25", default=False, show_default=True, help="Add a BM25 baseline row.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write report.json, report.md and ndcg.png into this folder.",
)
@click.option(
    "--max-queries",
    type=click.IntRange(min=1),
    help="Evaluate a seeded random sample of this many queries.",
)
@click.option(
    "--max-corpus",
    type=click.IntRange(min=1),
    help="Sample the corpus down to this many docs (every doc judged for a kept query stays).",
)
@click.option("--seed", type=int, default=13, show_default=True, help="Seed of the samples.")
@click.option("--json", "as_json", is_flag=True, help="Print only the report as JSON on stdout.")
@click.pass_context
@translate_errors
def eval_command(
    ctx: click.Context,
    model_name: str | None,
    dataset: str,
    split: str,
    dims: str | None,
    protocol: str,
    pipeline: bool,
    tune_fusion: bool,
    shortlist: int | None,
    bm25: bool,
    out_dir: Path | None,
    max_queries: int | None,
    max_corpus: int | None,
    seed: int,
    as_json: bool,
) -> None:
    """Measure retrieval quality of a model on a dataset, per Matryoshka dimension.

    Chunks the corpus as ingest does and encodes the chunks and queries once, then ranks
    exactly at the full dimension and at each truncation, a document scoring as its best chunk
    (metrics as sentence-transformers' InformationRetrievalEvaluator: accuracy, precision,
    recall @1/3/5/10, ndcg@10, mrr@10, map@100, hit_rate@10). --protocol whole-document
    encodes whole documents for these rows instead, as that evaluator and published numbers
    do. With --pipeline the same chunk vectors also go into a temporary store, searched as the
    service does (dense two-stage and single-stage; sparse BM25 and hybrid when lexical
    vectors are enabled), so the table shows what users actually get. Prints the table; --out
    also writes JSON, Markdown and a plot. A registry version (--model v2) is evaluated as it is
    served: the report records its search profile and the table names the row that measures it.

    \b
    Examples:
      ragctl eval --model default --dataset ../shared/data/scifact --bm25 --out eval/scifact
      ragctl eval --model v2 --dataset golden/ --split test
      ragctl eval --dataset ../shared/data/scifact --protocol whole-document --no-pipeline
    """
    from ragctl.core.collections import load_model
    from ragctl.core.profile import settings_fusion
    from ragctl.evalkit.datasets import load_eval_dataset
    from ragctl.evalkit.report import format_text, served_row, write_outputs
    from ragctl.evalkit.runs import EvalOptions, evaluate, fusion_grid
    from ragctl.evalkit.versions import load_version_encoder, parse_version, served_version

    parsed_dims = _parse_dims(dims)
    version = None if model_name is None else parse_version(model_name)
    settings = state(ctx).settings(
        model={"name_or_path": None if version is not None else model_name},
        search={"shortlist": shortlist},
    )
    served = None if version is None else served_version(settings, version)
    click.echo(f"loading dataset {dataset} [{split}]", err=True)
    data = load_eval_dataset(dataset, split)
    if max_queries is not None or max_corpus is not None:
        data = data.subset(max_queries=max_queries, max_corpus=max_corpus, seed=seed)
    sizes = data.sizes()
    click.echo(
        f"{sizes['queries']} queries, {sizes['corpus']} docs, {sizes['relevant_pairs']} relevant "
        f"pairs ({sizes['dropped_queries']} queries without a relevant doc dropped)",
        err=True,
    )
    encoder: Encoder
    if served is None:
        click.echo(f"loading model {settings.model.name_or_path}", err=True)
        encoder = load_model(settings.model, settings.store.shortlist_dims, settings)
        fusion, lexical = settings_fusion(settings), settings.lexical.spec()
    else:
        click.echo(
            f"loading model v{served.version} ({served.spec.model}; layout of "
            f"{served.layout_from}); served in {served.profile.mode} mode "
            f"({served.profile.source})",
            err=True,
        )
        encoder = load_version_encoder(settings, served)
        fusion, lexical = served.profile.fusion, served.lexical
    options = EvalOptions(
        dims=parsed_dims,
        protocol=protocol,
        pipeline=pipeline,
        shortlist=settings.search.shortlist,
        bm25=bm25,
        lexical=lexical,
        fusions=fusion_grid(fusion) if tune_fusion else (fusion,),
        chunk_size_tokens=settings.chunking.size_tokens,
        chunk_overlap_tokens=settings.chunking.overlap_tokens,
        show_progress=True,
    )
    report = evaluate(data, encoder, options, on_stage=lambda s: click.echo(s, err=True))
    if served is not None:
        report.config["profile"] = served.config(tuned_fusion_grid=tune_fusion)
    # What its users get: the version's recorded profile, else what a collection built with
    # these settings serves by default (auto: hybrid with lexical vectors, else dense).
    mode = str(settings.search.mode)
    if mode == "auto":
        mode = "hybrid" if settings.lexical.enabled else "dense"
    if served is not None:
        mode = served.profile.mode.value
    paths = write_outputs(report, out_dir, served=served_row(mode)) if out_dir is not None else []
    if as_json:
        emit_json(report.to_dict())
    else:
        click.echo(format_text(report, width=WIDTH))
    if paths:
        click.echo("wrote " + ", ".join(str(p) for p in paths), err=as_json)


@click.command()
@click.argument("base", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("tuned", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the comparison as Markdown to this file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print only the comparison as JSON.")
@translate_errors
def compare(base: Path, tuned: Path, out_file: Path | None, as_json: bool) -> None:
    """Compare two eval reports (report.json): base vs tuned, per metric and dimension.

    Prints base, tuned, absolute and relative change for every metric in every column the two
    reports share (dims, two-stage, single-stage, bm25).

    \b
    Example:
      ragctl compare eval/base/report.json eval/tuned/report.json --out compare.md
    """
    from ragctl.evalkit.compare import (
        compare_reports,
        comparison_dict,
        format_comparison,
        format_comparison_markdown,
    )
    from ragctl.evalkit.results import load_report

    comparison = compare_reports(load_report(base), load_report(tuned))
    if out_file is not None:
        out_file.parent.mkdir(parents=True, exist_ok=True)
        out_file.write_text(format_comparison_markdown(comparison), encoding="utf-8")
    if as_json:
        emit_json(comparison_dict(comparison))
    else:
        click.echo(format_comparison(comparison))
    if out_file is not None:
        click.echo(f"wrote {out_file}", err=as_json)
