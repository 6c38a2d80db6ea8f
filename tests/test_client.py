"""ragctl.client: the retry and error logic exactly (httpx.MockTransport), then the matrix
against a real `ragctl` server (real model, real collection): search, batch, documents,
feedback idempotency (two sends and a lost answer: one row), a 503 while the server swaps
retried transparently, 401/403 as typed errors, the async client; and the client's models
and routes against the server's /openapi.json and docs/client.md."""

import asyncio
import inspect
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

import ragctl.client
from ragctl.client import (
    REQUEST_MODELS,
    RESPONSE_MODELS,
    ApiConnectionError,
    ApiTimeoutError,
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    ServiceUnavailableError,
)
from ragctl.client._calls import Calls, retry_after_s
from ragctl.retriever.feedback_log import open_feedback_log

ROOT = Path(__file__).resolve().parents[1]
SEARCH_ANSWER = {
    "search_id": "s1", "model_version": 1, "collection": "docs__v1", "mode": "dense",
    "took_ms": 1.0,
    "results": [{"chunk_id": "c1", "doc_id": "d.md", "score": 0.9, "text": "t", "source": "api",
                 "start": 0, "end": 1, "metadata": {"lang": "en"}}],
}  # fmt: skip
FEEDBACK_ANSWER = {
    "feedback_id": 7, "search_id": "s1", "query": "q", "chunk_id": "c1", "doc_id": "d.md",
    "label": "relevant", "model_version": 1, "collection": "docs__v1", "rank": 1,
    "created_at": "2025-01-01T00:00:00+00:00", "free_text": False,
}  # fmt: skip
FAST = RetryPolicy(max_retries=3, backoff_s=0.01, max_backoff_s=0.02)


def _error_body(code, message="it failed", field=None):
    return {"error": {"code": code, "message": message, "field": field}}


class Script:
    """A MockTransport handler answering from a list, recording every request."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request):
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def bodies(self):
        return [json.loads(r.content) for r in self.requests]


@pytest.fixture
def waits(monkeypatch):
    """The client's sleeps, recorded instead of slept."""
    slept: list[float] = []
    monkeypatch.setattr("ragctl.client.sync.time.sleep", slept.append)

    async def no_sleep(seconds):
        slept.append(seconds)

    monkeypatch.setattr("ragctl.client.aio.asyncio.sleep", no_sleep)
    return slept


def _client(script, **kwargs):
    kwargs.setdefault("retry", FAST)
    return Client("http://ragctl.test", transport=httpx.MockTransport(script), **kwargs)


# --- retries ----------------------------------------------------------------------------------
def test_client_retries_503_and_429_then_answers(waits):
    script = Script(
        httpx.Response(503, json=_error_body("not_ready"), headers={"Retry-After": "1"}),
        httpx.Response(429, json=_error_body("too_many_requests")),
        httpx.Response(200, json=SEARCH_ANSWER),
    )
    with _client(script) as client:
        found = client.search("q", k=1)
    assert found.results[0].chunk_id == "c1" and found.results[0].metadata == {"lang": "en"}
    assert len(script.requests) == 3
    assert waits[0] >= 1.0  # Retry-After honoured
    assert 0.0 < waits[1] <= 0.02  # backoff with jitter, capped


def test_client_gives_up_after_max_retries_with_the_servers_code(waits):
    script = Script(*[httpx.Response(503, json=_error_body("store_unavailable"))] * 4)
    with _client(script) as client, pytest.raises(ServiceUnavailableError) as caught:
        client.search("q")
    assert (caught.value.status, caught.value.code) == (503, "store_unavailable")
    assert len(script.requests) == 4 and len(waits) == 3
    assert str(caught.value) == "retriever: it failed (503 store_unavailable)"


def test_client_does_not_wait_for_a_retry_after_over_its_limit(waits):
    script = Script(
        httpx.Response(429, json=_error_body("slow_down"), headers={"Retry-After": "600"})
    )
    with _client(script) as client, pytest.raises(RateLimitError) as caught:
        client.search("q")
    assert caught.value.code == "slow_down" and len(script.requests) == 1 and waits == []


