"""Several collections per server: named per request, loaded on first use, one encoder for
collections of one model, feedback and metrics per collection, unknown names a 404."""

import pytest
from fastapi.testclient import TestClient

from ragctl.core.collections import spec_for_new
from ragctl.core.settings import load_settings
from ragctl.core.store import open_store
from ragctl.retriever.app import create_app
from ragctl.retriever.testing import KeywordEncoder

ADMIN_KEY = "collections-admin-key-0123"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
DOCS = [
    {"id": "grinder.md", "text": "The espresso grinder burrs are replaced every 800 kg."},
    {"id": "milk.md", "text": "Steam whole milk to 60 degrees for a latte."},
]
MANUALS = [
    {"id": "roaster.md", "text": "The roaster drum is preheated for thirty minutes."},
    {"id": "grinder-manual.md", "text": "Grinder manual: burrs unscrew counterclockwise."},
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """An app whose store already holds `docs` and `archive` (made before it started), with
    `manuals` created through the admin API."""
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("collections") / "data",
        retriever={"admin_api_key": ADMIN_KEY},
    )
    encoder = KeywordEncoder()
    with open_store(settings) as store:  # a collection made earlier, say by `ragctl ingest`
        spec = spec_for_new("archive", 1, encoder, settings.lexical.spec())
        store.create_collection(spec)
        store.set_alias("archive", spec.physical)
    with TestClient(create_app(settings, encoder=encoder), headers=AUTH) as client:
        assert client.post("/v1/documents", json={"documents": DOCS}).status_code == 200
        created = client.post("/v1/admin/collections", json={"name": "manuals"})
        assert created.status_code == 201, created.text
        posted = client.post("/v1/documents", json={"documents": MANUALS, "collection": "manuals"})
        assert posted.status_code == 200 and posted.json()["collection"] == "manuals__v1"
        yield client, encoder


def _search(client, query, **body):
    response = client.post("/v1/search", json={"query": query, "mode": "dense", **body})
    assert response.status_code == 200, response.text
    return response.json()


def test_collections_search_the_one_named(setup):
    client, _ = setup
    default = _search(client, "grinder burrs")
    manuals = _search(client, "grinder burrs", collection="manuals")
    assert default["collection"] == "docs__v1" and manuals["collection"] == "manuals__v1"
    assert {r["doc_id"] for r in default["results"]} == {"grinder.md", "milk.md"}
    assert {r["doc_id"] for r in manuals["results"]} == {"roaster.md", "grinder-manual.md"}
    assert manuals["results"][0]["doc_id"] == "grinder-manual.md"
    assert _search(client, "grinder", collection="docs")["collection"] == "docs__v1"


