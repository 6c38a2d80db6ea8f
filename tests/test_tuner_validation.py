"""Checkpoint selection: the three-way split, validation scoring, the shortlist loss, and a real
training run (packaged model, tiny data) keeping its best checkpoint."""

import numpy as np
import pytest

from ragctl.core.settings import TrainSettings, load_settings
from ragctl.evalkit.datasets import EvalDataset
from ragctl.evalkit.search import exact_search, id_ranks, two_stage_search
from ragctl.tuner.errors import TunerError
from ragctl.tuner.losses import plan_loss
from ragctl.tuner.pairs import TrainingPair, normalize_query
from ragctl.tuner.split import split_heldout, split_validation
from ragctl.tuner.train import training_arguments
from ragctl.tuner.validation import SELECTION, ValidationPlan, history_from_logs, score_vectors


def _queries(pairs):
    return {normalize_query(p.query) for p in pairs}


def test_three_way_split_is_disjoint_stable_and_grouped_by_query():
    pairs = [TrainingPair(f"question {i % 400}", f"p{i}") for i in range(1200)]
    rest, heldout = split_heldout(pairs, 0.1, seed=7)
    train, validation = split_validation(rest, 0.1, max_queries=1000, seed=7)
    sides = [_queries(train), _queries(validation), _queries(heldout)]
    assert not sides[0] & sides[1] and not sides[0] & sides[2] and not sides[1] & sides[2]
    assert len(train) + len(validation) + len(heldout) == len(pairs)
    assert 20 <= len(sides[1]) <= 60  # about 10% of the ~360 training queries
    assert split_validation(rest, 0.1, max_queries=1000, seed=7) == (train, validation)
    # A query's side does not depend on the rest of the data: half the pairs, same sides.
    half_train, half_validation = split_validation(rest[::2], 0.1, max_queries=1000, seed=7)
    assert _queries(half_validation) == _queries(validation) & _queries(rest[::2])
    assert _queries(half_train) <= sides[0]


def test_validation_cap_and_minimum():
    pairs = [TrainingPair(f"question {i}", f"p{i}") for i in range(2000)]
    _, capped = split_validation(pairs, 0.5, max_queries=50, seed=1)
    assert 25 <= len(_queries(capped)) <= 80
    # A bigger cap draws a superset: growing data or cap never reshuffles validation.
    _, wider = split_validation(pairs, 0.5, max_queries=200, seed=1)
    assert _queries(capped) <= _queries(wider)
    # Too few validation queries select nothing reliably: validation is off, nothing dropped.
    few = pairs[:30]
    assert split_validation(few, 0.1, max_queries=300) == (few, [])
    assert split_validation(pairs, 0.0, max_queries=300) == (pairs, [])
    with pytest.raises(TunerError, match=r"validation fraction must be in \[0, 1\)"):
        split_validation(pairs, 1.0, max_queries=300)
    with pytest.raises(TunerError, match="max queries must be >= 1"):
        split_validation(pairs, 0.1, max_queries=0)


def test_validation_settings_are_checked_with_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="validation_fraction"):
        load_settings(data_dir=tmp_path, tuner={"validation_fraction": 1.5})
    with pytest.raises(ValueError, match="evals_per_epoch"):
        load_settings(data_dir=tmp_path, tuner={"evals_per_epoch": 0})
    with pytest.raises(ValueError, match="early_stopping_patience"):
        load_settings(data_dir=tmp_path, tuner={"early_stopping_patience": -1})
    with pytest.raises(ValueError, match="selection_shortlist_weight"):
        load_settings(data_dir=tmp_path, tuner={"selection_shortlist_weight": 2})
    tuner = load_settings(data_dir=tmp_path, tuner={"validation_fraction": 0}).tuner
    assert tuner.validation_fraction == 0


