"""The HTTP API through TestClient with the weightless keyword encoder (exact, fast)."""

import asyncio
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from ragctl.core.collections import spec_for_new
from ragctl.core.errors import StoreError
from ragctl.core.records import Document
from ragctl.core.settings import load_settings
from ragctl.retriever.app import create_app
from ragctl.retriever.testing import KeywordEncoder

ADMIN_KEY = "test-admin-key-0123456789"
WRITE_KEY = "test-write-key-0123456789"
AUTH = {"Authorization": f"Bearer {WRITE_KEY}"}
DOCS = [
    {"id": "grinder.md", "text": "The espresso grinder burrs are replaced every 800 kg.",
     "metadata": {"lang": "en", "team": "bar"}},
    {"id": "milk.md", "text": "Steam whole milk to 60 degrees; oat milk to 55 degrees.",
     "metadata": {"lang": "en", "team": "bar"}},
    {"id": "refunds.md", "text": "Refunds over 40 dollars need a shift lead PIN.",
     "metadata": {"lang": "de", "team": "front"}},
    {"id": "wifi/guest.md", "text": "The guest wifi password changes every week.",
     "metadata": {"lang": "en", "team": "it"}},
]  # fmt: skip


def _settings(tmp_path, **retriever):
    return load_settings(
        data_dir=tmp_path / "data",
        retriever={"admin_api_key": ADMIN_KEY, "write_api_key": WRITE_KEY, **retriever},
    )


def _client(app, **kwargs):
    """A TestClient that sends the write key (admin tests pass their own header)."""
    return TestClient(app, headers=AUTH, **kwargs)


@pytest.fixture
def settings(tmp_path):
    return _settings(tmp_path)


@pytest.fixture
def client(settings):
    with _client(create_app(settings, encoder=KeywordEncoder())) as client:
        response = client.post("/v1/documents", json={"documents": DOCS})
        assert response.status_code == 200, response.text
        yield client


@pytest.fixture(scope="module")
def limited_client(tmp_path_factory):
    """One app for the read-only limit tests: at most 2 documents of 100 characters a request."""
    settings = _settings(
        tmp_path_factory.mktemp("limits"), max_documents_per_request=2, max_document_chars=100
    )
    with _client(create_app(settings, encoder=KeywordEncoder())) as client:
        for start in (0, 2):
            response = client.post("/v1/documents", json={"documents": DOCS[start : start + 2]})
            assert response.status_code == 200, response.text
        yield client


def _search(client, query, **body):
    response = client.post("/v1/search", json={"query": query, **body})
    assert response.status_code == 200, response.text
    return response.json()


def _error(response, status, code, field=...):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    if field is not ...:
        assert error["field"] == field
    return error


# --- search ---
def test_retriever_search_ranks_by_shared_words_and_names_the_model(client):
    body = _search(client, "How often are the espresso grinder burrs replaced?", k=2)
    assert body["model_version"] == 1 and body["collection"] == "docs__v1"
    assert body["took_ms"] > 0 and len(body["search_id"]) == 32
    top = body["results"][0]
    assert top["doc_id"] == "grinder.md" and top["text"] == DOCS[0]["text"]
    assert top["metadata"] == {"lang": "en", "team": "bar"} and top["source"] == "api"
    assert (top["start"], top["end"]) == (0, len(DOCS[0]["text"]))
    assert len(body["results"]) == 2 and body["results"][0]["score"] >= body["results"][1]["score"]


def test_retriever_search_filter_and_single_stage(client):
    only_de = _search(client, "milk refunds wifi", filter={"metadata.lang": "de"})
    assert [r["doc_id"] for r in only_de["results"]] == ["refunds.md"]
    some = _search(client, "milk wifi", filter={"doc_id": ["milk.md", "wifi/guest.md"]}, k=5)
    assert {r["doc_id"] for r in some["results"]} == {"milk.md", "wifi/guest.md"}
    two = _search(client, "oat milk degrees", k=3)
    one = _search(client, "oat milk degrees", k=3, single_stage=True)
    assert [r["chunk_id"] for r in one["results"]] == [r["chunk_id"] for r in two["results"]]


