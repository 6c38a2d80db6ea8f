"""Data-plane commands: ingest, search, collections, delete."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from ragctl.cli.commands_serve import API_OPTION_HELP
from ragctl.cli.context import state, translate_errors
from ragctl.cli.output import shorten, table

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
                # Refreshed on every call: a long document reports each part of its chunks
                # while the document count stands still.
                bar.update(report.documents - bar.n)
                bar.set_postfix(chunks=report.chunks_written)

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
@click.option("--json", "as_json", is_flag=True, help="Print results as JSON.")
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
            answer = client.search(request.model_copy(update={"collection": collection}))
        shown = f"v{answer.model_version} ({answer.mode})"
        _print_hits(answer.collection, shown, [r.model_dump() for r in answer.results], as_json)
        return
    settings = state(ctx).settings(collection=collection)
    with open_store(settings) as store:
        physical = store.resolve(settings.collection)
        spec = store.spec(physical)
        params = request.params(
            settings.search, resolve_profile(settings, spec, tuned_profile(settings, spec))
        )
        vectors = None
        if params.mode is not SearchMode.SPARSE:
            vectors = encoder_for(spec, settings).encode_queries([query])
        hits = store.search(physical, vectors, params, text=query)
    results = [
        {
            "chunk_id": h.chunk_id,
            "doc_id": h.doc_id,
            "score": round(h.score, 6),
            "text": h.text,
            "source": h.source,
            "metadata": h.metadata,
        }
        for h in hits
    ]
    _print_hits(physical, f"{spec.model} ({params.mode})", results, as_json)


def _print_hits(collection: str, model: str, results: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(
            json.dumps(
                {"collection": collection, "model": model, "results": results},
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    if not results:
        click.echo("no results")
        return
    rows = [
        (i + 1, round(r["score"], 4), r["doc_id"], shorten(r["text"], 70))
        for i, r in enumerate(results)
    ]
    click.echo(table(["#", "score", "doc", "text"], rows))


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
        click.echo(
            json.dumps(
                [
                    {
                        **i.spec.to_dict(),
                        "physical": i.spec.physical,
                        "points": i.points,
                        "aliases": list(i.aliases),
                    }
                    for i in infos
                ],
                indent=2,
            )
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
            f"{i.spec.dim} + " + ",".join(str(d) for d in i.spec.shortlist_dims),
            f"bm25 ({i.spec.lexical.language})" if i.spec.lexical else "-",
            i.points,
        )
        for i in infos
    ]
    headers = ["collection", "alias", "model", "dims (full + shortlist)", "lexical", "points"]
    click.echo(table(headers, rows))


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

    return tqdm(desc="ingest", unit="doc", leave=False, dynamic_ncols=True)


def _logs_above(bar: Any) -> Any:
    """Log lines (one per skipped input) printed above the progress bar, not into it."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm(tqdm_class=type(bar))