def test_two_stage_search_reranks_the_shortlist_at_the_full_dim():
    # Full vectors: doc 2 is best for the query, then doc 1; at 1-d all three tie.
    corpus = np.array([[1, 0, 0], [0.9, 0.1, 0.4], [0.5, 0.86, 0]], dtype=np.float32)
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    query = np.array([[0.5, 0.86, 0]], dtype=np.float32)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    short_c = np.sign(corpus[:, :1]).astype(np.float32)
    short_q = np.sign(query[:, :1]).astype(np.float32)
    ranks = id_ranks(["a", "b", "c"])
    idx, scores = two_stage_search(query, corpus, short_q, short_c, 3, 2, ranks)
    assert idx.tolist() == exact_search(query, corpus, 2, ranks)[0].tolist() == [[2, 1]]
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    # A shortlist of 2 of the 1-d ties keeps docs 0 and 1 (id order): doc 2 is lost.
    short_c[2] = np.float32(0.5)
    idx, _ = two_stage_search(query, corpus, short_q, short_c, 2, 2, ranks)
    assert sorted(idx[0].tolist()) == [0, 1]
    with pytest.raises(Exception, match="must be >= 1"):
        two_stage_search(query, corpus, short_q, short_c, 0, 2, ranks)


def test_score_vectors_mixes_full_and_shortlist_ndcg():
    # Two queries, four docs; at 2 dims q1 finds its doc, at 1 dim it does not.
    corpus = np.array(
        [[1, 0, 0, 0], [0, 1, 0, 0], [0.8, -0.6, 0, 0], [0, 0, 1, 0]], dtype=np.float32
    )
    queries = np.array([[1, 0, 0, 0], [0.6, -0.8, 0, 0]], dtype=np.float32)
    dataset = EvalDataset(
        name="v",
        split="validation",
        corpus={"d0": "", "d1": "", "d2": "", "d3": ""},
        queries={"q0": "", "q1": ""},
        qrels={"q0": {"d0": 1}, "q1": {"d2": 1}},
    )
    plan = ValidationPlan(dataset, full_dim=4, shortlist_dim=1, shortlist=2, shortlist_weight=0.25)
    metrics = score_vectors(plan, list(dataset.corpus), corpus, list(dataset.queries), queries)
    assert metrics["ndcg@10_4"] == pytest.approx(1.0)
    # At 1 dim q1 ties d0 and d2 (both positive); d0 wins the tie: its doc comes second.
    assert metrics["ndcg@10_1"] == pytest.approx((1 + 1 / np.log2(3)) / 2)
    assert metrics[SELECTION] == pytest.approx(0.75 * 1 + 0.25 * metrics["ndcg@10_1"])
    assert metrics["ndcg@10_two_stage"] == pytest.approx(1.0)


def test_history_from_logs_keeps_only_evaluations():
    logs = [
        {"loss": 1.0, "step": 5, "epoch": 0.5},
        {
            "eval_selection": 0.4,
            "eval_ndcg@10_384": 0.5,
            "eval_seconds": 2.0,
            "step": 5,
            "epoch": 0.5,
        },
        {"eval_selection": 0.45, "eval_ndcg@10_384": 0.55, "step": 10, "epoch": 1.0},
    ]
    history = history_from_logs(logs)
    assert [row["step"] for row in history] == [5, 10]
    assert history[0] == {
        "step": 5,
        "epoch": 0.5,
        "selection": 0.4,
        "ndcg@10_384": 0.5,
        "seconds": 2.0,
    }


def test_plan_loss_weights_the_shortlist_dim_and_refuses_alignment_with_the_cached_loss():
    config = TrainSettings(shortlist_loss_weight=2.0, shortlist_alignment=0.5)
    plan = plan_loss(config, [384, 256, 128, 64], (64,), device="cpu")
    assert plan.weights == [1.0, 1.0, 1.0, 2.0] and plan.alignment_dims == [64]
    assert plan.mini_batch is None  # the alignment needs the whole batch, on CPU too
    assert "weights=[1.0, 1.0, 1.0, 2.0]" in plan.describe() and "KL" in plan.describe()
    assert plan_loss(TrainSettings(), [384, 64], (64,), device="cuda").describe() == (
        "MatryoshkaLoss(MultipleNegativesRankingLoss, dims=[384, 64])"
    )
    with pytest.raises(TunerError, match="shortlist_alignment needs the uncached loss"):
        plan_loss(
            TrainSettings(batch_size=128, shortlist_alignment=0.5), [384, 64], (64,), device="cpu"
        )