def test_retriever_search_defaults_raise_shortlist_to_k(client):
    assert len(_search(client, "milk", k=100)["results"]) == len(DOCS)
    assert len(_search(client, "milk")["results"]) == len(DOCS)  # default k=10


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        ({"query": ""}, "query", "at least 1"),
        ({"query": "   "}, "query", "empty"),
        ({"query": "milk", "k": 0}, "k", "greater than or equal to 1"),
        ({"query": "milk", "k": 101}, "k", "less than or equal to 100"),
        ({"query": "milk", "k": "ten"}, "k", "integer"),
        ({"query": "milk", "shortlist": 1001}, "shortlist", "less than or equal to 1000"),
        ({"query": "milk", "k": 20, "shortlist": 10}, "shortlist", "must be >= k (20)"),
        ({"query": "x" * 2001}, "query", "the limit is 2000"),
        ({"query": "milk", "filter": {"colour": "red"}}, "filter", "cannot filter on 'colour'"),
        ({"query": "milk", "filter": {"doc_id": 1.5}}, "filter", "got 1.5"),
        ({"query": "milk", "filter": {"doc_id": []}}, "filter", "empty list"),
        ({"query": "milk", "filter": {"doc_id": 2**70}}, "filter", "64-bit"),
        ({"query": "milk", "colour": "red"}, "colour", "Extra inputs"),
        ({"k": 3}, "query", "Field required"),
        ({"query": "milk\ud800"}, "query", "unicode"),
        ({"query": "milk", "filter": {"doc_id": "a\ud800"}}, "filter", "not valid Unicode"),
    ],
)
def test_retriever_search_limits_answer_422_naming_field_and_limit(
    limited_client, body, field, needle
):
    response = (
        limited_client.post(  # json.dumps escapes lone surrogates, as a JSON client may send them
            "/v1/search", content=json.dumps(body), headers={"content-type": "application/json"}
        )
    )
    error = _error(response, 422, "validation_error", field)
    assert needle in error["message"]
    assert error["message"].startswith(f"{field}:") or field in error["message"]


def test_retriever_search_without_query_batching(tmp_path):
    settings = _settings(tmp_path, query_batch_size=1)
    with _client(create_app(settings, encoder=KeywordEncoder())) as client:
        assert client.app.state.service.batcher is None
        client.post("/v1/documents", json={"documents": DOCS})
        with ThreadPoolExecutor(max_workers=4) as pool:
            queries = ["oat milk", "guest wifi password"] * 4
            bodies = list(pool.map(lambda q: _search(client, q, k=1), queries))
        assert [b["results"][0]["doc_id"] for b in bodies[:2]] == ["milk.md", "wifi/guest.md"]


def test_retriever_search_query_limit_comes_from_settings(tmp_path):
    settings = _settings(tmp_path, max_query_chars=10)
    with _client(create_app(settings, encoder=KeywordEncoder())) as client:
        error = _error(client.post("/v1/search", json={"query": "x" * 11}), 422, "validation_error")
        assert error["field"] == "query" and "the limit is 10" in error["message"]
        assert client.post("/v1/search", json={"query": "x" * 10}).status_code == 200


def test_retriever_search_is_logged_with_model_version_and_results(client):
    body = _search(client, "guest wifi password", k=3)
    log = client.app.state.service.feedback_log
    logged = log.get_search(body["search_id"])
    assert logged.query == "guest wifi password" and logged.k == 3
    assert logged.model_version == 1 and logged.collection == "docs__v1"
    assert list(logged.chunk_ids) == [r["chunk_id"] for r in body["results"]]
    assert logged.created_at.endswith("+00:00")


