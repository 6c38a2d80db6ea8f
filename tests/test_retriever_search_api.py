"""Batch search (one encode call), score thresholds, filters with ranges and negation, the
documents listing and the OpenAI-style embeddings route, through TestClient (keyword encoder)."""

import base64

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ragctl.core.matryoshka import normalize
from ragctl.core.settings import load_settings
from ragctl.retriever.app import create_app
from ragctl.retriever.testing import KeywordEncoder

WRITE_KEY = "search-api-write-key-0123"
DOCS = [
    {"id": f"handbook/{name}.md", "text": text, "metadata": {"year": year, "lang": lang}}
    for name, text, year, lang in [
        ("grinder", "The espresso grinder burrs are replaced every 800 kg.", 2019, "en"),
        ("milk", "Steam whole milk to 60 degrees; oat milk to 55 degrees.", 2021, "en"),
        ("refunds", "Refunds over 40 dollars need a shift lead PIN.", 2022, "de"),
        ("wifi", "The guest wifi password changes every week.", 2023, "en"),
        ("roaster", "The roaster drum is preheated for thirty minutes.", 2024, "de"),
    ]
] + [{"id": "faq.md", "text": "Frequently asked: where is the grinder manual?"}]


class CountingEncoder(KeywordEncoder):
    """The keyword encoder, recording the texts of every query encode call."""

    def __init__(self):
        super().__init__()
        self.query_calls: list[list[str]] = []

    def encode_queries(self, texts):
        self.query_calls.append(list(texts))
        return super().encode_queries(texts)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("search-api") / "data",
        retriever={"write_api_key": WRITE_KEY, "max_documents_per_request": 8},
    )
    encoder = CountingEncoder()
    headers = {"Authorization": f"Bearer {WRITE_KEY}"}
    with TestClient(create_app(settings, encoder=encoder), headers=headers) as client:
        assert client.post("/v1/documents", json={"documents": DOCS}).status_code == 200
        yield client, encoder


def _ok(response, status=200):
    assert response.status_code == status, response.text
    return response.json()


def _error(response, status, code, field):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field), error
    return error["message"]


# --- batch search ---
def test_batch_search_encodes_every_query_in_one_call(setup):
    client, encoder = setup
    queries = ["grinder burrs", "oat milk", "wifi password", "refunds PIN", "roaster drum"]
    encoder.query_calls.clear()
    batch = _ok(client.post("/v1/search/batch", json={"queries": queries, "k": 2, "mode": "dense"}))
    assert encoder.query_calls == [queries]  # one model call for the whole batch
    assert (batch["collection"], batch["model_version"], batch["mode"]) == ("docs__v1", 1, "dense")
    assert [s["query"] for s in batch["searches"]] == queries
    assert len({s["search_id"] for s in batch["searches"]}) == len(queries)
    for item in batch["searches"]:  # the same answers as one search each
        single = _ok(
            client.post("/v1/search", json={"query": item["query"], "k": 2, "mode": "dense"})
        )
        # (the keyword encoder ties the non-matching documents: compare scores, and the top)
        assert [round(r["score"], 6) for r in item["results"]] == [
            round(r["score"], 6) for r in single["results"]
        ]
        assert item["results"][0]["chunk_id"] == single["results"][0]["chunk_id"]
    # Each query of the batch is a logged search: feedback can name it.
    first = batch["searches"][0]
    judged = {"search_id": first["search_id"], "chunk_id": first["results"][0]["chunk_id"],
              "label": "relevant"}  # fmt: skip
    assert _ok(client.post("/v1/feedback", json=judged), 201)["rank"] == 1


def test_batch_search_limits(setup):
    client, _ = setup
    message = _error(
        client.post("/v1/search/batch", json={"queries": ["a", "  "]}),
        422,
        "validation_error",
        "queries.1",
    )
    assert "must not be empty" in message
    _error(
        client.post("/v1/search/batch", json={"queries": []}), 422, "validation_error", "queries"
    )
    too_many = {"queries": ["q"] * 101}
    _error(client.post("/v1/search/batch", json=too_many), 422, "validation_error", "queries")
    long = {"queries": ["ok", "x" * 2001]}
    assert "the limit is 2000" in _error(
        client.post("/v1/search/batch", json=long), 422, "validation_error", "queries.1"
    )


# --- score threshold and filters ---
def test_search_score_threshold_keeps_only_the_scores_above(setup):
    client, _ = setup
    query = {"query": "espresso grinder burrs", "k": 6, "mode": "dense"}
    every = _ok(client.post("/v1/search", json=query))["results"]
    scores = [r["score"] for r in every]
    cut = (scores[0] + scores[1]) / 2
    kept = _ok(client.post("/v1/search", json={**query, "score_threshold": cut}))["results"]
    assert [r["chunk_id"] for r in kept] == [every[0]["chunk_id"]]
    none = _ok(client.post("/v1/search", json={**query, "score_threshold": scores[0] + 0.01}))
    assert none["results"] == []
    bad = client.post("/v1/search", json={**query, "score_threshold": "high"})
    _error(bad, 422, "validation_error", "score_threshold")