@pytest.mark.parametrize(
    ("device", "settings", "mini_batch"),
    [
        ("cpu", {}, 8),  # CPU: mini-batches of cpu_mini_batch_size (faster, less memory)
        ("cpu", {"batch_size": 8}, None),  # nothing to split
        ("cpu", {"cpu_mini_batch_size": None}, None),  # as on a GPU
        ("cpu", {"batch_size": 128, "cpu_mini_batch_size": None}, 32),
        ("cuda", {}, None),  # a GPU embeds the whole batch up to max_uncached_batch
        ("cuda", {"batch_size": 128}, 32),
        ("mps", {}, None),
    ],
)
def test_plan_loss_mini_batches_on_cpu(device, settings, mini_batch):
    plan = plan_loss(TrainSettings(**settings), [384, 64], (64,), device=device)
    assert plan.mini_batch == mini_batch
    assert plan.describe().startswith(
        f"MatryoshkaLoss(CachedMultipleNegativesRankingLoss(mini_batch={mini_batch})"
        if mini_batch
        else "MatryoshkaLoss(MultipleNegativesRankingLoss"
    )


@pytest.mark.parametrize(("mini_batched", "checkpointing"), [(False, True), (True, False)])
def test_activation_checkpointing_only_for_the_whole_batch_loss(
    tmp_path, mini_batched, checkpointing
):
    """With the cached loss only a mini-batch's activations are held: recomputing them costs
    time for little memory (bench/results/train_memory.md), so it is left off there."""
    args = training_arguments(
        TrainSettings(), tmp_path, device="cpu", show_progress=False, mini_batched=mini_batched
    )
    assert args.activation_checkpointing is checkpointing


# A tiny retrieval task the packaged model can learn: facts about made-up things.
_COLORS = ["red", "blue", "green", "amber", "violet", "grey", "white", "black"]
_THINGS = ["lantern", "kettle", "harbor", "orchard", "falcon", "meadow"]
_PLACES = ["Varno", "Eskel", "Morrow", "Tarn", "Quell", "Ibis", "Olde", "Pike"]


def _facts():
    facts = []
    for i, color in enumerate(_COLORS):
        for j, thing in enumerate(_THINGS):
            place = _PLACES[(i + 3 * j) % len(_PLACES)]
            code = 100 + 7 * i + 11 * j
            facts.append(
                (
                    f"where is the {color} {thing} kept",
                    f"Inventory note {code}: the {color} {thing} is stored in {place}, "
                    f"shelf {code % 9}.",
                )
            )
    return facts


@pytest.fixture(scope="module")
def tiny_task():
    facts = _facts()
    pairs = [TrainingPair(q, p, f"d{i}") for i, (q, p) in enumerate(facts)]
    val_ids = list(range(0, len(facts), 4))  # 12 validation queries, 36 training pairs
    validation = EvalDataset(
        name="validation",
        split="validation",
        corpus={f"d{i}": p for i, (_, p) in enumerate(facts)},
        queries={f"q{i}": facts[i][0] for i in val_ids},
        qrels={f"q{i}": {f"d{i}": 1} for i in val_ids},
    )
    train = [p for i, p in enumerate(pairs) if i not in set(val_ids)]
    return train, validation


