"""One suite, every backend: Qdrant Edge (embedded default), qdrant-client local mode (the
server code path without a server), and a live Qdrant server when RAGCTL_TEST_QDRANT_URL is set.
"""

import os
import uuid

import numpy as np
import pytest

from ragctl.core.encoder import Embeddings
from ragctl.core.errors import CollectionNotFoundError, StoreError, StoreLockedError
from ragctl.core.ids import chunk_id
from ragctl.core.matryoshka import normalize, truncate
from ragctl.core.records import Chunk
from ragctl.core.search import SearchParams
from ragctl.core.settings import StoreSettings
from ragctl.core.store.base import CollectionSpec
from ragctl.core.store.edge import EdgeStore
from ragctl.core.store.server import ServerStore

DIM, SHORT = 32, 8
BACKENDS = ["edge", "local", "server"]


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path):
    if request.param == "edge":
        opened = EdgeStore(tmp_path / "qdrant")
    elif request.param == "local":
        opened = ServerStore.connect(StoreSettings(url=":memory:"))
    else:
        url = os.environ.get("RAGCTL_TEST_QDRANT_URL")
        if not url:
            pytest.skip("set RAGCTL_TEST_QDRANT_URL to run the store suite against a live server")
        key = os.environ.get("RAGCTL_TEST_QDRANT_API_KEY")
        opened = ServerStore.connect(StoreSettings(url=url, api_key=key))
    yield opened
    if request.param == "server":  # leave the shared server as we found it
        from qdrant_client import models

        for alias, target in opened.aliases().items():
            if target.startswith(_NAME):
                drop = models.DeleteAlias(alias_name=alias)
                opened.client.update_collection_aliases(
                    change_aliases_operations=[models.DeleteAliasOperation(delete_alias=drop)]
                )
        for spec in opened.list_specs():
            if spec.name.startswith(_NAME):
                opened.drop_collection(spec.physical)
    opened.close()


_NAME = f"t{uuid.uuid4().hex[:8]}"


def _spec(version=1):
    return CollectionSpec(_NAME, version, "fake-model", DIM, (SHORT,))


def _vectors(n, seed=0):
    full = normalize(np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32))
    return Embeddings(full, {SHORT: truncate(full, SHORT)})


def _chunks(doc_id, n, lang="en"):
    return [
        Chunk(
            chunk_id(doc_id, i, f"{doc_id} text {i}"),
            doc_id,
            i,
            f"{doc_id} text {i}",
            0,
            5,
            f"{doc_id}.txt",
            {"lang": lang},
        )
        for i in range(n)
    ]


def _filled(store, docs=10, per_doc=3):
    spec = _spec()
    store.create_collection(spec)
    store.set_alias(_NAME, spec.physical)
    chunks = [c for d in range(docs) for c in _chunks(f"d{d}", per_doc, "en" if d % 2 else "de")]
    vectors = _vectors(len(chunks))
    store.upsert(spec.physical, chunks, vectors)
    return spec.physical, chunks, vectors


def test_store_collections_and_alias(store):
    physical, chunks, _ = _filled(store)
    assert store.resolve(_NAME) == physical
    assert store.resolve(physical) == physical
    [info] = [i for i in store.collections() if i.spec.name == _NAME]
    assert (info.points, info.aliases, info.spec.dim, info.spec.shortlist_dims) == (
        30,
        (_NAME,),
        DIM,
        (SHORT,),
    )
    with pytest.raises(StoreError, match="already exists"):
        store.create_collection(_spec())
    with pytest.raises(CollectionNotFoundError, match="no collection or alias"):
        store.resolve(f"{_NAME}-missing")


def test_store_alias_switch_and_drop(store):
    physical, _, _ = _filled(store)
    second = _spec(version=2)
    store.create_collection(second)
    with pytest.raises(StoreError, match="served by alias"):
        store.drop_collection(physical)
    store.set_alias(_NAME, second.physical)
    assert store.resolve(_NAME) == second.physical
    store.drop_collection(physical)
    assert [s.physical for s in store.list_specs() if s.name == _NAME] == [second.physical]


def test_store_two_stage_finds_exact_match_and_agrees_with_single_stage(store):
    physical, chunks, vectors = _filled(store)
    queries = vectors.embeddings_slice(slice(0, 5))
    two = store.search_batch(physical, queries, SearchParams(k=5, shortlist=30))
    one = store.search_batch(physical, queries, SearchParams(k=5, shortlist=30, single_stage=True))
    for row in range(5):
        assert two[row][0].chunk_id == chunks[row].chunk_id
        assert two[row][0].score == pytest.approx(1.0, abs=1e-4)
        # The shortlist holds every point here, so both stages must rank identically.
        assert [h.chunk_id for h in two[row]] == [h.chunk_id for h in one[row]]
    expected = np.argsort(-(vectors.full @ vectors.full[0]))[:5]
    assert [h.chunk_id for h in one[0]] == [chunks[i].chunk_id for i in expected]