def test_client_retries_connection_errors_then_raises(waits):
    script = Script(*[httpx.ConnectError("refused")] * 4)
    with _client(script) as client, pytest.raises(ApiConnectionError) as caught:
        client.health()  # health is not retried: one try
    assert len(script.requests) == 1 and caught.value.code == "unreachable"
    script = Script(*[httpx.ConnectError("refused")] * 4)
    with _client(script) as client, pytest.raises(ApiConnectionError, match="cannot reach"):
        client.search("q")
    assert len(script.requests) == 4 and len(waits) == 3
    script = Script(httpx.RemoteProtocolError("closed"), httpx.Response(200, json=SEARCH_ANSWER))
    with _client(script) as client:
        assert client.search("q").search_id == "s1"


def test_client_does_not_retry_timeouts_or_other_errors(waits):
    script = Script(httpx.ReadTimeout("slow"))
    with _client(script) as client, pytest.raises(ApiTimeoutError) as caught:
        client.search("q")
    assert caught.value.code == "timeout" and len(script.requests) == 1
    script = Script(httpx.Response(500, json=_error_body("internal_error")))
    with _client(script) as client, pytest.raises(ServerError):
        client.search("q")
    script = Script(httpx.Response(502, text="<html>bad gateway</html>"))
    with _client(script) as client, pytest.raises(ServerError) as caught:
        client.search("q")
    assert (caught.value.code, caught.value.status) == ("http_error", 502)
    assert len(script.requests) == 1 and waits == []


def test_client_errors_carry_field_and_details():
    details = [{"field": "k", "message": "too big", "type": "less_than_equal"}]
    body = {"error": {"code": "validation_error", "message": "k: too big", "field": "k",
                      "details": details}}  # fmt: skip
    script = Script(httpx.Response(422, json=body))
    with _client(script) as client, pytest.raises(BadRequestError) as caught:
        client.search("q", k=5)
    assert (caught.value.field, caught.value.details) == ("k", details)


def test_retry_policy_rules():
    policy = RetryPolicy(backoff_s=1.0, max_backoff_s=4.0)
    for attempt, ceiling in ((0, 1.0), (1, 2.0), (2, 4.0), (5, 4.0)):
        for _ in range(20):
            assert ceiling / 2 <= policy.backoff(attempt) <= ceiling
    assert retry_after_s("3") == 3.0 and retry_after_s(None) is None
    assert retry_after_s("soon") is None
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    with pytest.raises(ValueError, match="max_retries must be >= 0"):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="http"):
        Client("localhost:8000")


# --- what is sent -----------------------------------------------------------------------------
def test_client_feedback_keeps_one_idempotency_key_across_retries(waits):
    script = Script(
        httpx.Response(503, json=_error_body("not_ready")),
        httpx.Response(201, json=FEEDBACK_ANSWER),
        httpx.Response(201, json=FEEDBACK_ANSWER),
    )
    with _client(script, collection="manuals") as client:
        client.feedback(search_id="s1", chunk_id="c1")
        client.feedback(search_id="s1", chunk_id="c1", label="not_relevant")
    first, retry, other = script.bodies()
    assert first == retry and len(first["idempotency_key"]) == 32
    assert other["idempotency_key"] != first["idempotency_key"]
    assert "collection" not in first  # with search_id the server takes the search's
    assert (first["label"], other["label"]) == ("relevant", "not_relevant")


def test_client_sends_its_collection_key_and_quoted_ids():
    script = Script(*[httpx.Response(404, json=_error_body("document_not_found"))] * 3)
    with _client(script, api_key="k-123", collection="manuals") as client:
        for doc_id in ("a/b c?.md", "..", "x.md"):
            with pytest.raises(NotFoundError):
                client.get_document(doc_id, collection="docs" if doc_id == "x.md" else None)
    paths = [r.url.raw_path.decode() for r in script.requests]
    assert paths == [
        "/v1/documents/a%2Fb%20c%3F.md?collection=manuals",
        "/v1/documents/%2E%2E?collection=manuals",
        "/v1/documents/x.md?collection=docs",
    ]
    assert {r.headers["authorization"] for r in script.requests} == {"Bearer k-123"}


def test_client_iterates_documents_page_by_page():
    def page(offset, ids, following):
        documents = [{"doc_id": i, "source": "s", "chunks": 1, "metadata": {}} for i in ids]
        return httpx.Response(200, json={"collection": "docs__v1", "documents": documents,
                                         "offset": offset, "limit": 2, "next_offset": following,
                                         "total": 3})  # fmt: skip

    script = Script(page(0, ["a", "b"], 2), page(2, ["c"], None))
    with _client(script) as client:
        ids = [d.doc_id for d in client.iter_documents(page_size=2, filter={"doc_id": "x"})]
    assert ids == ["a", "b", "c"]
    params = [dict(r.url.params) for r in script.requests]
    assert params == [
        {"filter": '{"doc_id": "x"}', "offset": "0", "limit": "2"},
        {"filter": '{"doc_id": "x"}', "offset": "2", "limit": "2"},
    ]


