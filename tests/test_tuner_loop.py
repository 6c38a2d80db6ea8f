"""The tuning loop with the real packaged model on the demo corpus (CPU, offline)."""

import json
import random
import shutil
from dataclasses import replace

import pytest
from conftest import REPO_ROOT

from ragctl.core.collections import BoundCollection, encoder_for
from ragctl.core.records import Document
from ragctl.core.registry import ModelRecord, ModelRegistry
from ragctl.core.settings import load_settings
from ragctl.core.store.edge import EdgeStore
from ragctl.ingest.pipeline import ingest_documents, make_chunker
from ragctl.tuner.loop import RetuneOptions, retune
from ragctl.tuner.promote import reembed, rollback, switch
from ragctl.tuner.publish import files_to_upload


@pytest.fixture(scope="session")
def demo_store_template(demo_corpus):
    """The demo corpus ingested once (v1 = base model) plus its feedback pinned to chunks."""
    data_dir, feedback, pinned = demo_corpus.data_dir, demo_corpus.feedback, demo_corpus.judged
    eval_set = data_dir.parent / "eval.jsonl"
    eval_set.write_text(
        "".join(
            json.dumps({"anchor": r["query"], "positive": r["chunk_text"]}) + "\n" for r in pinned
        )
    )
    return data_dir, feedback, eval_set


@pytest.fixture
def demo(demo_store_template, tmp_path, real_encoder):
    template, feedback, eval_set = demo_store_template
    data_dir = tmp_path / "data"
    shutil.copytree(template, data_dir)
    settings = load_settings(data_dir=data_dir)
    store = EdgeStore(settings.qdrant_path)
    yield settings, store, feedback, eval_set
    store.close()


def test_feedback_pinned_to_chunks_of_the_named_document(demo_store_template):
    _, feedback, eval_set = demo_store_template
    assert len(feedback) == 60
    for record in feedback:
        assert record["chunk_id"].startswith(record["doc_id"] + "#")
        assert record["chunk_text"]
    assert len(eval_set.read_text().splitlines()) == 41  # 40 queries, one with two answers


def _guard_set(folder):
    """A tiny general-domain BEIR folder (the gate's guard against forgetting)."""
    docs = {
        "g1": "The Pacific is the largest and deepest of the world's oceans.",
        "g2": "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen.",
        "g3": "The Treaty of Westphalia ended the Thirty Years' War in 1648.",
        "g4": "A prime number has exactly two divisors: one and itself.",
        "g5": "Mount Everest is the highest mountain above sea level.",
    }
    queries = {"q1": "largest ocean", "q2": "how do plants make sugar", "q3": "what is a prime"}
    folder.mkdir()
    (folder / "qrels").mkdir()
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": "", "text": t}) + "\n" for i, t in docs.items())
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries.items())
    )
    (folder / "qrels/test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\tg1\t1\nq2\tg2\t1\nq3\tg4\t1\n"
    )
    return folder