def test_store_shortlist_limits_the_candidates(store):
    physical, chunks, vectors = _filled(store)
    query = vectors.embeddings_slice(slice(0, 1))
    hits = store.search(physical, query, SearchParams(k=3, shortlist=3))
    short_scores = truncate(vectors.full, SHORT) @ query.shortlist[SHORT][0]
    candidates = {chunks[i].chunk_id for i in np.argsort(-short_scores)[:3]}
    assert {h.chunk_id for h in hits} == candidates


def test_store_filter(store):
    physical, _, vectors = _filled(store)
    query = vectors.embeddings_slice(slice(0, 1))
    hits = store.search(physical, query, SearchParams(shortlist=30, filter={"metadata.lang": "en"}))
    assert len(hits) == 10 and all(h.metadata["lang"] == "en" for h in hits)
    hits = store.search(
        physical, query, SearchParams(shortlist=30, filter={"doc_id": ["d1", "d2"]})
    )
    assert sorted({h.doc_id for h in hits}) == ["d1", "d2"] and len(hits) == 6


def _with_numbers(store):
    """10 documents d0..d9, 2 chunks each: metadata year 2010+d (int), weight d/2 (float),
    lang en (odd d) or de (even d)."""
    spec = _spec()
    store.create_collection(spec)
    chunks = [
        Chunk(
            chunk_id(f"d{d}", i, f"d{d} text {i}"), f"d{d}", i, f"d{d} text {i}", 0, 5, "s",
            {"year": 2010 + d, "weight": d / 2, "lang": "en" if d % 2 else "de"},
        )
        for d in range(10)
        for i in range(2)
    ]  # fmt: skip
    vectors = _vectors(len(chunks))
    store.upsert(spec.physical, chunks, vectors)
    return spec.physical, vectors.embeddings_slice(slice(0, 1))


def _docs_found(store, physical, query, payload_filter):
    params = SearchParams(k=20, shortlist=20, filter=payload_filter)
    return sorted(
        {h.doc_id for h in store.search(physical, query, params)}, key=lambda d: int(d[1:])
    )


def test_store_filter_ranges_and_negation(store):
    physical, query = _with_numbers(store)
    docs = lambda flt: _docs_found(store, physical, query, flt)  # noqa: E731
    assert docs({"metadata.year": {"gte": 2013, "lt": 2016}}) == ["d3", "d4", "d5"]
    assert docs({"metadata.year": {"gt": 2017}}) == ["d8", "d9"]
    assert docs({"metadata.weight": {"lte": 1.0}}) == ["d0", "d1", "d2"]
    assert docs({"metadata.weight": {"gt": 3.5, "lte": 4.5}}) == ["d8", "d9"]
    assert docs({"must_not": {"metadata.lang": "de"}}) == ["d1", "d3", "d5", "d7", "d9"]
    assert docs({"must_not": {"doc_id": ["d1", "d3"], "metadata.year": {"gte": 2015}}}) == [
        "d0",
        "d2",
        "d4",
    ]
    # All together: a range, an equality and a negation.
    assert docs(
        {"metadata.year": {"lte": 2016}, "metadata.lang": "en", "must_not": {"doc_id": "d5"}}
    ) == ["d1", "d3"]


def test_store_lists_documents_and_their_chunks(store):
    physical, _ = _with_numbers(store)
    listed = store.documents(physical)
    assert [d.doc_id for d in listed] == sorted(f"d{d}" for d in range(10))
    first = listed[0]
    assert (first.doc_id, first.source, first.chunks) == ("d0", "s", 2)
    assert first.metadata == {"year": 2010, "weight": 0.0, "lang": "de"}
    ranged = store.documents(physical, payload_filter={"metadata.year": {"gte": 2018}})
    assert [d.doc_id for d in ranged] == ["d8", "d9"]
    negated = store.documents(
        physical, prefix="d", payload_filter={"must_not": {"metadata.lang": "de"}}
    )
    assert [d.doc_id for d in negated] == ["d1", "d3", "d5", "d7", "d9"]
    assert store.documents(physical, prefix="d1") == [listed[1]]
    chunks = store.document_chunks(physical, "d3")
    assert [(c.doc_id, c.index, c.text) for c in chunks] == [
        ("d3", 0, "d3 text 0"),
        ("d3", 1, "d3 text 1"),
    ]
    assert store.document_chunks(physical, "nope") == []