def test_async_client_retries_like_the_sync_one(waits):
    script = Script(
        httpx.Response(503, json=_error_body("not_ready"), headers={"Retry-After": "2"}),
        httpx.Response(200, json=SEARCH_ANSWER),
    )

    async def run():
        transport = httpx.MockTransport(script)
        async with AsyncClient("http://ragctl.test", transport=transport, retry=FAST) as client:
            return await client.search("q")

    assert asyncio.run(run()).search_id == "s1"
    assert len(script.requests) == 2 and waits[0] >= 2.0


# --- against a real server --------------------------------------------------------------------
QUERY = "How often are the grinder burrs replaced?"


@pytest.fixture
def reader(live_server):
    with Client(live_server.url, api_key=live_server.read_key) as client:
        yield client


@pytest.fixture
def writer(live_server):
    with Client(live_server.url, api_key=live_server.write_key) as client:
        yield client


def _feedback_rows(live_server, search_id, chunk_id):
    with open_feedback_log(live_server.settings, create=False) as log:
        return [
            row
            for row in log.iter_feedback()
            if row["search_id"] == search_id and row["chunk_id"] == chunk_id
        ]


def test_live_search_batch_and_documents(reader, writer):
    found = reader.search(QUERY, k=3)
    assert found.collection == "docs__v1" and len(found.results) == 3
    assert found.results[0].doc_id == "examples/corpus/bar/grinder-maintenance.md"
    queries = [QUERY, "How hot should milk be steamed?", "water filter cartridge"]
    batch = reader.search_batch(queries, k=2)
    assert [s.query for s in batch.searches] == queries
    assert batch.searches[0].results[0].chunk_id == found.results[0].chunk_id
    assert len({s.search_id for s in batch.searches}) == 3
    listed = list(reader.iter_documents(page_size=3))
    assert len(listed) == 8 and [d.doc_id for d in listed] == sorted(d.doc_id for d in listed)
    grinder = reader.get_document("examples/corpus/bar/grinder-maintenance.md")
    assert grinder.chunks and [c.index for c in grinder.chunks] == list(range(len(grinder.chunks)))
    added = writer.upsert_documents([{"id": "client-test.md", "text": "Descale the kettle."}])
    assert (added.documents, added.collection) == (1, "docs__v1")
    assert writer.delete_document("client-test.md").chunks_deleted == added.chunks_written
    with pytest.raises(NotFoundError) as missing:
        writer.delete_document("client-test.md")
    assert missing.value.code == "document_not_found"
    names = [c.name for c in reader.collections().collections]
    assert "docs" in names
    assert [c.name for c in reader.ready().collections][0] == "docs"


def test_live_keys_are_checked_and_refusals_typed(live_server):
    with Client(live_server.url) as anonymous, pytest.raises(AuthenticationError) as caught:
        anonymous.search(QUERY)
    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    with Client(live_server.url, api_key="wrong-key") as wrong:
        with pytest.raises(AuthenticationError, match="wrong API key"):
            wrong.search(QUERY)
    with Client(live_server.url, api_key=live_server.read_key) as reader:
        with pytest.raises(PermissionDeniedError) as caught:
            reader.upsert_documents([{"id": "x.md", "text": "x"}])
        assert (caught.value.status, caught.value.code) == (403, "forbidden")
        with pytest.raises(NotFoundError) as caught:
            reader.search(QUERY, collection="nope")
        assert (caught.value.code, caught.value.field) == ("collection_not_found", "collection")


def test_live_feedback_sent_twice_is_stored_once(live_server, reader, writer):
    found = reader.search(QUERY, k=2)
    chunk = found.results[1].chunk_id
    first = writer.feedback(
        search_id=found.search_id, chunk_id=chunk, idempotency_key="client-test-key-1"
    )
    again = writer.feedback(
        search_id=found.search_id, chunk_id=chunk, idempotency_key="client-test-key-1"
    )
    assert first.feedback_id == again.feedback_id and first.rank == 2
    assert len(_feedback_rows(live_server, found.search_id, chunk)) == 1