# --- feedback ---
def test_retriever_feedback_stores_snapshot_rank_and_model_version(client):
    body = _search(client, "espresso grinder burrs", k=2)
    top = body["results"][0]
    response = client.post(
        "/v1/feedback",
        json={"search_id": body["search_id"], "chunk_id": top["chunk_id"], "label": "relevant"},
    )
    assert response.status_code == 201, response.text
    stored = response.json()
    assert stored["rank"] == 1 and stored["query"] == "espresso grinder burrs"
    assert stored["model_version"] == 1 and stored["doc_id"] == "grinder.md"

    # A chunk the search did not return is accepted (a missed positive), with no rank.
    missed = _search(client, "wifi password", k=4, filter={"doc_id": "wifi/guest.md"})
    grinder_id = top["chunk_id"]
    response = client.post(
        "/v1/feedback",
        json={"search_id": missed["search_id"], "chunk_id": grinder_id, "label": "not_relevant"},
    )
    assert response.status_code == 201 and response.json()["rank"] is None

    # A bare query (no search) is judged against the serving model.
    response = client.post(
        "/v1/feedback", json={"query": "refund PIN", "chunk_id": grinder_id, "label": "relevant"}
    )
    assert response.status_code == 201 and response.json()["search_id"] is None

    rows = list(client.app.state.service.feedback_log.iter_feedback())
    assert [r["label"] for r in rows] == ["relevant", "not_relevant", "relevant"]
    assert rows[0]["chunk_text"] == DOCS[0]["text"] and rows[0]["collection"] == "docs__v1"
    assert rows[2]["query"] == "refund PIN" and rows[2]["model_version"] == 1


def test_retriever_feedback_unknown_ids_are_404_and_write_nothing(client):
    body = _search(client, "milk", k=1)
    chunk_id = body["results"][0]["chunk_id"]
    cases = [
        ({"search_id": "0" * 32, "chunk_id": chunk_id}, "search_not_found", "search_id"),
        ({"search_id": body["search_id"], "chunk_id": "nope#0@x"}, "chunk_not_found", "chunk_id"),
        ({"query": "milk", "chunk_id": "nope#0@x"}, "chunk_not_found", "chunk_id"),
    ]
    for payload, code, field in cases:
        _error(client.post("/v1/feedback", json={**payload, "label": "relevant"}), 404, code, field)
    assert list(client.app.state.service.feedback_log.iter_feedback()) == []


def test_retriever_feedback_needs_a_consistent_query(client):
    body = _search(client, "milk", k=1)
    chunk_id = body["results"][0]["chunk_id"]
    _error(
        client.post("/v1/feedback", json={"chunk_id": chunk_id, "label": "relevant"}),
        422,
        "query_required",
        "query",
    )
    _error(
        client.post(
            "/v1/feedback",
            json={"search_id": body["search_id"], "query": "tea", "chunk_id": chunk_id,
                  "label": "relevant"},
        ),
        422,
        "query_mismatch",
        "query",
    )  # fmt: skip
    _error(
        client.post("/v1/feedback", json={"chunk_id": chunk_id, "query": "milk", "label": "meh"}),
        422,
        "validation_error",
        "label",
    )


def test_retriever_feedback_concurrent_posts_are_all_stored(client):
    body = _search(client, "milk wifi refunds espresso", k=4)
    ids = [r["chunk_id"] for r in body["results"]]

    def post(i):
        return client.post(
            "/v1/feedback",
            json={"search_id": body["search_id"], "chunk_id": ids[i % len(ids)],
                  "label": "relevant" if i % 3 else "not_relevant"},
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(post, range(120)))
    assert all(r.status_code == 201 for r in responses)
    assert len({r.json()["feedback_id"] for r in responses}) == 120
    stats = client.app.state.service.feedback_log.stats()
    assert stats.feedback == 120 and stats.by_label == {"relevant": 80, "not_relevant": 40}


# --- documents ---
def test_retriever_documents_upsert_is_idempotent_and_replaces_changed_text(client):
    again = client.post("/v1/documents", json={"documents": DOCS}).json()
    assert (again["documents"], again["unchanged"], again["chunks_written"]) == (4, 4, 0)
    changed = client.post(
        "/v1/documents", json={"documents": [{"id": "milk.md", "text": "Milk is steamed cold."}]}
    ).json()
    assert (changed["chunks_written"], changed["chunks_deleted"]) == (1, 1)
    assert _search(client, "steamed cold", k=1)["results"][0]["text"] == "Milk is steamed cold."