def test_store_search_needs_the_shortlist_dim_it_asks_for(store):
    physical, _, vectors = _filled(store)
    query = vectors.embeddings_slice(slice(0, 1))
    with pytest.raises(StoreError, match="no shortlist vector of 16 dims"):
        store.search(physical, query, SearchParams(k=1, shortlist=5, shortlist_dim=16))


def test_store_doc_lookup_and_delete(store):
    physical, chunks, _ = _filled(store)
    found = store.chunk_ids_of(physical, ["d1", "d2", "nope"])
    assert found == {
        "d1": {c.chunk_id for c in chunks[3:6]},
        "d2": {c.chunk_id for c in chunks[6:9]},
    }
    assert store.delete_documents(physical, ["d1", "nope"]) == 3
    assert store.count(physical) == 27
    store.delete_chunks(physical, [chunks[6].chunk_id, "unknown#0@0"])
    assert store.count(physical) == 26
    assert store.chunk_ids_of(physical, ["d1", "d2"]) == {"d2": {c.chunk_id for c in chunks[7:9]}}


def test_store_upsert_replaces_same_chunk(store):
    physical, chunks, vectors = _filled(store)
    store.upsert(physical, chunks[:2], vectors.embeddings_slice(slice(0, 2)))
    assert store.count(physical) == 30
    with pytest.raises(StoreError, match="2 chunks but 1 vectors"):
        store.upsert(physical, chunks[:2], vectors.embeddings_slice(slice(0, 1)))


def test_store_scroll_and_get_round_trip_payload(store):
    physical, chunks, _ = _filled(store)
    scrolled = [c for batch in store.scroll_chunks(physical, batch_size=7) for c in batch]
    assert sorted(c.chunk_id for c in scrolled) == sorted(c.chunk_id for c in chunks)
    got = store.get_chunks(physical, [chunks[4].chunk_id, "missing#0@0"])
    assert got == {chunks[4].chunk_id: chunks[4]}


def test_edge_store_is_locked_to_one_process(tmp_path):
    first = EdgeStore(tmp_path / "qdrant")
    with pytest.raises(StoreLockedError, match=r"in use by pid \d+"):
        EdgeStore(tmp_path / "qdrant")
    first.close()
    EdgeStore(tmp_path / "qdrant").close()


def test_edge_store_survives_reopen_and_ignores_half_created_collection(tmp_path):
    with EdgeStore(tmp_path / "qdrant") as store:
        physical, chunks, vectors = _filled(store)
    # A crash between creating a shard and writing its spec leaves a bare shard directory.
    (tmp_path / "qdrant" / "collections" / f"{_NAME}__v2").mkdir()
    with EdgeStore(tmp_path / "qdrant") as store:
        assert store.resolve(_NAME) == physical
        assert [s.version for s in store.list_specs()] == [1]
        assert store.count(physical) == 30
        hits = store.search(
            physical, vectors.embeddings_slice(slice(3, 4)), SearchParams(k=1, shortlist=10)
        )
        assert hits[0].chunk_id == chunks[3].chunk_id
        store.create_collection(_spec(version=2))  # the leftover is replaced, not an error
        assert store.count(f"{_NAME}__v2") == 0


def test_store_optimize_keeps_results(store):
    physical, chunks, vectors = _filled(store)
    query = vectors.embeddings_slice(slice(2, 3))
    params = SearchParams(k=5, shortlist=30)
    before = [h.chunk_id for h in store.search(physical, query, params)]
    store.optimize(physical)
    assert [h.chunk_id for h in store.search(physical, query, params)] == before
    assert store.count(physical) == 30


def test_store_all_chunk_ids(store):
    physical, chunks, _ = _filled(store)
    assert store.all_chunk_ids(physical) == {c.chunk_id for c in chunks}


def test_store_get_vectors_reads_back_the_upserted_full_vectors(store):
    physical, chunks, vectors = _filled(store)
    wanted = [chunks[i].chunk_id for i in (0, 7, 29)]
    got = store.get_vectors(physical, [*wanted, "missing#0@0"], batch_size=2)
    assert set(got) == set(wanted)
    for i, chunk in zip((0, 7, 29), wanted, strict=True):
        assert got[chunk].dtype == np.float32 and got[chunk].shape == (DIM,)
        np.testing.assert_allclose(got[chunk], vectors.full[i], atol=1e-6)
    assert store.get_vectors(physical, []) == {}