def test_train_keeps_the_best_checkpoint_on_validation(tiny_task, tmp_path):
    from sentence_transformers import SentenceTransformer

    from ragctl.core.encoder import resolve_model
    from ragctl.tuner.train import train
    from ragctl.tuner.validation import evaluate_model

    train_pairs, validation = tiny_task
    config = TrainSettings(
        epochs=3,
        batch_size=8,
        learning_rate=3e-4,  # large: the score moves (and can fall) within a few steps
        evals_per_epoch=2,
        early_stopping_patience=2,
    )
    result = train(
        resolve_model("default"),
        train_pairs,
        config,
        output_dir=tmp_path / "model",
        checkpoint_dir=tmp_path / "checkpoints",
        shortlist_dims=(64,),
        show_progress=False,
        validation=validation,
        shortlist=10,
    )
    record = result.validation
    assert record is not None and record["queries"] == 12 and record["corpus"] == 48
    evaluations = record["evaluations"]
    steps = [e["step"] for e in evaluations]
    assert steps == sorted(set(steps)) and steps[-1] == result.steps  # the last step competes
    best = max(evaluations, key=lambda e: e["selection"])
    assert record["kept"]["selection"] == best["selection"]
    if record["stopped_early"]:
        after = [e for e in evaluations if e["step"] > record["kept_step"]]
        assert len(after) == config.early_stopping_patience
        assert result.steps < 3 * (len(train_pairs) // 8)
    # What was saved is the kept checkpoint: scoring it again gives the kept score.
    plan = ValidationPlan(
        validation,
        full_dim=384,
        shortlist_dim=64,
        shortlist=10,
        shortlist_weight=config.selection_shortlist_weight,
    )
    saved = SentenceTransformer(str(tmp_path / "model"), device="cpu")
    assert evaluate_model(saved, plan)[SELECTION] == pytest.approx(best["selection"], abs=2e-3)
    assert record["base"][SELECTION] < best["selection"]  # training helped on validation


@pytest.fixture
def keyword_collection(tmp_path):
    """A real embedded store holding one chunk per document (keyword encoder, no model)."""
    from ragctl.core.collections import BoundCollection, spec_for_new
    from ragctl.core.records import Document
    from ragctl.core.store.edge import EdgeStore
    from ragctl.ingest.pipeline import ingest_documents, make_chunker
    from ragctl.retriever.testing import KeywordEncoder

    encoder = KeywordEncoder()
    store = EdgeStore(tmp_path / "qdrant")
    spec = spec_for_new("docs", 1, encoder)
    store.create_collection(spec)
    collection = BoundCollection(store, spec, encoder)
    docs = [
        Document(f"doc{i}", f"answer number {i} about topic {i}", f"doc{i}.md") for i in range(60)
    ]
    ingest_documents(docs, collection, make_chunker(encoder, 64, 8))
    yield collection
    store.close()


def test_split_pairs_and_validation_dataset_keep_the_three_sides_apart(keyword_collection):
    from ragctl.tuner.loop import split_pairs, validation_dataset

    chunks = [
        c
        for batch in keyword_collection.store.scroll_chunks(
            keyword_collection.physical, batch_size=100
        )
        for c in batch
    ]
    pairs = [TrainingPair(f"question {i}", c.text, c.chunk_id) for i, c in enumerate(chunks)]
    pairs += [TrainingPair(f"question {i}", f"unstored answer {i}") for i in range(60, 400)]
    steps: list[str] = []
    tuner = load_settings().tuner.model_copy(update={"validation_fraction": 0.2})
    split = split_pairs(pairs, keyword_collection, None, tuner, steps.append)
    sides = [_queries(split.train), _queries(split.validation), _queries(split.heldout)]
    assert split.validation_queries == len(sides[1]) >= 30
    assert not sides[0] & sides[1] and not sides[1] & sides[2] and not sides[0] & sides[2]
    assert len(split.train) + len(split.validation) + len(split.heldout) == len(pairs)
    assert f"{split.validation_queries} validation queries" in steps[0]

    dataset = validation_dataset(
        split, keyword_collection, tuner.model_copy(update={"validation_corpus_limit": 50})
    )
    assert dataset is not None and len(dataset.queries) == split.validation_queries
    assert {dataset.queries[q] for q in dataset.queries} == {p.query for p in split.validation}
    relevant = {d for judged in dataset.qrels.values() for d in judged}
    assert relevant <= set(dataset.corpus) and len(dataset.corpus) == max(50, len(relevant))
    off = split_pairs(
        pairs, keyword_collection, None, tuner.model_copy(update={"validation_fraction": 0.0})
    )
    assert off.validation == [] and validation_dataset(off, keyword_collection, tuner) is None


def test_search_grid_is_checked_and_the_budget_shared(tmp_path):
    from ragctl.tuner.search import check_grid, trial_configs

    with pytest.raises(ValueError, match=r"unknown training field\(s\) \['lr'\]"):
        load_settings(data_dir=tmp_path, tuner={"search_grid": [{"lr": 1e-5}]})
    with pytest.raises(ValueError, match="learning_rate"):
        load_settings(data_dir=tmp_path, tuner={"search_grid": [{"learning_rate": 5}]})
    with pytest.raises(TunerError, match="repeats a recipe"):
        check_grid([{"learning_rate": 1e-5}, {"learning_rate": 1e-5}])
    configs = trial_configs(
        TrainSettings(max_minutes=30, epochs=2),
        [{"learning_rate": 1e-5}, {"learning_rate": 5e-5, "epochs": 1}, {"seed": 3}],
    )
    assert [c.max_minutes for _, c in configs] == [10, 10, 10]
    assert [(c.learning_rate, c.epochs) for _, c in configs] == [(1e-5, 2), (5e-5, 1), (2e-5, 2)]


def test_search_chooses_on_validation_and_a_rerun_reads_trials_back(tiny_task, tmp_path):
    from ragctl.core.encoder import resolve_model
    from ragctl.tuner.search import install_chosen, run_search
    from ragctl.tuner.train import train

    train_pairs, validation = tiny_task
    calls: list[float] = []

    def run(config, model_dir, checkpoint_dir):
        calls.append(config.learning_rate)
        return train(
            resolve_model("default"),
            train_pairs,
            config,
            output_dir=model_dir,
            checkpoint_dir=checkpoint_dir,
            shortlist_dims=(64,),
            show_progress=False,
            validation=validation,
            shortlist=10,
        )

    base = TrainSettings(epochs=1, batch_size=12, evals_per_epoch=1)
    # A learning rate far too small to move the model competes with a useful one.
    grid = [{"learning_rate": 1e-9}, {"learning_rate": 3e-4}]
    messages: list[str] = []
    result = run_search(base, grid, run, tmp_path / "search", on_trial=messages.append)
    scores = [t.score for t in result.trials]
    assert calls == [1e-9, 3e-4] and len(messages) == 2
    assert result.chosen == scores.index(max(scores)) == 1
    assert result.record()["chosen"] == {"learning_rate": 3e-4}
    assert not any((tmp_path / "search").glob("trial-*/checkpoints"))
    installed = install_chosen(result, tmp_path / "v2")
    assert (tmp_path / "v2" / "model.safetensors").is_file()
    assert installed.validation == result.training.validation

    again = run_search(base, grid, run, tmp_path / "search")
    assert calls == [1e-9, 3e-4]  # nothing retrained: both trials read back
    assert [t.reused for t in again.trials] == [True, True]
    assert [t.score for t in again.trials] == scores and again.chosen == 1


def test_retune_cli_explains_validation_and_names_a_bad_flag(tmp_path):
    from click.testing import CliRunner

    from ragctl.cli.main import main

    runner = CliRunner()
    help_text = runner.invoke(main, ["retune", "--help"], prog_name="ragctl").output
    for flag in ("--validation-fraction", "--evals-per-epoch", "--patience", "--search"):
        assert flag in help_text
    assert "Three-way split" in help_text and "--epochs is a" in help_text
    bad = runner.invoke(
        main,
        ["--data-dir", str(tmp_path), "retune", "--validation-fraction", "1.5", "--dry-run"],
        prog_name="ragctl",
    )
    assert bad.exit_code == 2
    assert "Invalid value for '--validation-fraction'" in bad.output and "less than 1" in bad.output
    bad = runner.invoke(
        main, ["--data-dir", str(tmp_path), "retune", "--patience", "-1"], prog_name="ragctl"
    )
    assert bad.exit_code == 2 and "'--patience'" in bad.output