def test_retune_rejects_a_candidate_trained_on_shuffled_pairs(demo, real_encoder):
    settings, store, feedback, eval_set = demo
    guard = _guard_set(settings.data_dir.parent / "guard")
    tuner = settings.tuner.model_copy(
        update={
            "epochs": 1,
            "batch_size": 8,
            "learning_rate": 1e-4,
            "checkpoint_steps": 1000,
            "hard_negatives": False,
            "gate": settings.tuner.gate.model_copy(update={"guard_dataset": guard}),
        }
    )
    settings = settings.model_copy(update={"tuner": tuner})
    relevant = [r for r in feedback if r["label"] == "relevant"]
    texts = [r["chunk_text"] for r in relevant]
    random.Random(0).shuffle(texts)
    shuffled = [
        {**r, "chunk_text": t, "chunk_id": None} for r, t in zip(relevant, texts, strict=True)
    ]
    pairs = settings.data_dir / "shuffled.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"anchor": r["query"], "positive": r["chunk_text"]}) + "\n" for r in shuffled
        )
    )

    result = retune(
        settings,
        store,
        RetuneOptions(
            collection="docs",
            pair_files=[pairs],
            eval_set=eval_set,
            show_progress=False,
        ),
        serving_encoder=real_encoder,
    )
    assert result.decision is not None and not result.decision.promote
    assert "reject" in result.decision.reason
    assert not result.promoted and store.resolve("docs") == "docs__v1"
    registry = ModelRegistry(settings.data_dir)
    assert (registry.get(2).status, registry.serving("docs")) == ("rejected", 1)
    # The guard set was evaluated for both models and compared by the gate.
    checks = {(c.check, c.column) for c in result.decision.comparisons}
    assert {("guard", "384"), ("guard", "two-stage")} <= checks
    assert {"guard_serving", "guard_candidate"} <= set(registry.get(2).evaluation or {})
    # Dense, sparse and hybrid were measured; the gate asked for the gain in the serving mode
    # (hybrid: no profile measured yet). The candidate's profile is recorded with it; the
    # serving version's is not touched by a rejected run.
    assert result.evaluation is not None
    assert {"sparse", "hybrid", "hybrid-default"} <= {
        r.name for r in result.evaluation.candidate.rows
    }
    assert ("gain", "hybrid") in checks
    profile = registry.get(2).search
    assert profile and profile["mode"] in ("dense", "sparse", "hybrid")
    assert set(profile["ndcg@10"]) == {"two-stage", "sparse", "hybrid", "hybrid-default"}
    assert registry.get(1).search is None
    card = (settings.data_dir / "models/v2/README.md").read_text()
    assert "Decision: **reject**" in card and "sha256" in card
    # The candidate is a normal sentence-transformers folder that loads and encodes.
    assert {"model.safetensors", "modules.json", "README.md", "card.json"} <= set(
        files_to_upload(settings.data_dir / "models/v2")
    )


def test_retune_dry_run_pins_document_level_feedback_and_eval_set(demo, real_encoder):
    settings, store, _, _ = demo
    raw = [json.loads(line) for line in (REPO_ROOT / "examples/feedback.jsonl").open()]
    assert not any("chunk_id" in r for r in raw)  # the demo logs feedback per document
    result = retune(
        settings,
        store,
        RetuneOptions(
            collection="docs",
            feedback=raw,
            eval_set=REPO_ROOT / "examples/queries.jsonl",
            dry_run=True,
        ),
        serving_encoder=real_encoder,
    )
    assert result.counts["feedback_relevant"] == 50 and result.counts["feedback_not_relevant"] == 10
    assert (len(result.split.train), result.split.heldout_queries) == (50, 40)
    assert result.candidate is None and ModelRegistry(settings.data_dir).next_version() == 2


def test_reembed_resumes_then_switch_and_rollback(demo, real_encoder):
    settings, store, _, _ = demo
    registry = ModelRegistry(settings.data_dir)
    # A "new" model version: the base model saved as v2 (what training would have written).
    real_encoder.model.save_pretrained(str(registry.model_dir(2)))
    registry.add(ModelRecord(version=2, ref="models/v2", parent=1, base_model="default"))
    spec_v1 = store.spec("docs__v1")
    candidate = encoder_for(replace(spec_v1, version=2, model="models/v2"), settings)
    total = store.count("docs__v1")

    def interrupt(done, _total):
        if done >= 64:
            raise KeyboardInterrupt  # as if the process were stopped mid-way

    with pytest.raises(KeyboardInterrupt):
        reembed(
            store,
            collection="docs",
            version=2,
            encoder=candidate,
            batch_size=32,
            on_progress=interrupt,
        )
    partial = store.count("docs__v2")
    assert 0 < partial < total and store.resolve("docs") == "docs__v1"

    report = reembed(store, collection="docs", version=2, encoder=candidate, batch_size=32)
    assert (report.points, report.embedded) == (total, total - partial)
    switch(store, registry, "docs", 2)
    assert store.resolve("docs") == "docs__v2" and registry.get(1).status == "retired"

    # A document written while v2 serves is caught up on rollback, with v1's own model.
    new_doc = Document("late.md", "Decaf is served after 6 pm on request.", "late.md")
    v2 = BoundCollection(store, store.spec("docs__v2"), candidate)
    ingest_documents([new_doc], v2, make_chunker(candidate, 256, 32))
    back = rollback(
        store,
        registry,
        "docs",
        load_encoder=lambda spec: encoder_for(spec, settings),
    )
    assert (back.to_physical, back.version) == ("docs__v1", 1)
    assert back.caught_up is not None and back.caught_up.embedded == 1
    assert store.resolve("docs") == "docs__v1" and store.count("docs__v1") == total + 1
    assert registry.serving("docs") == 1 and registry.get(2).status == "retired"


