"""Sparse and hybrid search on both backends, and sparse + dense vectors kept in step."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

from ragctl.core.collections import BoundCollection, spec_for_new
from ragctl.core.encoder import Embeddings
from ragctl.core.errors import StoreError
from ragctl.core.ids import chunk_id
from ragctl.core.lexical import LexicalSpec
from ragctl.core.matryoshka import normalize, truncate
from ragctl.core.profile import resolve_profile
from ragctl.core.records import Chunk, Document
from ragctl.core.registry import ModelRegistry
from ragctl.core.search import FusionParams, SearchMode, SearchParams
from ragctl.core.settings import GateSettings, StoreSettings, load_settings
from ragctl.core.store.base import CollectionSpec
from ragctl.core.store.edge import EdgeStore
from ragctl.core.store.server import ServerStore
from ragctl.evalkit.gate import decide
from ragctl.evalkit.results import EvalReport, RunRow
from ragctl.ingest.pipeline import ingest_documents, make_chunker
from ragctl.retriever.app import create_app
from ragctl.retriever.testing import KeywordEncoder
from ragctl.tuner.profiles import choose_profile
from ragctl.tuner.promote import reembed, rollback, switch

DIM, SHORT = 32, 8
TEXTS = [
    "Marbury v. Madison established judicial review of acts of Congress.",
    "The espresso grinder burrs are replaced every 800 kilograms of coffee.",
    "Steam whole milk to sixty degrees and oat milk to fifty-five degrees.",
    "Refunds over forty dollars need the PIN of a shift lead.",
    "Judicial review lets courts strike down statutes that violate the constitution.",
    "The guest wifi password changes every Monday morning.",
]
SPEC = CollectionSpec("docs", 1, "fake-model", DIM, (SHORT,), lexical=LexicalSpec())


def _vectors(n, seed=0):
    full = normalize(np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32))
    return Embeddings(full, {SHORT: truncate(full, SHORT)})


def _chunks(texts=TEXTS):
    return [
        Chunk(chunk_id(f"d{i}", 0, t), f"d{i}", 0, t, 0, len(t), f"d{i}.txt", {"n": i % 2})
        for i, t in enumerate(texts)
    ]


@pytest.fixture(params=["edge", "local"])
def store(request, tmp_path):
    opened = EdgeStore(tmp_path / "qdrant") if request.param == "edge" else None
    opened = opened or ServerStore.connect(StoreSettings(url=":memory:"))
    opened.create_collection(SPEC)
    opened.upsert(SPEC.physical, _chunks(), _vectors(len(TEXTS)))
    yield opened
    opened.close()


def _ids(hits):
    return [h.doc_id for h in hits]


SIX = SearchParams(k=6, shortlist=6)
SIX_SPARSE = SearchParams(k=6, shortlist=6, mode="sparse")


def _hybrid(fusion: FusionParams) -> SearchParams:
    return SearchParams(k=6, shortlist=6, mode="hybrid", fusion=fusion)


def test_hybrid_sparse_mode_finds_the_keyword_chunk_without_dense_vectors(store):
    hits = store.search(SPEC.physical, None, SearchParams(k=3, mode="sparse"), text="Marbury")
    assert _ids(hits) == ["d0"]
    hits = store.search(SPEC.physical, None, SearchParams(k=6, mode="sparse"), "judicial reviews")
    assert set(_ids(hits)) == {"d0", "d4"}  # stemmed: reviews -> review


def test_hybrid_fuses_both_branches_as_weighted_rrf(store):
    query = _vectors(1, seed=9)
    text = "judicial review of statutes"
    dense = store.search(SPEC.physical, query, SIX)
    sparse = store.search(SPEC.physical, None, SIX_SPARSE, text)
    for weights in ((1.0, 1.0), (1.0, 4.0), (3.0, 0.5)):
        fusion = FusionParams(
            method="rrf", rrf_k=10, dense_weight=weights[0], sparse_weight=weights[1]
        )
        hybrid = store.search(SPEC.physical, query, _hybrid(fusion), text)
        # Qdrant's weighted RRF divides a branch's rank (1-based) by its weight:
        # score = sum over branches of 1 / (k - 1 + rank / weight).
        expected: dict[str, float] = {}
        for weight, ranked in zip(weights, (dense, sparse), strict=True):
            for rank, hit in enumerate(ranked, start=1):
                expected[hit.doc_id] = expected.get(hit.doc_id, 0.0) + 1 / (9 + rank / weight)
        got = {h.doc_id: h.score for h in hybrid}
        assert got == pytest.approx(expected, rel=1e-4), weights


def test_hybrid_dbsf_weights_count_a_branch_that_many_times(store):
    query = _vectors(1, seed=5)
    text = "judicial review of statutes milk"
    scores = {}
    for weights in ((1, 1), (1, 3), (0, 1)):
        fusion = FusionParams(method="dbsf", dense_weight=weights[0], sparse_weight=weights[1])
        hits = store.search(SPEC.physical, query, _hybrid(fusion), text)
        scores[weights] = {h.doc_id: h.score for h in hits}
    sparse = store.search(SPEC.physical, None, SIX_SPARSE, text)
    assert list(scores[(0, 1)]) == [h.doc_id for h in sparse]  # dense counted 0 times
    only_dense = set(scores[(1, 1)]) - {h.doc_id for h in sparse}
    for doc in only_dense:  # a dense-only hit keeps its dense part, whatever sparse counts
        assert scores[(1, 3)][doc] == pytest.approx(scores[(1, 1)][doc], rel=1e-5)


def test_hybrid_rescore_orders_the_fused_pool_by_the_full_vector(store):
    query = _vectors(1, seed=6)
    text = "judicial review milk coffee"
    fused = store.search(SPEC.physical, query, _hybrid(FusionParams()), text)
    rescored = store.search(SPEC.physical, query, _hybrid(FusionParams(rescore=True)), text)
    dense = store.search(SPEC.physical, query, SearchParams(k=6, shortlist=6, single_stage=True))
    cosine = {h.doc_id: h.score for h in dense}
    assert {h.doc_id for h in rescored} == {h.doc_id for h in fused}  # the same pool
    assert [h.score for h in rescored] == pytest.approx([cosine[h.doc_id] for h in rescored])
    assert [h.score for h in rescored] == sorted((h.score for h in rescored), reverse=True)


def test_hybrid_dbsf_and_filters_apply_to_every_branch(store):
    query = _vectors(1, seed=3)
    for mode in ("sparse", "hybrid"):
        params = SearchParams(k=6, shortlist=6, mode=mode, filter={"metadata.n": 0})
        hits = store.search(SPEC.physical, query, params, text="judicial review milk")
        assert hits and all(h.metadata["n"] == 0 for h in hits), mode


def test_hybrid_query_of_only_stop_words_falls_back_to_dense(store):
    query = _vectors(1, seed=4)
    dense = store.search(SPEC.physical, query, SearchParams(k=3, shortlist=6))
    sparse = SearchParams(k=3, shortlist=6, mode="sparse")
    assert store.search(SPEC.physical, query, sparse, text="the of") == []
    hybrid_params = SearchParams(k=3, shortlist=6, mode="hybrid")
    hybrid = store.search(SPEC.physical, query, hybrid_params, text="the of")
    assert _ids(hybrid) == _ids(dense)


def test_hybrid_missing_texts_and_collections_without_lexical_vectors_are_refused(store):
    query = _vectors(1)
    with pytest.raises(StoreError, match="hybrid search needs the query texts"):
        store.search(SPEC.physical, query, SearchParams(k=1, mode="hybrid"))
    with pytest.raises(StoreError, match="sparse search needs the query texts"):
        store.search(SPEC.physical, None, SearchParams(k=1, mode="sparse"))
    with pytest.raises(StoreError, match="dense search needs the query embeddings"):
        store.search(SPEC.physical, None, SearchParams(k=1), text="x")
    dense_only = CollectionSpec("plain", 1, "fake-model", DIM, (SHORT,))
    store.create_collection(dense_only)
    with pytest.raises(StoreError, match="searched in sparse mode; use mode dense"):
        store.search(dense_only.physical, query, SearchParams(k=1, mode="sparse"), text="x")
    assert store.stored_vectors(dense_only.physical) == {}


def test_hybrid_vectors_stay_in_step_through_ingest_delete_reingest_promotion_rollback(
    tmp_path, real_encoder
):
    """Every chunk of every collection holds full, mrl_64 and lex, and nothing else lingers."""
    settings = load_settings(data_dir=tmp_path / "data")
    registry = ModelRegistry(settings.data_dir)
    registry.ensure_base(real_encoder.model_ref)
    store = EdgeStore(settings.qdrant_path)
    spec = spec_for_new("docs", 1, real_encoder, LexicalSpec())
    store.create_collection(spec)
    store.set_alias("docs", spec.physical)
    registry.mark_serving("docs", 1)
    chunker = make_chunker(real_encoder, 32, 4)
    docs = [Document(f"d{i}", text * 6, f"d{i}.txt") for i, text in enumerate(TEXTS)]

    def ingest(documents):
        target = BoundCollection(store, store.spec(store.resolve("docs")), real_encoder)
        ingest_documents(documents, target, chunker)

    def check(physical, doc_ids):
        stored = store.stored_vectors(physical)
        assert set(stored.values()) == {frozenset({"full", "mrl_64", "lex"})}
        assert {c.split("#")[0] for c in stored} == set(doc_ids)
        assert len(stored) == store.count(physical)
        sparse = store.search(physical, None, SearchParams(k=50, mode="sparse"), text="judicial")
        assert {h.doc_id for h in sparse} == {"d0", "d4", "d6"} & set(doc_ids)
        return stored

    ingest(docs)
    first = check(spec.physical, [d.doc_id for d in docs])
    assert len(first) > len(docs)  # several chunks per document
    store.delete_documents(spec.physical, ["d4"])
    check(spec.physical, ["d0", "d1", "d2", "d3", "d5"])
    ingest([Document("d4", "Judicial review, again, in one short text.", "d4.txt")])
    check(spec.physical, [d.doc_id for d in docs])

    registry.add(registry.get(1).model_copy(update={"version": 2, "status": "candidate"}))
    reembed(store, collection="docs", version=2, encoder=real_encoder)
    assert store.spec("docs__v2").lexical == spec.lexical  # the recipe is carried over
    assert check("docs__v2", [d.doc_id for d in docs]).keys() == check(spec.physical, [
        d.doc_id for d in docs
    ]).keys()  # fmt: skip
    switch(store, registry, "docs", 2)
    ingest([Document("d6", "A judicial footnote written after the promotion.", "d6.txt")])
    rollback(store, registry, "docs", load_encoder=lambda _spec: real_encoder)
    assert store.resolve("docs") == spec.physical
    check(spec.physical, [*(d.doc_id for d in docs), "d6"])  # caught up, lex included
    store.close()


def test_hybrid_api_mode_per_request_and_default_profile(tmp_path):
    settings = load_settings(data_dir=tmp_path / "data")
    docs = [{"id": f"d{i}.md", "text": t} for i, t in enumerate(TEXTS)]
    with TestClient(create_app(settings, encoder=KeywordEncoder())) as client:
        assert client.post("/v1/documents", json={"documents": docs}).status_code == 200
        default = client.post("/v1/search", json={"query": "Marbury judicial"}).json()
        assert default["mode"] == "hybrid"  # auto, collection has lexical vectors, no tuning
        for mode in ("dense", "sparse", "hybrid"):
            body = client.post("/v1/search", json={"query": "Marbury", "mode": mode}).json()
            assert body["mode"] == mode and body["results"], mode
            if mode != "dense":  # the test encoder's dense vectors are hashed keywords
                assert body["results"][0]["doc_id"] == "d0.md", mode
        bad = client.post("/v1/search", json={"query": "x", "mode": "keyword"})
        assert bad.status_code == 422 and "mode" in bad.text


def test_hybrid_api_refuses_sparse_on_a_dense_only_collection(tmp_path):
    settings = load_settings(data_dir=tmp_path / "data", lexical={"enabled": False})
    with TestClient(create_app(settings, encoder=KeywordEncoder())) as client:
        docs = [{"id": "a.md", "text": TEXTS[0]}]
        assert client.post("/v1/documents", json={"documents": docs}).status_code == 200
        assert client.post("/v1/search", json={"query": "Marbury"}).json()["mode"] == "dense"
        refused = client.post("/v1/search", json={"query": "Marbury", "mode": "hybrid"})
        assert refused.status_code == 422, refused.text
        assert "no lexical vectors" in refused.json()["error"]["message"]


def test_hybrid_profile_resolution(tmp_path):
    settings = load_settings(data_dir=tmp_path)
    plain = CollectionSpec("docs", 1, "m", DIM, (SHORT,))
    assert resolve_profile(settings, SPEC, None).mode == "hybrid"
    assert resolve_profile(settings, plain, None).mode == "dense"
    tuned = {"mode": "sparse", "fusion": {"method": "rrf", "rrf_k": 20, "sparse_weight": 0.5}}
    profile = resolve_profile(settings, SPEC, tuned)
    assert (profile.mode, profile.source) == ("sparse", "tuned")
    assert (profile.fusion.rrf_k, profile.fusion.sparse_weight) == (20, 0.5)
    forced = load_settings(data_dir=tmp_path, search={"mode": "dense"})
    assert resolve_profile(forced, SPEC, tuned).mode == "dense"
    assert resolve_profile(forced, SPEC, tuned).fusion.sparse_weight == 0.5


def _report(two_stage, hybrid, sparse=0.7, full=None, default=None, queries=40, spread=0.0):
    """Rows whose every query scores the row's mean (+- `spread`, alternating, for the
    hybrid row), so differences between rows are as consistent as the test wants."""

    def row(name, value, kind=None, dim=None, params=None, wobble=0.0):
        per_query = {
            f"q{i}": {"ndcg@10": value + (wobble if i % 2 else -wobble)} for i in range(queries)
        }
        return RunRow(
            name, kind or name, dim, {"ndcg@10": value}, params=params or {}, per_query=per_query
        )

    rows = [
        row("384", two_stage if full is None else full, "exact", 384),
        row("two-stage", two_stage),
        row("sparse", sparse),
        row(
            "hybrid",
            hybrid,
            params={"fusion": FusionParams(sparse_weight=2).model_dump()},
            wobble=spread,
        ),
    ]
    if default is not None:
        fusion = FusionParams(method="rrf", sparse_weight=1).model_dump()
        rows.append(row("hybrid-default", default, "hybrid", params={"fusion": fusion}))
    return EvalReport("m", "held", "heldout", 384, {"queries": queries, "corpus": 50}, rows)


def test_hybrid_gate_requires_the_gain_in_the_serving_mode():
    serving = _report(0.50, 0.75)
    candidate = _report(0.60, 0.752)  # dense much better, hybrid barely
    assert decide(candidate, serving).promote
    hybrid_gate = decide(candidate, serving, serving_row="hybrid")
    assert not hybrid_gate.promote and "hybrid" in hybrid_gate.reason
    assert decide(_report(0.6, 0.8), serving, serving_row="hybrid").promote


def test_profile_changes_only_on_a_significant_gain_over_the_default():
    gate = GateSettings()
    hybrid = SearchMode.HYBRID
    kept = choose_profile(_report(0.60, 0.752), hybrid, gate, "test")
    assert (kept["mode"], kept["chosen"], kept["test"]) == ("hybrid", "hybrid", None)
    assert kept["fusion"]["sparse_weight"] == 2.0
    dense = choose_profile(_report(0.9, 0.8, sparse=0.85), hybrid, gate, "t")
    assert (dense["mode"], dense["default"]) == ("dense", "hybrid")
    assert dense["test"]["p_better"] < 0.05 and dense["fusion"]["sparse_weight"] == 2.0
    assert choose_profile(_report(0.5, 0.6, sparse=0.85), hybrid, gate, "t")["mode"] == "sparse"
    # Better on average, but on too few queries: the default stays.
    few = choose_profile(_report(0.9, 0.8, queries=10), hybrid, gate, "t")
    assert (few["mode"], few["queries"]) == ("hybrid", 10)
    # A fusion tuned on these queries is kept only when it beats the untuned one for real.
    lucky = choose_profile(_report(0.5, 0.81, default=0.80, spread=0.2), hybrid, gate, "t")
    assert (lucky["chosen"], lucky["fusion"]["method"]) == ("hybrid-default", "rrf")
    real = choose_profile(_report(0.5, 0.85, default=0.80), hybrid, gate, "t")
    assert (real["chosen"], real["fusion_tuned"], real["fusion"]["method"]) == (
        "hybrid",
        True,
        "dbsf",
    )
    assert choose_profile(_report(0.9, 0.8), SearchMode.DENSE, gate, "t")["mode"] == "dense"
