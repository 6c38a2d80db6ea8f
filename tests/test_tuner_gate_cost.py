"""What the gate costs: the serving model's held-out evaluation reads the collection's stored
vectors and is cached per (serving collection, held-out set, options); each model is loaded
once per retune."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from ragctl.core.collections import BoundCollection
from ragctl.core.settings import load_settings
from ragctl.core.store.edge import EdgeStore
from ragctl.evalkit.runs import EvalOptions, evaluate
from ragctl.retriever.testing import KeywordEncoder
from ragctl.tuner.loop import evaluate_serving, heldout_dataset
from ragctl.tuner.pairs import TrainingPair

DOCS = {
    "grind": "Grinders are cleaned every Monday; the burrs are swapped every six months.",
    "milk": "Milk is steamed to sixty degrees and never steamed twice.",
    "decaf": "Decaf is served after six pm on request, brewed as a single shot.",
    "opening": "The opening shift arrives at half past six and checks the pastry delivery.",
    "allergens": "Every pastry tray is labelled with its allergens before it reaches the counter.",
    "closing": "The closing shift empties the knock box and back-flushes the espresso machine.",
}
QUESTIONS = {
    "grind": "when are the burrs swapped",
    "milk": "how hot is the milk steamed",
    "decaf": "when is decaf served",
    "opening": "who checks the pastry delivery",
    "closing": "who back-flushes the espresso machine",
}
EXTRA = "Beans are stored in airtight tins away from the window."  # in no stored chunk


@pytest.fixture
def serving(keyword_collection):
    """The keyword encoder's collection of DOCS; `encoded` lists every text it encodes."""
    encoded: list[str] = []
    collection = keyword_collection(DOCS, KeywordEncoder(before_encode=encoded.extend))
    encoded.clear()
    return collection, encoded


def _heldout(serving, pairs):
    return heldout_dataset(pairs, serving, name="docs-heldout", corpus_limit=100, seed=0)


def _assert_same_rows(a, b, atol=1e-6):
    assert [r.name for r in a.rows] == [r.name for r in b.rows]
    for mine, theirs in zip(a.rows, b.rows, strict=True):
        assert mine.params == theirs.params
        assert set(mine.metrics) == set(theirs.metrics)
        for key, value in mine.metrics.items():
            assert value == pytest.approx(theirs.metrics[key], abs=atol), (mine.name, key)
        assert set(mine.per_query) == set(theirs.per_query)
        for qid, values in mine.per_query.items():
            assert values == pytest.approx(theirs.per_query[qid], abs=atol), (mine.name, qid)


def test_serving_evaluation_reads_stored_vectors_then_the_cache(serving, tmp_path):
    collection, encoded = serving
    settings = load_settings(data_dir=tmp_path / "data")
    pairs = [TrainingPair(q, DOCS[d]) for d, q in QUESTIONS.items()]
    pairs.append(TrainingPair("where are the beans kept", EXTRA))
    dataset = _heldout(collection, pairs)
    options = EvalOptions(shortlist=10, lexical=None, work_dir=tmp_path)

    plain = evaluate(dataset, collection.encoder, options)  # encodes every text
    assert set(DOCS.values()) <= set(encoded)
    encoded.clear()
    steps: list[str] = []
    first = evaluate_serving(settings, collection, dataset, options, step=steps.append)
    # Only the queries and the one positive the collection does not hold were encoded: the
    # exact run and the pipeline both took the stored chunk vectors.
    assert sorted(encoded) == sorted([*QUESTIONS.values(), "where are the beans kept", EXTRA])
    assert steps == []
    assert any("6 of 7 corpus vectors given" in note for note in first.notes)
    _assert_same_rows(first, plain)

    encoded.clear()
    again = evaluate_serving(settings, collection, dataset, options, step=steps.append)
    assert encoded == []  # nothing encoded: read back from the cache
    assert len(steps) == 1 and "evaluated before" in steps[0]
    assert any("evaluation cache" in note for note in again.notes)
    _assert_same_rows(again, first, atol=0)
    assert again.queries == first.queries

    # Another held-out set, or other options, is another evaluation.
    evaluate_serving(settings, collection, _heldout(collection, pairs[:-1]), options)
    assert encoded
    encoded.clear()
    evaluate_serving(settings, collection, dataset, replace(options, shortlist=5))
    assert encoded
    files = list((settings.data_dir / "cache" / "serving-eval").glob("*.json"))
    assert len(files) == 3


def test_serving_evaluation_cache_ignores_an_unreadable_file(serving, tmp_path):
    collection, encoded = serving
    settings = load_settings(data_dir=tmp_path / "data")
    dataset = _heldout(collection, [TrainingPair(q, DOCS[d]) for d, q in QUESTIONS.items()])
    options = EvalOptions(shortlist=10, lexical=None, work_dir=tmp_path)
    first = evaluate_serving(settings, collection, dataset, options)
    [cached] = (settings.data_dir / "cache" / "serving-eval").glob("*.json")
    cached.write_text("{not json")
    encoded.clear()
    second = evaluate_serving(settings, collection, dataset, options)
    assert encoded  # evaluated again, and the file rewritten
    _assert_same_rows(second, first, atol=0)
    assert json.loads(cached.read_text())["schema"]


@pytest.fixture(scope="module")
def demo_template(demo_corpus):
    """The demo corpus embedded by the real model (v1), its feedback pinned to chunks, and its
    judged queries as an eval set of pairs."""
    eval_pairs = [
        TrainingPair(r["query"], r["chunk_text"], r["chunk_id"]) for r in demo_corpus.judged
    ]
    return demo_corpus.data_dir, demo_corpus.feedback, eval_pairs