def test_live_console_reads(live_server, reader, writer):
    found = reader.search(QUERY, k=1)
    writer.feedback(search_id=found.search_id, chunk_id=found.results[0].chunk_id)
    stats = reader.feedback_stats(days=7)
    assert stats.collection == "docs" and stats.days == 7 and len(stats.by_day) == 7
    assert stats.by_label["relevant"] >= 1 and stats.recent
    models = reader.models()
    assert models.serving == found.model_version
    assert reader.model(found.model_version).version == found.model_version
    assert reader.retune_status().status is None  # no retune ran on this server
    assert reader.reports().folder.endswith("reports")  # data_dir/reports by default
    with pytest.raises(NotFoundError):
        reader.report("registry/v99/candidate")

    async def read_async():
        async with AsyncClient(live_server.url, api_key=live_server.read_key) as client:
            return await client.feedback_stats(days=7), await client.models()

    async_stats, async_models = asyncio.run(read_async())
    assert async_stats.by_label == stats.by_label and async_models.serving == models.serving


class LoseFirstAnswer(httpx.BaseTransport):
    """Sends every request to the real server, but drops the first answer (as a connection
    cut after the server answered would), so the client must retry a request that was done."""

    def __init__(self):
        self.inner = httpx.HTTPTransport()
        self.sent = 0

    def handle_request(self, request):
        response = self.inner.handle_request(request)
        self.sent += 1
        if self.sent == 1:
            response.read()
            response.close()
            raise httpx.RemoteProtocolError("connection closed before the answer", request=request)
        return response


def test_live_feedback_whose_answer_was_lost_is_retried_and_stored_once(live_server, reader):
    found = reader.search(QUERY, k=1)
    chunk = found.results[0].chunk_id
    transport = LoseFirstAnswer()
    with Client(
        live_server.url, api_key=live_server.write_key, transport=transport, retry=FAST
    ) as client:
        stored = client.feedback(search_id=found.search_id, chunk_id=chunk)
    assert transport.sent == 2 and stored.rank == 1
    rows = _feedback_rows(live_server, found.search_id, chunk)
    assert len(rows) == 1 and rows[0]["feedback_id"] == stored.feedback_id


def test_live_503_while_the_server_swaps_is_retried_transparently(live_server, reader):
    """The app answers 503 `not_ready` (with Retry-After) while it has no service: the state
    of a retriever that is starting, stopping or reloading. The client waits and retries."""
    app = live_server.app
    service = app.state.service
    registry = app.state.metrics.registry
    labels = {"method": "POST", "route": "/v1/search", "status": "503"}

    def refused():
        return registry.get_sample_value("ragctl_http_requests_total", labels) or 0.0

    before = refused()

    def swap_back():
        deadline = time.monotonic() + 60
        while refused() <= before and time.monotonic() < deadline:
            time.sleep(0.01)
        app.state.service = service

    app.state.service = None
    restorer = threading.Thread(target=swap_back)
    restorer.start()
    try:
        found = reader.search(QUERY, k=1)
    finally:
        restorer.join(60)
        app.state.service = service
    assert refused() >= before + 1  # it really answered 503 first
    assert found.results[0].doc_id == "examples/corpus/bar/grinder-maintenance.md"


def test_live_async_client_search_and_feedback(live_server):
    async def run():
        async with AsyncClient(live_server.url, api_key=live_server.write_key) as client:
            found = await client.search(QUERY, k=2)
            stored = await client.feedback(
                search_id=found.search_id, chunk_id=found.results[0].chunk_id
            )
            pages = [d async for d in client.iter_documents(page_size=5)]
            return found, stored, pages

    found, stored, pages = asyncio.run(run())
    assert stored.search_id == found.search_id and stored.rank == 1 and len(pages) == 8


def test_live_embed_equals_the_serving_encoder(reader, real_encoder):
    texts = ["espresso grinder burrs", "oat milk"]
    answer = reader.embed(texts)
    assert (answer.model, answer.model_version, answer.dimensions) == ("default", 1, 384)
    got = np.array([d.embedding for d in answer.data], dtype=np.float32)
    expected = real_encoder.encode_documents(texts).full
    assert np.all(np.sum(got * expected, axis=1) >= 0.9999)


# --- the client and the server agree ----------------------------------------------------------
def _models_with_nested(models):
    found = {}

    def visit(model):
        if model.__name__ in found:
            return
        found[model.__name__] = model
        for field in model.model_fields.values():
            for arg in _types_in(field.annotation):
                if isinstance(arg, type) and hasattr(arg, "model_fields"):
                    visit(arg)

    for model in models:
        visit(model)
    return found


