"""Data-plane commands: ingest, search, collections, delete."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import click

from ragctl.cli.commands_serve import API_OPTION_HELP
from ragctl.cli.context import state, translate_errors
from ragctl.cli.output import WIDTH, emit_json, shorten, table

_COLLECTION = click.option(
    "--collection",
    "-c",
    help="Collection (alias) name; default from settings (`docs`).",
)
_API = click.option("--api", metavar="URL", help=API_OPTION_HELP)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@_COLLECTION
@click.option(
    "--include", multiple=True, help="Only files matching this glob (repeatable), e.g. '*.md'."
)
@click.option(
    "--exclude", multiple=True, help="Skip files matching this glob (repeatable), e.g. 'drafts/*'."
)
@click.option(
    "--chunk-size", type=int, help="Chunk size in model tokens (default 256, capped by the model)."
)
@click.option("--chunk-overlap", type=int, help="Overlap between chunks in tokens (default 32).")
@click.option(
    "--follow-symlinks",
    is_flag=True,
    help="Follow symbolic links found in folders, to files and folders inside the given "
    "folders only (default: skip them, one line each).",
)
@click.option("--json", "as_json", is_flag=True, help="Print only the summary as JSON on stdout.")
@_API
@click.pass_context
@translate_errors
def ingest(
    ctx: click.Context,
    paths: tuple[Path, ...],
    collection: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    chunk_size: int | None,
    chunk_overlap: int | None,
    follow_symlinks: bool,
    as_json: bool,
    api: str | None,
) -> None:
    """Chunk, embed and store files and folders.

    PATHS are files or folders (searched recursively) of .txt, .md, .html, .pdf and .jsonl
    (records {"id", "text", ...} or a BEIR corpus.jsonl). Re-running on unchanged input writes
    nothing; a changed document replaces exactly its chunks. Unreadable, binary, empty or
    oversized inputs, bad JSON lines, special files (FIFOs, sockets, devices) and symbolic links
    in folders are skipped with one line each. Text in other encodings than UTF-8 (Latin-1,
    UTF-16, ...) is detected.
    """
    if api:
        from ragctl.cli.commands_serve import ingest_via_api

        _refuse_with_api(chunk_size=chunk_size, chunk_overlap=chunk_overlap)
        ingest_via_api(
            ctx,
            api,
            paths,
            include,
            exclude,
            follow_symlinks=follow_symlinks,
            collection=collection,
            as_json=as_json,
        )
        return
    from ragctl.core.collections import open_or_create
    from ragctl.core.store import open_store
    from ragctl.ingest.pipeline import IngestReport, ingest_paths, make_chunker

    settings = state(ctx).settings(
        collection=collection,
        chunking={"size_tokens": chunk_size, "overlap_tokens": chunk_overlap},
    )
    with open_store(settings) as store:
        target = open_or_create(store, settings, settings.collection)
        chunker = make_chunker(
            target.encoder, settings.chunking.size_tokens, settings.chunking.overlap_tokens
        )
        with _progress() as bar, _logs_above(bar):

            def on_progress(report: IngestReport) -> None:
                # Chunks embedded out of those found new so far (the total grows as documents
                # are chunked); refreshed on every call, also within one long document.
                bar.total = max(report.chunks_planned, report.chunks_written)
                bar.update(report.chunks_written - bar.n)
                bar.set_postfix(docs=report.documents, refresh=True)

            report = ingest_paths(
                list(paths),
                target,
                chunker,
                include=include,
                exclude=exclude,
                max_file_bytes=int(settings.chunking.max_file_mib * 1024 * 1024),
                upsert_batch_size=settings.store.upsert_batch_size,
                on_progress=on_progress,
                follow_symlinks=follow_symlinks,
            )
        total = store.count(target.physical)
        changed = report.chunks_written or report.chunks_deleted
        if changed and total >= settings.store.index_threshold:
            click.echo(f"building the search index for {total} chunks ...", err=True)
            store.optimize(target.physical)
    if as_json:
        emit_json(
            {
                "collection": target.physical,
                "alias": settings.collection,
                "model_version": target.spec.version,
                "documents": report.documents,
                "unchanged": report.unchanged,
                "chunks_written": report.chunks_written,
                "chunks_deleted": report.chunks_deleted,
                "skipped": [{"source": s.source, "reason": s.reason} for s in report.skipped],
                "points": total,
                "took_ms": round(report.seconds * 1000, 3),
                "encode_ms": round(report.encode_seconds * 1000, 3),
            }
        )
        return
    click.echo(
        f"ingested into {settings.collection} ({target.physical}): {report.documents} documents "
        f"({report.unchanged} unchanged), {report.chunks_written} chunks written, "
        f"{report.chunks_deleted} deleted, {len(report.skipped)} skipped, "
        f"{report.seconds:.1f} s (encoding {report.encode_seconds:.1f} s); "
        f"collection now holds {total} chunks"
    )


@click.command()
@click.argument("query")
@_COLLECTION
@click.option("-k", "k", type=int, help="Number of results (1-100, default 10).")
@click.option(
    "--shortlist", type=int, help="Candidates taken on the shortlist vector (k-1000, default 100)."
)
@click.option(
    "--single-stage",
    is_flag=True,
    help="Search the full vector only (no shortlist), for comparison.",
)
@click.option(
    "--mode",
    type=click.Choice(["dense", "sparse", "hybrid"]),
    help="dense (Matryoshka two-stage), sparse (BM25 on the lexical vectors) or hybrid (both, "
    "fused); default: the collection's profile (search.mode, or what retune measured best).",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="Payload filter (repeatable, all must match): doc_id=..., source=..., "
    "metadata.FIELD=...; KEY!=VALUE leaves matches out; metadata.FIELD>=N (>, <, <=) is a "
    "numeric range.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print only JSON on stdout, with the HTTP API's fields (search_id, took_ms, ...).",
)
@click.option("--wide", is_flag=True, help="Show each result's whole chunk text.")
@_API
@click.pass_context
@translate_errors
def search(
    ctx: click.Context,
    query: str,
    collection: str | None,
    k: int | None,
    shortlist: int | None,
    single_stage: bool,
    mode: str | None,
    filters: tuple[str, ...],
    as_json: bool,
    wide: bool,
    api: str | None,
) -> None:
    """Search a collection: dense (shortlist on the Matryoshka vector, rerank on the full one),
    sparse (BM25) or hybrid (both, fused in one query)."""
    from ragctl.core.collections import encoder_for
    from ragctl.core.profile import resolve_profile, tuned_profile
    from ragctl.core.search import SearchMode
    from ragctl.core.store import open_store
    from ragctl.retriever.schemas import SearchRequest

    if not query.strip():
        raise click.BadParameter("the query is empty", param_hint="QUERY")
    request = SearchRequest(
        query=query,
        k=k,
        shortlist=shortlist,
        single_stage=single_stage,
        filter=_parse_filters(filters),
        mode=None if mode is None else SearchMode(mode),
    )
    if api:
        from ragctl.cli.commands_serve import api_client

        with api_client(ctx, api, "read") as client:
            served = client.search(request.model_copy(update={"collection": collection}))
        _print_hits(served.model_dump(mode="json"), as_json=as_json, wide=wide)
        return
    settings = state(ctx).settings(collection=collection)
    with open_store(settings) as store:
        physical = store.resolve(settings.collection)
        spec = store.spec(physical)
        params = request.params(
            settings.search, resolve_profile(settings, spec, tuned_profile(settings, spec))
        )
        encoder = None if params.mode is SearchMode.SPARSE else encoder_for(spec, settings)
        started = time.perf_counter()  # the search itself, as the server's took_ms
        vectors = None if encoder is None else encoder.encode_queries([query])
        hits = store.search(physical, vectors, params, text=query)
    answer = {
        # A local search is not logged (no server): nothing to give feedback against.
        "search_id": None,
        "model_version": spec.version,
        "model": spec.model,
        "collection": physical,
        "mode": str(params.mode),
        "took_ms": round((time.perf_counter() - started) * 1000, 3),
        "results": [
            {
                "chunk_id": h.chunk_id,
                "doc_id": h.doc_id,
                "score": round(h.score, 6),
                "text": h.text,
                "source": h.source,
                "start": h.start,
                "end": h.end,
                "metadata": h.metadata,
            }
            for h in hits
        ],
    }
    _print_hits(answer, as_json=as_json, wide=wide)


def _print_hits(answer: dict[str, Any], *, as_json: bool, wide: bool) -> None:
    """A search answer (the HTTP API's shape) as JSON, a table of 80 columns, or --wide."""
    if as_json:
        emit_json(answer)
        return
    results = answer["results"]
    model = f" ({answer['model']})" if answer.get("model") else ""
    head = (
        f"{answer['collection']}: model v{answer['model_version']}{model}, {answer['mode']}, "
        f"{answer['took_ms']:.0f} ms"
    )
    click.echo(shorten(head, WIDTH))
    if not results:
        click.echo("no results")
        return
    if wide:
        for i, r in enumerate(results, 1):
            click.echo(f"\n#{i}  {r['score']:.4f}  {r['doc_id']}  (chars {r['start']}-{r['end']})")
            click.echo(r["text"])
        return
    doc_width = min(28, max(len(r["doc_id"]) for r in results))
    rows = [
        (i + 1, round(r["score"], 4), _tail(r["doc_id"], doc_width), r["text"])
        for i, r in enumerate(results)
    ]
    fixed = len(str(len(rows))) + 6 + doc_width + 3 * 2
    rows = [(*row[:3], shorten(str(row[3]), max(16, WIDTH - fixed))) for row in rows]
    click.echo(table(["#", "score", "doc", "text"], rows))


def _tail(text: str, width: int) -> str:
    """The end of `text` in `width` characters (a path's file name matters most)."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _refuse_with_api(**given: Any) -> None:
    used = [f"--{name.replace('_', '-')}" for name, value in given.items() if value is not None]
    if used:
        raise click.UsageError(
            f"{', '.join(used)} cannot be used with --api: the server uses its own settings"
        )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
@translate_errors
def collections(ctx: click.Context, as_json: bool) -> None:
    """List physical collections: name, alias, model, dims and point counts.

    Each model version of a collection is its own physical collection NAME__vN; the alias
    NAME points at the one being served. Older versions stay until dropped, for rollback.
    """
    from ragctl.core.store import open_store

    with open_store(state(ctx).settings()) as store:
        infos = store.collections()
    if as_json:
        emit_json(
            {
                "collections": [
                    {
                        **i.spec.to_dict(),
                        "physical": i.spec.physical,
                        "points": i.points,
                        "aliases": list(i.aliases),
                    }
                    for i in infos
                ]
            }
        )
        return
    if not infos:
        click.echo("no collections yet; run `ragctl ingest PATH`")
        return
    rows = [
        (
            i.spec.physical,
            ",".join(i.aliases) or "-",
            i.spec.model,
            f"{i.spec.dim}+" + ",".join(str(d) for d in i.spec.shortlist_dims),
            f"bm25 ({i.spec.lexical.language})" if i.spec.lexical else "-",
            i.points,
        )
        for i in infos
    ]
    headers = ["collection", "alias", "model", "dims", "lexical", "points"]
    click.echo(table(headers, rows, wrap=["model"], drop=["lexical", "dims"]))


@click.command()
@click.argument("doc_ids", nargs=-1, required=True)
@_COLLECTION
@_API
@click.pass_context
@translate_errors
def delete(
    ctx: click.Context, doc_ids: tuple[str, ...], collection: str | None, api: str | None
) -> None:
    """Delete documents (all their chunks) by doc id from the serving collection.

    An id with no chunks there is named and the exit code is 1 (the others are deleted).
    """
    from ragctl.core.store import open_store

    if api:
        from ragctl.cli.commands_serve import delete_via_api

        deleted, where, missing = delete_via_api(ctx, api, doc_ids, collection=collection)
    else:
        settings = state(ctx).settings(collection=collection)
        with open_store(settings) as store:
            where = store.resolve(settings.collection)
            present = store.chunk_ids_of(where, list(doc_ids))
            missing = [d for d in doc_ids if not present.get(d)]
            found = [d for d in doc_ids if present.get(d)]
            deleted = store.delete_documents(where, found) if found else 0
    found_count = len(doc_ids) - len(missing)
    if found_count:
        click.echo(f"deleted {deleted} chunks of {found_count} document(s) from {where}")
    if missing:
        shown = ", ".join(repr(d) for d in missing)
        raise click.ClickException(f"no document {shown} in {where}; nothing deleted for it")


_FILTER_ITEM = re.compile(r"^(?P<key>[^=!<>]+)(?P<op>>=|<=|!=|=|>|<)(?P<value>.*)$", re.DOTALL)
_RANGE_OPS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def _parse_filters(filters: tuple[str, ...]) -> dict[str, Any] | None:
    """`KEY=VALUE` (equals; repeated: any), `KEY!=VALUE` (must_not) and `KEY>=N` etc. (a
    numeric range) flags as one payload filter."""
    equal: dict[str, list[str]] = {}
    unequal: dict[str, list[str]] = {}
    ranges: dict[str, dict[str, float]] = {}
    for item in filters:
        match = _FILTER_ITEM.match(item)
        if match is None or not match["key"].strip():
            raise click.BadParameter(
                f"{item!r} is not KEY=VALUE (or KEY!=VALUE, KEY>=N, KEY>N, KEY<=N, KEY<N)",
                param_hint="--filter",
            )
        key, op, value = match["key"].strip(), match["op"], match["value"]
        if op == "=":
            equal.setdefault(key, []).append(value)
        elif op == "!=":
            unequal.setdefault(key, []).append(value)
        else:
            try:
                number = float(value) if any(c in value for c in ".eE") else int(value)
            except ValueError:
                raise click.BadParameter(
                    f"{item!r}: {op} takes a number, got {value!r}", param_hint="--filter"
                ) from None
            ranges.setdefault(key, {})[_RANGE_OPS[op]] = number
    parsed: dict[str, Any] = {k: v[0] if len(v) == 1 else v for k, v in equal.items()}
    for key, bounds in ranges.items():
        if key in parsed:
            raise click.BadParameter(f"{key} has both a value and a range", param_hint="--filter")
        parsed[key] = bounds
    if unequal:
        parsed["must_not"] = {k: v[0] if len(v) == 1 else v for k, v in unequal.items()}
    return parsed or None


def _progress() -> Any:
    from tqdm import tqdm

    return tqdm(desc="embedding", unit="chunk", total=0, leave=False, dynamic_ncols=True)


def _logs_above(bar: Any) -> Any:
    """Log lines (one per skipped input) printed above the progress bar, not into it."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm(tqdm_class=type(bar))