@pytest.fixture
def demo(demo_template, tmp_path):
    template, feedback, eval_pairs = demo_template
    data_dir = tmp_path / "data"
    shutil.copytree(template, data_dir)
    settings = load_settings(data_dir=data_dir)
    store = EdgeStore(settings.qdrant_path)
    yield settings, store, feedback, eval_pairs
    store.close()


@pytest.mark.slow
def test_stored_vectors_give_the_serving_report_of_a_real_model(demo, tmp_path, real_encoder):
    """With the real model on the demo corpus, reading the stored vectors back gives the
    report that encoding every chunk again gives (every row, every query, to 1e-6)."""
    settings, store, _, eval_pairs = demo
    serving = BoundCollection(store, store.spec(store.resolve("docs")), real_encoder)
    dataset = _heldout(serving, eval_pairs)
    options = EvalOptions(
        shortlist=settings.search.shortlist, lexical=settings.lexical.spec(), work_dir=tmp_path
    )
    encoded = evaluate(dataset, real_encoder, options)
    stored = evaluate_serving(settings, serving, dataset, options)
    assert any("corpus vectors given" in note for note in stored.notes)
    assert {"two-stage", "sparse", "hybrid"} <= {r.name for r in stored.rows}
    _assert_same_rows(stored, encoded)


class CountingEncoder:
    """The real encoder, counting the texts it encodes (the serving model of a retune)."""

    def __init__(self, base):
        self.base = base
        self.texts = 0

    def __getattr__(self, name):
        return getattr(self.base, name)

    def encode_full(self, texts, prompt, *, show_progress=False):
        self.texts += len(texts)
        return self.base.encode_full(texts, prompt, show_progress=show_progress)

    def encode_queries(self, texts):
        return self.base.embeddings_from_full(self.encode_full(texts, self.base.query_prompt))

    def encode_documents(self, texts, *, show_progress=False):
        full = self.encode_full(texts, self.base.document_prompt, show_progress=show_progress)
        return self.base.embeddings_from_full(full)


@pytest.mark.slow
def test_second_retune_reuses_the_serving_evaluation_and_each_model_loads_once(
    demo, real_encoder, monkeypatch
):
    import ragctl.core.collections as collections
    import ragctl.tuner.loop as loop
    from ragctl.core.registry import ModelRegistry
    from ragctl.tuner.loop import RetuneOptions, retune
    from ragctl.tuner.promote import version_encoder

    settings, store, feedback, eval_pairs = demo
    tuner = settings.tuner.model_copy(
        update={"epochs": 1, "batch_size": 8, "checkpoint_steps": 1000, "hard_negatives": True}
    )
    settings = settings.model_copy(update={"tuner": tuner})
    eval_set = settings.data_dir.parent / "eval.jsonl"
    eval_set.write_text(
        "".join(json.dumps({"anchor": p.query, "positive": p.positive}) + "\n" for p in eval_pairs)
    )
    relevant = [r for r in feedback if r["label"] == "relevant"][:16]

    def no_load(*args, **kwargs):
        raise AssertionError("a model was loaded again during the retune")

    captured = []

    def capture(*args, **kwargs):
        captured.append(candidate_encoder_of(*args, **kwargs))
        return captured[-1]

    candidate_encoder_of = loop.candidate_encoder_of
    monkeypatch.setattr(collections, "encoder_for", no_load)
    monkeypatch.setattr(loop, "version_encoder", no_load)
    monkeypatch.setattr(loop, "candidate_encoder_of", capture)
    serving = CountingEncoder(real_encoder)
    options = RetuneOptions(
        collection="docs", feedback=relevant, eval_set=eval_set, promote=False, show_progress=False
    )
    first = retune(settings, store, options, serving_encoder=serving)
    first_texts = serving.texts
    registry = ModelRegistry(settings.data_dir)
    # Mining statistics are recorded with the candidate and in its card.
    assert first.mining is not None and first.candidate is not None
    record = registry.get(first.candidate.version)
    assert record.training["hard_negatives"] == first.mining.to_dict()
    card = json.loads((registry.model_dir(record.version) / "card.json").read_text())
    assert card["training"]["hard_negatives"]["mined"] == first.mining.mined
    # The candidate came out of training in memory: the weights it saved, without a reload.
    monkeypatch.undo()
    reloaded = version_encoder(store.spec(store.resolve("docs")), record, settings)
    texts = [p.positive for p in eval_pairs[:4]]
    np.testing.assert_allclose(
        captured[0].encode_documents(texts).full, reloaded.encode_documents(texts).full, atol=1e-6
    )

    # A second retune on the same serving version and held-out set: the serving model's
    # evaluation is read back, so it encodes nothing (no mining this time).
    monkeypatch.setattr(collections, "encoder_for", no_load)
    monkeypatch.setattr(loop, "version_encoder", no_load)
    settings = settings.model_copy(
        update={"tuner": tuner.model_copy(update={"hard_negatives": False})}
    )
    serving.texts = 0
    second = retune(settings, store, options, serving_encoder=serving)
    assert serving.texts == 0 < first_texts
    assert first.evaluation is not None and second.evaluation is not None
    _assert_same_rows(second.evaluation.serving, first.evaluation.serving, atol=0)
    assert any("evaluation cache" in n for n in second.evaluation.serving.notes)
    assert second.candidate is not None and second.candidate.version == 3