def test_search_filters_with_ranges_and_negation(setup):
    client, _ = setup

    def docs(flt):
        body = {"query": "grinder milk refunds wifi roaster", "k": 10, "filter": flt}
        return sorted(r["doc_id"] for r in _ok(client.post("/v1/search", json=body))["results"])

    assert docs({"metadata.year": {"gte": 2021, "lt": 2023}}) == [
        "handbook/milk.md",
        "handbook/refunds.md",
    ]
    assert docs({"metadata.year": {"gt": 2020}, "must_not": {"metadata.lang": "de"}}) == [
        "handbook/milk.md",
        "handbook/wifi.md",
    ]
    # A document without the field: left out by a range, kept by a negation.
    assert "faq.md" in docs({"must_not": {"metadata.lang": ["en", "de"]}})
    bad = client.post("/v1/search", json={"query": "x", "filter": {"metadata.year": {"gt": "x"}}})
    assert "gt takes a number" in _error(bad, 422, "validation_error", "filter")


# --- documents ---
def test_documents_list_pages_by_doc_id(setup):
    client, _ = setup
    first = _ok(client.get("/v1/documents", params={"limit": 4}))
    assert first["collection"] == "docs__v1"
    assert (first["offset"], first["limit"], first["next_offset"], first["total"]) == (0, 4, 4, 6)
    ids = [d["doc_id"] for d in first["documents"]]
    assert ids == sorted(ids) and ids[0] == "faq.md"
    rest = _ok(client.get("/v1/documents", params={"offset": 4, "limit": 4}))
    assert rest["next_offset"] is None and len(rest["documents"]) == 2
    assert {d["doc_id"] for d in first["documents"] + rest["documents"]} == {d["id"] for d in DOCS}
    grinder = next(d for d in first["documents"] if d["doc_id"] == "handbook/grinder.md")
    assert grinder == {"doc_id": "handbook/grinder.md", "source": "api", "chunks": 1,
                       "metadata": {"year": 2019, "lang": "en"}}  # fmt: skip
    prefixed = _ok(client.get("/v1/documents", params={"prefix": "handbook/r"}))
    assert [d["doc_id"] for d in prefixed["documents"]] == [
        "handbook/refunds.md",
        "handbook/roaster.md",
    ]
    filtered = _ok(
        client.get("/v1/documents", params={"filter": '{"must_not": {"metadata.lang": "en"}}'})
    )
    assert [d["doc_id"] for d in filtered["documents"]] == [
        "faq.md",
        "handbook/refunds.md",
        "handbook/roaster.md",
    ]
    _error(
        client.get("/v1/documents", params={"filter": "{nope"}), 422, "validation_error", "filter"
    )
    _error(client.get("/v1/documents", params={"filter": "[1]"}), 422, "validation_error", "filter")
    _error(
        client.get("/v1/documents", params={"filter": '{"colour": "red"}'}),
        422,
        "validation_error",
        "filter",
    )
    _error(client.get("/v1/documents", params={"limit": 501}), 422, "validation_error", "limit")


def test_documents_get_one_with_its_chunks(setup):
    client, _ = setup
    one = _ok(client.get("/v1/documents/handbook/milk.md"))
    text = DOCS[1]["text"]
    assert (one["collection"], one["doc_id"], one["source"]) == (
        "docs__v1",
        "handbook/milk.md",
        "api",
    )
    assert one["metadata"] == {"year": 2021, "lang": "en"}
    [chunk] = one["chunks"]
    assert (chunk["index"], chunk["text"], chunk["start"], chunk["end"]) == (0, text, 0, len(text))
    missing = client.get("/v1/documents/handbook/none.md")
    _error(missing, 404, "document_not_found", "doc_id")


# --- embeddings ---
def test_embeddings_equal_the_serving_model(setup):
    client, encoder = setup
    texts = ["espresso grinder", "oat milk"]
    answer = _ok(client.post("/v1/embeddings", json={"input": texts, "model": "ragctl"}))
    assert (answer["object"], answer["model"], answer["model_version"]) == (
        "list",
        "keyword-fake",
        1,
    )
    assert (answer["collection"], answer["dimensions"]) == ("docs__v1", encoder.dim)
    expected = encoder.encode_full(texts)
    got = np.array([d["embedding"] for d in answer["data"]], dtype=np.float32)
    assert [d["index"] for d in answer["data"]] == [0, 1]
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert answer["usage"]["prompt_tokens"] > 0

    packed = _ok(client.post("/v1/embeddings", json={"input": "oat milk", "model": "docs",
                                                      "encoding_format": "base64"}))  # fmt: skip
    decoded = np.frombuffer(base64.b64decode(packed["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(decoded, expected[1], atol=1e-6)

    short = _ok(client.post("/v1/embeddings", json={"input": "oat milk", "dimensions": 16}))
    vector = np.array(short["data"][0]["embedding"], dtype=np.float32)
    assert short["dimensions"] == 16 and vector.shape == (16,)
    np.testing.assert_allclose(vector, normalize(expected[1:, :16])[0], atol=1e-6)


def test_embeddings_refuse_what_they_cannot_embed(setup):
    client, encoder = setup
    post = lambda body: client.post("/v1/embeddings", json=body)  # noqa: E731
    assert "token ids" in _error(post({"input": [[1, 2]]}), 422, "validation_error", "input")
    _error(post({"input": []}), 422, "validation_error", "input")
    _error(post({"input": ["ok", " "]}), 422, "validation_error", "input")
    big = post({"input": "x", "dimensions": encoder.dim + 1})
    assert f"over the model's {encoder.dim}" in _error(big, 422, "validation_error", "dimensions")
    unknown = post({"input": "x", "model": "text-embedding-3-small"})
    assert "neither 'ragctl' nor a collection" in _error(
        unknown, 404, "collection_not_found", "model"
    )
    many = post({"input": ["x"] * 9})
    assert "the limit is 8" in _error(many, 422, "validation_error", "input")
    _error(
        post({"input": "x", "encoding_format": "int8"}), 422, "validation_error", "encoding_format"
    )