@pytest.mark.parametrize("source", ["dense", "sparse", "hybrid"])
def test_hard_negatives_from_each_ranker_skip_positives_and_false_negatives(
    demo, real_encoder, source
):
    from ragctl.core.lexical import LexicalEncoder
    from ragctl.tuner.negatives import mine_hard_negatives
    from ragctl.tuner.pairs import TrainingPair, normalize_query

    settings, store, feedback, _ = demo
    physical = store.resolve("docs")
    serving = BoundCollection(store, store.spec(physical), real_encoder)
    relevant = [r for r in feedback if r["label"] == "relevant"][:20]
    pairs = [TrainingPair(r["query"], r["chunk_text"], r["chunk_id"]) for r in relevant]
    judged = {normalize_query(r["query"]): {r["chunk_id"]} for r in relevant}
    mined, report = mine_hard_negatives(pairs, serving, relevant=judged, source=source)
    assert report.pairs == 20 and report.mined > 10
    assert all(p.negative and p.negative != p.positive for p in mined)
    if source == "sparse":  # BM25 candidates share a term with their query
        lexical = LexicalEncoder(store.spec(physical).lexical)
        for pair in mined[:5]:
            [query] = lexical.queries([pair.query])
            [negative] = lexical.documents([pair.negative])
            assert set(query.indices) & set(negative.indices), pair.query
    # A margin no candidate can clear: every mined candidate is a possible false negative.
    _, strict = mine_hard_negatives(pairs, serving, relevant=judged, source=source, margin=2.0)
    assert strict.mined == 0 and strict.skipped_as_false_negative > 0


def test_models_profile_measures_and_changes_only_on_evidence(demo, real_encoder):
    from ragctl.tuner.errors import TunerError
    from ragctl.tuner.reprofile import apply_profile, measure_profile, undo_profile

    settings, store, _, eval_set = demo
    gate = settings.tuner.gate.model_copy(update={"min_queries": 1000})
    strict = settings.model_copy(update={"tuner": settings.tuner.model_copy(update={"gate": gate})})
    measured = measure_profile(strict, store, "docs", 1, eval_set, encoder=real_encoder)
    registry = ModelRegistry(settings.data_dir)
    # 40 queries < 1000: whatever scored best, the current (default) profile stays.
    assert measured.current is None and not measured.changes
    assert (measured.measured["chosen"], measured.measured["queries"]) == ("hybrid-default", 40)
    assert set(measured.measured["ndcg@10"]) == {"two-stage", "sparse", "hybrid", "hybrid-default"}
    with pytest.raises(TunerError, match="nothing to apply"):
        apply_profile(strict, measured)
    assert registry.get(1).search is None
    # A significant measurement is applied, and undone back to the default.
    better = replace(
        measured, measured={**measured.measured, "mode": "sparse", "test": {"p_better": 0.01}}
    )
    apply_profile(settings, better)
    assert registry.get(1).search["mode"] == "sparse"
    assert registry.get(1).search_history == [None]
    assert undo_profile(settings, 1) is None and registry.get(1).search is None
    with pytest.raises(TunerError, match="no earlier search profile"):
        undo_profile(settings, 1)