def test_retriever_documents_delete_then_404(client):
    response = client.delete("/v1/documents/wifi/guest.md")
    assert response.status_code == 200 and response.json()["chunks_deleted"] == 1
    assert all(r["doc_id"] != "wifi/guest.md" for r in _search(client, "wifi")["results"])
    _error(client.delete("/v1/documents/wifi/guest.md"), 404, "document_not_found", "doc_id")


@pytest.mark.parametrize(
    ("content", "field", "needle"),
    [
        ('{"documents": []}', "documents", "at least 1"),
        ('{"documents": [{"id": "a", "text": "  "}]}', "documents.0.text", "empty"),
        ('{"documents": [{"id": "", "text": "x"}]}', "documents.0.id", "at least 1"),
        ('{"documents": [{"id": "a", "text": "x", "metadata": {"n": NaN}}]}',
         "documents.0.metadata", "not finite"),
        ('{"documents": [{"id": "a", "text": "x", "metadata": {"n": 99999999999999999999}}]}',
         "documents.0.metadata", "64-bit"),
        ('{"documents": [{"id": "a", "text": "x"}, {"id": "b", "text": "y"}, {"id": "c", '
         '"text": "z"}]}', "documents", "limit is 2"),
        ('{"documents": [{"id": "a", "text": "' + "w " * 60 + '"}]}', "documents.0.text",
         "the limit is 100"),
    ],
)  # fmt: skip
def test_retriever_documents_limits(limited_client, content, field, needle):
    response = limited_client.post(
        "/v1/documents", content=content, headers={"content-type": "application/json"}
    )
    error = _error(response, 422, "validation_error", field)
    assert needle in error["message"]


# --- errors, health, metrics ---
def test_retriever_every_error_is_json_with_a_code(tmp_path):
    settings = _settings(tmp_path, max_body_mib=0.001)
    with _client(create_app(settings, encoder=KeywordEncoder())) as client:
        _error(client.get("/v1/nowhere"), 404, "not_found", None)
        error = _error(client.put("/v1/search", json={}), 405, "method_not_allowed")
        assert "PUT" in error["message"]
        _error(
            client.post(
                "/v1/search", content=b'{"query": ', headers={"content-type": "application/json"}
            ),
            422,
            "invalid_json",
        )
        _error(client.post("/v1/search", json=["a list"]), 422, "validation_error")
        big = {"documents": [{"id": "a", "text": "x" * 5000}]}
        error = _error(client.post("/v1/documents", json=big), 413, "payload_too_large")
        assert "1048 bytes" in error["message"]


def test_retriever_unexpected_errors_are_logged_json_500(tmp_path, caplog):
    def boom(texts):
        if texts == ["explode"]:
            raise RuntimeError("kaboom")

    app = create_app(_settings(tmp_path), encoder=KeywordEncoder(before_encode=boom))
    with _client(app, raise_server_exceptions=False) as client:
        with caplog.at_level(logging.ERROR, logger="retriever"):
            response = client.post("/v1/search", json={"query": "explode"})
        _error(response, 500, "internal_error", None)
        assert "kaboom" not in response.text
        assert any("unhandled error in POST /v1/search" in r.getMessage() for r in caplog.records)
        metrics = client.get("/metrics").text
        assert (
            'ragctl_http_requests_total{method="POST",route="/v1/search",status="500"} 1.0'
            in metrics
        )


def test_retriever_store_errors_map_to_503(tmp_path):
    def fail(texts):
        raise StoreError("Qdrant Edge: disk on fire")

    with TestClient(
        create_app(_settings(tmp_path), encoder=KeywordEncoder(before_encode=fail))
    ) as client:
        _error(client.post("/v1/search", json={"query": "milk"}), 503, "store_unavailable")


def test_retriever_health_and_ready(client, monkeypatch):
    assert client.get("/v1/health").json() == {"status": "ok"}
    ready = client.get("/v1/ready").json()
    assert ready["status"] == "ready" and ready["collection"] == "docs__v1"
    assert ready["model"] == "keyword-fake" and ready["model_version"] == 1

    store = client.app.state.service.store

    def unreachable(name):
        raise StoreError("connection refused")

    monkeypatch.setattr(store, "resolve", unreachable)
    error = _error(client.get("/v1/ready"), 503, "not_ready")
    assert "store unreachable: connection refused" in error["message"]
    assert client.get("/v1/health").status_code == 200


