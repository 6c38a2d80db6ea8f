"""Serving commands: `ragctl serve` and `ragctl feedback export|stats`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ragctl.cli.context import state, translate_errors
from ragctl.cli.output import emit_json, table

if TYPE_CHECKING:
    from ragctl.client import Client


@click.command()
@click.option("--host", help="Address to listen on (default 127.0.0.1; 0.0.0.0 for all).")
@click.option("--port", type=int, help="Port to listen on (default 8000).")
@click.option(
    "--workers",
    type=int,
    help="Worker processes (default 1). More than 1 needs a Qdrant server (store.url): the "
    "embedded store is opened by one process only.",
)
@click.option(
    "--insecure",
    is_flag=True,
    default=None,
    help="Serve a non-loopback address without any API key: anyone who can reach it can "
    "change the index and the training data. Without keys the server otherwise refuses to "
    "start on such an address.",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
    help="uvicorn's log level (access log at info).",
)
@click.pass_context
@translate_errors
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    workers: int | None,
    insecure: bool | None,
    log_level: str,
) -> None:
    """Serve the HTTP retriever (FastAPI on uvicorn); OpenAPI docs at /docs.

    Routes: POST /v1/search (a read key when read keys are configured), POST /v1/feedback,
    POST /v1/documents and DELETE /v1/documents/{doc_id} (a write key), GET /v1/health,
    GET /v1/ready, GET /metrics, and the admin routes under /v1/admin (an admin key; off
    without one). Keys: retriever.read_api_key, write_api_key, admin_api_key (e.g.
    RAGCTL_RETRIEVER__WRITE_API_KEY), sent as Authorization: Bearer <key>. With no key at all,
    writes are accepted on a loopback address only. Searches and feedback are logged durably
    to data_dir/feedback.db (or feedback.database_url). Stop with Ctrl-C.
    """
    from ragctl.retriever.auth import AccessPolicy, is_loopback_host
    from ragctl.retriever.server import build_config, configure_torch, run

    settings = state(ctx).settings(
        retriever={"host": host, "port": port, "workers": workers, "insecure": insecure}
    )
    server = settings.retriever
    policy = AccessPolicy.from_settings(server)
    if not policy.any_keys and not is_loopback_host(server.host) and not server.insecure:
        raise click.ClickException(
            f"refusing to serve {server.host} without API keys: anyone who can reach it could "
            "change the index and the training data. Set retriever.write_api_key and "
            "retriever.admin_api_key (RAGCTL_RETRIEVER__WRITE_API_KEY, ...), or serve "
            "127.0.0.1, or pass --insecure."
        )
    if server.workers > 1 and settings.store.url is None:
        raise click.ClickException(
            f"--workers {server.workers} needs a Qdrant server (store.url / --store-url): the "
            "embedded store is single-process (one process holds its lock), so extra workers "
            "could not open it. Run one worker, or set store.url (and feedback.database_url to "
            "share the feedback log between hosts)."
        )
    short = [
        role
        for role in ("read", "write", "admin")
        if any(len(k.get_secret_value()) < 16 for k in getattr(server, f"{role}_api_key"))
    ]
    if short:
        click.echo(
            f"warning: {', '.join(short)} API key(s) shorter than 16 characters are easy to guess",
            err=True,
        )
    if server.workers > 1:
        click.echo(policy.describe(), err=True)
        run(build_config(settings, log_level=log_level))
        return
    from ragctl.core.store import open_store
    from ragctl.retriever.app import create_app

    # Opened here, before the port is bound: a store another process holds is one clear line.
    store = open_store(settings)
    click.echo(policy.describe(), err=True)
    configure_torch(settings)
    try:
        started = run(
            build_config(
                settings,
                app=create_app(settings, store=store, open_in_background=True),
                log_level=log_level,
            )
        )
    finally:
        store.close()
    if not started:
        ctx.exit(3)  # uvicorn logged why (one line for ragctl's own errors)


_FEEDBACK_COLLECTION = click.option(
    "--collection",
    "-c",
    help="Only this collection's (alias) searches and feedback; default: every collection's.",
)


@click.group()
def feedback() -> None:
    """Read the search and feedback log the retriever writes (safe while it runs).

    The log is data_dir/feedback.db (SQLite, WAL) unless feedback.database_url names another
    database (sqlite:///PATH or postgresql://...).
    """


@feedback.command("export")
@click.option(
    "--since",
    metavar="ISO",
    help="Only feedback created at or after this date or date-time (e.g. 2025-01-31 or "
    "2025-01-31T12:00:00Z; UTC when no offset is given).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write to this file instead of standard output.",
)
@_FEEDBACK_COLLECTION
@click.pass_context
@translate_errors
def export(ctx: click.Context, since: str | None, out: Path | None, collection: str | None) -> None:
    """Write feedback as JSON lines, oldest first, for the tuner and evalkit.

    One record per judgement: feedback_id, query, chunk_id, doc_id, label (relevant |
    not_relevant), chunk_text (as it was when judged), model_version, collection, search_id,
    rank (1-based position in the search's results, null if not returned) and created_at
    (ISO 8601, UTC).
    """
    from ragctl.retriever.feedback_log import open_feedback_log, parse_since

    settings = state(ctx).settings()
    try:
        since_ts = parse_since(since) if since else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    count = 0
    with open_feedback_log(settings, create=False) as log:
        if out is None:
            for row in log.iter_feedback(since_ts, collection=collection):
                click.echo(json.dumps(row, ensure_ascii=False))
                count += 1
            return
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as handle:
            for row in log.iter_feedback(since_ts, collection=collection):
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
                count += 1
    click.echo(f"exported {count} feedback records to {out}", err=True)


@feedback.command("stats")
@_FEEDBACK_COLLECTION
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
@translate_errors
def stats(ctx: click.Context, collection: str | None, as_json: bool) -> None:
    """Count logged searches and feedback, by label and by model version.

    Shows how much training signal the tuner has (relevant judgements are its positives,
    not_relevant ones known negatives) and how it splits across the model versions that
    served the searches. Reads the log directly; safe while `ragctl serve` runs.
    """
    from dataclasses import asdict

    from ragctl.retriever.feedback_log import open_feedback_log

    with open_feedback_log(state(ctx).settings(), create=False) as log:
        result = log.stats(collection=collection)
    if as_json:
        emit_json({"total": result.feedback, **asdict(result)})
        return
    click.echo(f"searches logged: {result.searches}")
    labels = ", ".join(f"{label} {n}" for label, n in result.by_label.items())
    click.echo(f"feedback: {result.feedback} ({labels})")
    if result.free_text:
        click.echo(
            f"free-text feedback (no search_id): {result.free_text}, left out of "
            "`retune --from-log` unless --include-free-text"
        )
    versions = sorted(set(result.searches_by_model_version) | set(result.feedback_by_model_version))
    if versions:
        rows = []
        for version in versions:
            counts = result.feedback_by_model_version.get(version, {})
            rows.append(
                (
                    f"v{version}",
                    result.searches_by_model_version.get(version, 0),
                    counts.get("relevant", 0),
                    counts.get("not_relevant", 0),
                )
            )
        click.echo(table(["model version", "searches", "relevant", "not_relevant"], rows))


# --- `--api URL`: data commands sent to a running retriever (see commands_data) ---
API_OPTION_HELP = (
    "Send this to a running retriever (`ragctl serve`) at URL, e.g. http://127.0.0.1:8000, "
    "instead of opening the store (which a running server holds); the server's own "
    "model and settings are used (--collection names one of its collections)."
)
_API_BATCH_DOCS = 64
_API_BATCH_BYTES = 4_000_000


def api_key_for(ctx: click.Context, role: str) -> str | None:
    """The key `--api` requests carry: the first configured key of `role` or a higher one."""
    server = state(ctx).settings().retriever
    order = {"read": ("read", "write", "admin"), "write": ("write", "admin")}[role]
    for name in order:
        keys = getattr(server, f"{name}_api_key")
        if keys:
            return str(keys[0].get_secret_value())
    return None


def api_client(ctx: click.Context, url: str, role: str) -> Client:
    """A `ragctl.client.Client` of the retriever at `url`, with the key of `role`.

    Raises:
        click.BadParameter: `url` is not an http(s) URL (names --api).
    """
    from ragctl.client import Client

    try:
        return Client(url, api_key=api_key_for(ctx, role), timeout_s=120.0)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--api") from exc


def delete_via_api(
    ctx: click.Context, url: str, doc_ids: tuple[str, ...], *, collection: str | None = None
) -> tuple[int, str, list[str]]:
    """Delete documents through a running retriever: (chunks deleted, collection, not found)."""
    from ragctl.client import NotFoundError

    deleted, where = 0, collection or "the served collection"
    missing: list[str] = []
    with api_client(ctx, url, "write") as client:
        for doc_id in doc_ids:
            try:
                answer = client.delete_document(doc_id, collection=collection)
            except NotFoundError as exc:
                if exc.code != "document_not_found":
                    raise
                missing.append(doc_id)
                continue
            deleted += answer.chunks_deleted
            where = answer.collection
    return deleted, where, missing


def ingest_via_api(
    ctx: click.Context,
    url: str,
    paths: tuple[Path, ...],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    *,
    follow_symlinks: bool = False,
    collection: str | None = None,
    as_json: bool = False,
) -> None:
    """Load files here, send them to a running retriever in batches, print the summary."""
    from ragctl.ingest.loaders import Skipped, iter_documents

    settings = state(ctx).settings()
    client = api_client(ctx, url, "write")
    totals = dict.fromkeys(("documents", "unchanged", "chunks_written", "chunks_deleted"), 0)
    skipped = 0
    written_to = "?"
    batch: list[dict[str, Any]] = []
    batch_bytes = 0
    # The server's limits, as this side's settings give them (the same config, usually).
    limits = settings.retriever
    request_bytes = min(int(limits.max_request_text_mib * 1024 * 1024), _API_BATCH_BYTES)
    request_docs = min(limits.max_documents_per_request, _API_BATCH_DOCS)

    def send() -> None:
        nonlocal written_to, batch, batch_bytes
        if batch:
            answer = client.upsert_documents(batch, collection=collection).model_dump()
            written_to = str(answer["collection"])
            for key in totals:
                totals[key] += int(answer[key])
            batch, batch_bytes = [], 0

    items = iter_documents(
        list(paths),
        include=include,
        exclude=exclude,
        max_file_bytes=int(settings.chunking.max_file_mib * 1024 * 1024),
        follow_symlinks=follow_symlinks,
    )
    with client:
        for item in items:
            if isinstance(item, Skipped):
                click.echo(f"skipped {item.source}: {item.reason}", err=True)
                skipped += 1
                continue
            size = len(item.text.encode("utf-8"))
            if size > request_bytes or len(item.text) > limits.max_document_chars:
                click.echo(
                    f"skipped {item.source}: {len(item.text)} characters ({size} bytes) of text, "
                    "over what one request may carry (retriever.max_request_text_mib, "
                    "max_document_chars); ingest it without --api",
                    err=True,
                )
                skipped += 1
                continue
            if batch_bytes + size > request_bytes or len(batch) >= request_docs:
                send()
            batch.append(
                {
                    "id": item.doc_id,
                    "text": item.text,
                    "metadata": item.metadata,
                    "source": item.source,
                }
            )
            batch_bytes += size
        send()
    if as_json:
        emit_json({"collection": written_to, "api": url, **totals, "skipped": skipped})
        return
    click.echo(
        f"ingested through {url} into {written_to}: {totals['documents']} documents "
        f"({totals['unchanged']} unchanged), {totals['chunks_written']} chunks written, "
        f"{totals['chunks_deleted']} deleted, {skipped} skipped"
    )