def _types_in(annotation):
    yield annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        yield from _types_in(arg)


def test_client_models_match_the_servers_openapi(live_server):
    schema = httpx.get(f"{live_server.url}/openapi.json").json()
    components = schema["components"]["schemas"]
    for mode, models in (("validation", REQUEST_MODELS), ("serialization", RESPONSE_MODELS)):
        for name, model in _models_with_nested(models).items():
            suffix = "-Input" if mode == "validation" else "-Output"
            published = components.get(name) or components.get(name + suffix)
            assert published is not None, f"{name} is not in the server's /openapi.json"
            own = model.model_json_schema(mode=mode)
            assert set(own["properties"]) == set(published["properties"]), name
            assert set(own.get("required", ())) == set(published.get("required", ())), name


def _client_calls():
    """Every API call the client makes, with its method and the route template it hits."""
    calls = Calls(collection=None)
    options = {"k": None, "shortlist": None, "filter": None, "single_stage": False,
               "mode": None, "score_threshold": None, "collection": None}  # fmt: skip
    return [
        calls.health(),
        calls.ready(),
        calls.collections(),
        calls.search("q", **options),
        calls.search_batch(["q"], **options),
        calls.feedback(
            chunk_id="c",
            label="relevant",
            search_id="s",
            query=None,
            idempotency_key=None,
            collection=None,
        ),  # fmt: skip
        calls.upsert_documents([{"id": "d", "text": "t"}], collection=None),
        calls.list_documents(prefix=None, filter=None, offset=0, limit=1, collection=None),
        calls.get_document("DOC", collection=None),
        calls.delete_document("DOC", collection=None),
        calls.embed("t", dimensions=None, input_type="query", collection=None),
        calls.physical_collections(),
        calls.create_collection("c"),
        calls.reload(collection=None),
        calls.activate(7, force=False, collection=None, timeout_s=1),
        calls.rollback(force=False, collection=None, timeout_s=1),
    ]


def test_client_routes_exist_in_the_servers_openapi(live_server):
    paths = httpx.get(f"{live_server.url}/openapi.json").json()["paths"]
    for call in _client_calls():
        template = call.path.replace("DOC", "{doc_id}").replace("/7/", "/{version}/")
        assert call.method.lower() in paths.get(template, {}), (call.method, template)
        operation = paths[template][call.method.lower()]
        answered = operation["responses"]
        ok = next(s for s in answered if s.startswith("2"))
        ref = answered[ok]["content"]["application/json"]["schema"]["$ref"]
        assert ref.split("/")[-1].removesuffix("-Output") == call.answer.__name__, template


def test_client_docs_name_every_method():
    text = (ROOT / "docs" / "client.md").read_text()
    for cls in (Client, AsyncClient):
        for name, _ in inspect.getmembers(cls, inspect.isfunction):
            if not name.startswith("_"):
                assert re.search(rf"\.{name}\(", text), f"docs/client.md never shows {name}()"
    for error in ("AuthenticationError", "ServiceUnavailableError", "RetryPolicy", "code"):
        assert error in text
    assert set(ragctl.client.__all__) >= {"Client", "AsyncClient", "RetryPolicy"}


def test_client_import_stays_light():
    code = (
        "import sys, ragctl.client; "
        "print(sorted(m for m in ('fastapi', 'starlette', 'torch', 'numpy', 'transformers', "
        "'sentence_transformers', 'qdrant_client', 'langchain_core', 'llama_index') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_cli_api_mode_uses_the_client_and_names_collections(live_server, monkeypatch):
    from click.testing import CliRunner

    from ragctl.cli.main import main

    monkeypatch.setenv("RAGCTL_RETRIEVER__READ_API_KEY", live_server.read_key)
    runner = CliRunner()
    found = runner.invoke(
        main, ["search", "--api", live_server.url, "--collection", "docs", QUERY, "--json"]
    )
    assert found.exit_code == 0, found.output
    answer = json.loads(found.output)
    assert answer["collection"] == "docs__v1"
    assert answer["results"][0]["doc_id"] == "examples/corpus/bar/grinder-maintenance.md"
    missing = runner.invoke(main, ["search", "--api", live_server.url, "-c", "nope", QUERY])
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert "no collection 'nope'; known collections: " in missing.output
    assert "(404 collection_not_found)" in missing.output