def test_retriever_not_ready_before_startup(settings):
    client = _client(create_app(settings, encoder=KeywordEncoder()))  # no lifespan run
    _error(client.get("/v1/ready"), 503, "not_ready")
    refused = client.post("/v1/search", json={"query": "milk"})
    _error(refused, 503, "not_ready")
    assert refused.headers["retry-after"] == "1"  # clients (ragctl.client) wait, then retry


def test_retriever_metrics_per_route_stages_feedback_and_version(client):
    body = _search(client, "milk", k=1)
    client.post(
        "/v1/feedback",
        json={"search_id": body["search_id"], "chunk_id": body["results"][0]["chunk_id"],
              "label": "relevant"},
    )  # fmt: skip
    client.get("/v1/nowhere/at/all")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    for line in (
        'ragctl_http_requests_total{method="POST",route="/v1/search",status="200"} 1.0',
        'ragctl_http_requests_total{method="POST",route="/v1/documents",status="200"} 1.0',
        'ragctl_http_requests_total{method="GET",route="<unmatched>",status="404"} 1.0',
        'ragctl_http_request_duration_seconds_count{method="POST",route="/v1/search"} 1.0',
        'ragctl_search_stage_seconds_count{collection="docs",stage="queue"} 1.0',
        'ragctl_search_stage_seconds_count{collection="docs",stage="encode"} 1.0',
        'ragctl_search_stage_seconds_count{collection="docs",stage="store"} 1.0',
        'ragctl_query_encode_batch_size_count{collection="docs"} 1.0',
        'ragctl_query_encode_batch_size_bucket{collection="docs",le="1.0"} 1.0',
        'ragctl_search_stage_seconds_count{collection="docs",stage="log"} 1.0',
        'ragctl_searches_total{collection="docs",mode="hybrid"} 1.0',
        'ragctl_feedback_total{collection="docs",label="relevant"} 1.0',
        'ragctl_documents_chunks_written_total{collection="docs"} 4.0',
        'ragctl_serving_model_version{collection="docs"} 1.0',
    ):
        assert line in text, line


def test_retriever_apps_keep_separate_metrics(tmp_path):
    first = create_app(_settings(tmp_path / "a"), encoder=KeywordEncoder())
    second = create_app(_settings(tmp_path / "b"), encoder=KeywordEncoder())
    with _client(first) as a, _client(second) as b:
        a.get("/v1/health")
        assert 'route="/v1/health"' in a.get("/metrics").text
        assert 'route="/v1/health"' not in b.get("/metrics").text