def test_collections_unknown_name_is_404_naming_the_known_ones(setup):
    client, _ = setup
    for response in (
        client.post("/v1/search", json={"query": "x", "collection": "nope"}),
        client.post("/v1/search/batch", json={"queries": ["x"], "collection": "nope"}),
        client.post("/v1/documents", json={"documents": DOCS, "collection": "nope"}),
        client.get("/v1/documents", params={"collection": "nope"}),
        client.get("/v1/documents/grinder.md", params={"collection": "nope"}),
        client.delete("/v1/documents/grinder.md", params={"collection": "nope"}),
        client.post("/v1/feedback", json={"query": "x", "chunk_id": "c", "label": "relevant",
                                          "collection": "nope"}),
        client.post("/v1/admin/rollback", params={"collection": "nope"}),
    ):  # fmt: skip
        assert response.status_code == 404, response.text
        error = response.json()["error"]
        assert (error["code"], error["field"]) == ("collection_not_found", "collection")
        assert (
            "no collection 'nope'; known collections: archive, docs, manuals" in (error["message"])
        )
    bad = client.post("/v1/search", json={"query": "x", "collection": "no/such"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "collection"


def test_collections_load_on_first_use_and_share_one_encoder(setup):
    client, encoder = setup
    service = client.app.state.service
    names = [s.name for s in service.collections.loaded()]
    assert "archive" not in names  # never named by a request yet
    listed = client.get("/v1/collections").json()
    assert listed["default"] == "docs"
    by_name = {c["name"]: c for c in listed["collections"]}
    assert set(by_name) == {"archive", "docs", "manuals"}
    assert by_name["archive"]["loaded"] is False and by_name["docs"]["default"] is True
    assert (by_name["manuals"]["points"], by_name["manuals"]["physical"]) == (2, "manuals__v1")

    assert _search(client, "anything", collection="archive")["results"] == []
    ready = client.get("/v1/ready").json()
    assert ready["collection"] == "docs__v1"
    states = {c["name"]: c for c in ready["collections"]}
    assert {"docs", "manuals", "archive"} <= set(states)
    assert states["archive"] == {
        "name": "archive", "physical": "archive__v1", "model": "keyword-fake",
        "model_version": 1, "ready": True, "detail": "serving archive__v1",
    }  # fmt: skip
    # Every collection here was embedded by the keyword model: one encoder serves them all.
    encoders = {id(s.current().encoder) for s in service.collections.loaded()}
    assert encoders == {id(encoder)}
    assert client.get("/v1/collections").json()["collections"][0]["loaded"] is True


def test_collections_create_refuses_an_existing_name(setup):
    client, _ = setup
    again = client.post("/v1/admin/collections", json={"name": "manuals"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "collection_exists"
    assert client.post("/v1/admin/collections", json={"name": "a b"}).status_code == 422


def test_collections_feedback_lands_in_the_search_collection(setup):
    client, _ = setup
    found = _search(client, "roaster preheated", collection="manuals")
    chunk = found["results"][0]["chunk_id"]
    judged = {"search_id": found["search_id"], "chunk_id": chunk, "label": "relevant"}
    stored = client.post("/v1/feedback", json=judged)
    assert stored.status_code == 201, stored.text
    assert (stored.json()["collection"], stored.json()["rank"]) == ("manuals__v1", 1)
    mismatch = client.post("/v1/feedback", json={**judged, "collection": "docs"})
    assert mismatch.status_code == 422
    assert (mismatch.json()["error"]["code"], mismatch.json()["error"]["field"]) == (
        "collection_mismatch",
        "collection",
    )
    # Free text: the chunk is looked up in the collection named.
    free = {"query": "roaster", "chunk_id": chunk, "label": "relevant"}
    assert client.post("/v1/feedback", json=free).status_code == 404  # not in docs
    free_text = client.post("/v1/feedback", json={**free, "collection": "manuals"})
    assert free_text.status_code == 201 and free_text.json()["free_text"] is True
    assert free_text.json()["collection"] == "manuals__v1"


def test_collections_documents_and_deletes_per_collection(setup):
    client, _ = setup
    listed = client.get("/v1/documents", params={"collection": "manuals"}).json()
    assert [d["doc_id"] for d in listed["documents"]] == ["grinder-manual.md", "roaster.md"]
    assert client.get("/v1/documents/roaster.md").status_code == 404  # not in docs
    one = client.get("/v1/documents/roaster.md", params={"collection": "manuals"})
    assert one.status_code == 200 and one.json()["collection"] == "manuals__v1"
    extra = {"id": "extra.md", "text": "A page only the manuals have."}
    client.post("/v1/documents", json={"documents": [extra], "collection": "manuals"})
    assert client.delete("/v1/documents/extra.md").status_code == 404  # default: docs
    gone = client.delete("/v1/documents/extra.md", params={"collection": "manuals"})
    assert gone.status_code == 200 and gone.json()["collection"] == "manuals__v1"


def test_collections_metrics_are_labelled_by_collection(setup):
    client, _ = setup
    _search(client, "milk", collection="manuals")
    batch = {"queries": ["a milk", "b milk"], "collection": "archive", "mode": "dense"}
    assert client.post("/v1/search/batch", json=batch).status_code == 200
    text = client.get("/metrics").text
    for line in (
        'ragctl_searches_total{collection="archive",mode="dense"} ',
        'ragctl_searches_total{collection="manuals",mode="dense"} ',
        'ragctl_search_stage_seconds_count{collection="manuals",stage="encode"} ',
        'ragctl_documents_chunks_written_total{collection="manuals"} ',
        'ragctl_serving_model_version{collection="docs"} 1.0',
        'ragctl_serving_model_version{collection="manuals"} 1.0',
        'ragctl_serving_model_version{collection="archive"} 1.0',
    ):
        assert line in text, line