# --- admin ---
def test_retriever_admin_needs_the_key(client, caplog):
    url = "/v1/admin/collections"
    with caplog.at_level(logging.WARNING, logger="ragctl.retriever"):
        missing = _error(client.get(url, headers={"Authorization": ""}), 401, "unauthorized")
        wrong = client.get(url, headers={"Authorization": "Bearer not-the-key"})
        lower = _error(client.get(url), 403, "forbidden")  # the client's write key
    assert (
        "missing API key: send Authorization: Bearer <key> with an admin key"
        in (missing["message"])
    )
    assert lower["message"] == "a write key cannot admin: this route needs an admin key"
    _error(wrong, 401, "unauthorized")
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert ADMIN_KEY not in wrong.text and "not-the-key" not in caplog.text
    assert WRITE_KEY not in caplog.text
    assert "request refused (wrong API key): GET /v1/admin/collections" in caplog.text
    _error(client.get(url, headers={"Authorization": f"Basic {ADMIN_KEY}"}), 401, "unauthorized")

    ok = client.get(url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert ok.status_code == 200
    [info] = ok.json()["collections"]
    assert info["physical"] == "docs__v1" and info["aliases"] == ["docs"]
    assert info["serving"] is True and info["points"] == 4 and info["model"] == "keyword-fake"


@pytest.mark.parametrize("key", [None, "", "   "])
def test_retriever_admin_disabled_without_a_key(tmp_path, key):
    settings = load_settings(data_dir=tmp_path / "data", retriever={"admin_api_key": key})
    with _client(create_app(settings, encoder=KeywordEncoder())) as client:
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"}):
            error = _error(
                client.get("/v1/admin/collections", headers=headers), 403, "admin_disabled"
            )
            assert "RAGCTL_RETRIEVER__ADMIN_API_KEY" in error["message"]
        _error(client.post("/v1/admin/reload"), 403, "admin_disabled")


def _add_version_2(client, encoder):
    """Create docs__v2 with one document and point the alias at it, like a promotion would."""
    store = client.app.state.service.store
    spec = spec_for_new("docs", 2, encoder)
    store.create_collection(spec)
    doc = Document("v2-only.md", "Version two knows about cold brew.", "api")
    chunks = client.app.state.service.current().chunker.chunk(doc)
    store.upsert(spec.physical, chunks, encoder.encode_documents([c.text for c in chunks]))
    store.set_alias("docs", spec.physical)


def test_retriever_admin_reload_swaps_atomically_and_inflight_searches_stay_consistent(tmp_path):
    encoder_entered, release = threading.Event(), threading.Event()

    def hold_first_search(texts):
        if texts == ["hold me"]:
            encoder_entered.set()
            assert release.wait(10)

    encoder = KeywordEncoder(before_encode=hold_first_search)
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with _client(create_app(_settings(tmp_path), encoder=encoder)) as client:
        client.post("/v1/documents", json={"documents": DOCS})
        _add_version_2(client, encoder)
        assert "points at docs__v2" in client.get("/v1/ready").json()["detail"]
        with ThreadPoolExecutor(max_workers=1) as pool:
            inflight = pool.submit(client.post, "/v1/search", json={"query": "hold me"})
            assert encoder_entered.wait(10)
            reload = client.post("/v1/admin/reload", headers=auth).json()
            release.set()
            held = inflight.result(timeout=10).json()
        assert reload == {"changed": True, "previous": "docs__v1", "current": "docs__v2",
                          "model_version": 2}  # fmt: skip
        assert (held["collection"], held["model_version"]) == ("docs__v1", 1)
        after = _search(client, "cold brew")
        assert (after["collection"], after["model_version"]) == ("docs__v2", 2)
        assert [r["doc_id"] for r in after["results"]] == ["v2-only.md"]
        assert client.post("/v1/admin/reload", headers=auth).json()["changed"] is False
        assert 'ragctl_serving_model_version{collection="docs"} 2.0' in client.get("/metrics").text


def test_retriever_admin_reload_picks_up_a_new_search_profile(client, settings):
    from ragctl.core.registry import ModelRegistry

    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert _search(client, "espresso grinder")["mode"] == "hybrid"  # the default profile
    assert client.post("/v1/admin/reload", headers=auth).json()["changed"] is False
    ModelRegistry(settings.data_dir).update(1, search={"mode": "sparse", "fusion": None})
    assert _search(client, "espresso grinder")["mode"] == "hybrid"  # not until a reload
    reload = client.post("/v1/admin/reload", headers=auth).json()
    assert reload["changed"] is True and reload["current"] == "docs__v1"
    assert _search(client, "espresso grinder")["mode"] == "sparse"


def test_retriever_search_does_not_block_the_event_loop(settings):
    """While one search is stuck in encoding, the loop still answers other requests."""
    started, release = threading.Event(), threading.Event()

    def block(texts):
        if texts == ["slow query"]:
            started.set()
            release.wait(10)

    app = create_app(settings, encoder=KeywordEncoder(before_encode=block))

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                slow = asyncio.create_task(client.post("/v1/search", json={"query": "slow query"}))
                await asyncio.to_thread(started.wait, 10)
                health = await asyncio.wait_for(client.get("/v1/health"), timeout=5)
                other = await asyncio.wait_for(client.get("/v1/ready"), timeout=5)
                assert not slow.done()
                release.set()
                return health, other, await slow

    health, other, slow = asyncio.run(scenario())
    assert health.status_code == other.status_code == slow.status_code == 200
