"""The retune phases one at a time, on a real embedded store with the keyword encoder (no model,
no training)."""

import copy
import json

import pytest

from ragctl.core.registry import ModelRecord, ModelRegistry
from ragctl.core.search import SearchMode
from ragctl.core.settings import load_settings
from ragctl.evalkit.results import EvalReport, RunRow
from ragctl.tuner.errors import TunerError
from ragctl.tuner.loop import (
    Candidate,
    Evaluation,
    RetuneOptions,
    Split,
    add_hard_negatives,
    collect_pairs,
    decide_promotion,
    record_outcome,
    split_pairs,
)
from ragctl.tuner.pairs import PairSet, TrainingPair
from ragctl.tuner.profiles import choose_profile
from ragctl.tuner.train import TrainResult

DOCS = {
    "grind": "Grinders are cleaned every Monday; the burrs are swapped every six months.",
    "milk": "Milk is steamed to sixty degrees and never steamed twice.",
    "decaf": "Decaf is served after six pm on request, brewed as a single shot.",
    "opening": "The opening shift arrives at half past six and checks the pastry delivery.",
    "allergens": "Every pastry tray is labelled with its allergens before it reaches the counter.",
    "closing": "The closing shift empties the knock box and back-flushes the espresso machine.",
}


@pytest.fixture
def serving(keyword_collection):
    """A collection without lexical vectors holding one chunk per document of DOCS."""
    return keyword_collection(DOCS)


def _pair_file(path, rows):
    path.write_text("".join(json.dumps({"anchor": a, "positive": p}) + "\n" for a, p in rows))
    return path


def test_collect_pairs_pins_document_feedback_and_leaves_the_options_alone(serving, tmp_path):
    feedback = (
        {"query": "when are the burrs swapped", "doc_id": "grind", "label": "relevant"},
        {"query": "when are the burrs swapped", "doc_id": "milk", "label": "not_relevant"},
        {"query": "When are the burrs  swapped", "doc_id": "grind", "label": "relevant"},
    )
    pairs = _pair_file(tmp_path / "pairs.jsonl", [("decaf after six", DOCS["decaf"])])
    options = RetuneOptions(
        "docs",
        feedback=feedback,
        pair_files=[pairs],
        synthetic=[TrainingPair("who checks the pastry delivery", DOCS["opening"])],
    )
    before = copy.deepcopy(options)
    pair_set = collect_pairs(options, serving)
    assert options == before  # nothing pinned or rewritten in place
    assert pair_set.counts == {
        "feedback_relevant": 2,
        "feedback_not_relevant": 1,
        "pair_file_rows": 1,
        "synthetic": 1,
        "duplicates_dropped": 1,
        "pairs": 3,
    }
    [pinned] = [p for p in pair_set.pairs if p.origin == "feedback"]
    assert pinned.positive_id.startswith("grind#") and pinned.positive == DOCS["grind"]
    assert [c.split("#")[0] for c in pair_set.not_relevant["when are the burrs swapped"]] == [
        "milk"
    ]
    with pytest.raises(TunerError, match="no training pairs"):
        collect_pairs(RetuneOptions("docs"), serving)


def test_split_pairs_holds_out_the_eval_set_or_a_fraction_of_queries(serving, tmp_path):
    pairs = [TrainingPair(f"question {i}", f"answer {i}") for i in range(40)]
    pairs.append(TrainingPair("question 3", "another answer 3"))
    steps: list[str] = []
    eval_set = _pair_file(tmp_path / "golden.jsonl", [("Question 3", "answer 3")])
    tuner = load_settings().tuner
    golden = split_pairs(pairs, serving, eval_set, tuner, steps.append)
    assert golden.source == "eval set golden.jsonl" and golden.heldout_queries == 1
    assert len(golden.train) == 39 and "question 3" not in {p.query for p in golden.train}
    assert steps == ["39 training pairs, 1 held-out queries (eval set golden.jsonl)"]

    half = split_pairs(pairs, serving, None, tuner.model_copy(update={"heldout_fraction": 0.5}))
    assert half.source == "50% of queries held out"
    assert len(half.train) + len(half.heldout) == len(pairs)
    assert not {p.query for p in half.train} & {p.query for p in half.heldout}


def test_add_hard_negatives_only_when_asked_and_only_from_what_the_collection_has(serving):
    pairs = [TrainingPair(f"q {doc_id} {text[:30]}", text) for doc_id, text in DOCS.items()]
    tuner = load_settings().tuner
    off = tuner.model_copy(update={"hard_negatives": False})
    assert add_hard_negatives(pairs, PairSet(), serving, off) == (pairs, None)
    sparse = tuner.model_copy(update={"negatives_from": "sparse"})
    with pytest.raises(TunerError, match="needs lexical vectors"):
        add_hard_negatives(pairs, PairSet(), serving, sparse)
    steps: list[str] = []
    mined, report = add_hard_negatives(pairs, PairSet(), serving, tuner, steps.append)
    assert report is not None and report.pairs == len(pairs)
    assert all(p.negative and p.negative != p.positive for p in mined)
    assert steps == ["mining hard negatives (dense candidates)", report.describe()]
    assert report.mined + report.from_feedback + report.without_hard_negative == len(pairs)
    assert report.without_hard_negative == report.easy_fallback + report.no_negative


def _report(model, two_stage, full, queries=40):
    def per_query(value):  # every query scores the mean: any difference is consistent
        return {f"q{i}": {"ndcg@10": value} for i in range(queries)}

    rows = [
        RunRow("64", "exact", 64, {"ndcg@10": full}, per_query=per_query(full)),
        RunRow(
            "two-stage", "two-stage", 64, {"ndcg@10": two_stage}, per_query=per_query(two_stage)
        ),
    ]
    sizes = {"queries": queries, "corpus": 6}
    return EvalReport(model, "docs-heldout", "heldout", 64, sizes, rows, queries={"q0": "q?"})


def test_decide_then_record_writes_the_registry_and_the_card(serving, tmp_path):
    settings = load_settings(data_dir=tmp_path / "data")
    registry = ModelRegistry(settings.data_dir)
    registry.ensure_base(serving.spec.model)
    record = registry.add(ModelRecord(version=2, ref="models/v2", parent=1, training={"x": 1}))
    registry.model_dir(2).mkdir(parents=True)
    training = TrainResult(
        registry.model_dir(2), 3, 1.0, 1.0, 8, "loss", [64], False, "cpu", "fp32"
    )
    candidate = Candidate(record, training, fingerprint="f" * 64)
    serving_report, candidate_report = _report("v1", 0.50, 0.50), _report("v2", 0.60, 0.60)
    gate = settings.tuner.gate
    evaluation = Evaluation(
        serving=serving_report,
        candidate=candidate_report,
        serving_guard=None,
        candidate_guard=None,
        serving_profile=choose_profile(serving_report, SearchMode.DENSE, gate, "golden"),
        candidate_profile=choose_profile(candidate_report, SearchMode.DENSE, gate, "golden"),
    )
    steps: list[str] = []
    decision = decide_promotion(settings, serving.spec, evaluation, steps.append)
    assert decision.promote  # dense serving (no lexical vectors): the gain needed is two-stage's
    assert {c.column for c in decision.comparisons if c.check == "gain"} == {"64", "two-stage"}
    split = Split([TrainingPair("q1", "a")], [TrainingPair("q2", "b")], "golden")
    record_outcome(
        settings, serving.spec, {"pairs": 20}, split, candidate, evaluation, decision, steps.append
    )
    assert steps[0].startswith("gate (dense serving): promote -- promote: ndcg@10 gain 64 +0.1000")
    assert steps[-1] == (
        "v2 would serve in dense mode (two-stage: the default; nothing beat two-stage on 40 "
        "queries); ndcg@10 two-stage 0.6000"
    )
    v2 = registry.get(2)
    assert (v2.status, v2.search["mode"]) == ("candidate", "dense")
    assert v2.gate == decision.to_dict() and v2.gate["comparisons"][0]["test"]["wins"] == 40
    assert v2.evaluation["candidate"]["model"] == "v2"
    assert v2.evaluation["serving_profile"]["mode"] == "dense"
    # The serving version is not re-profiled by a retune, and the registry keeps summaries
    # while the full reports (with per-query values) are files next to the model.
    assert registry.get(1).search is None
    assert v2.evaluation["candidate"]["rows"][0]["per_query"] == {}
    full = json.loads((settings.data_dir / v2.evaluation["files"]["candidate"]).read_text())
    assert full["rows"][0]["per_query"]["q3"] == {"ndcg@10": 0.6} and full["queries"]
    card = json.loads((registry.model_dir(2) / "card.json").read_text())
    assert card["data"] == {
        "training_pairs": 8,
        "heldout_queries": 1,
        "heldout": "golden",
        "sha256": "f" * 64,
        "count_pairs": 20,
    }
    assert card["training"] == {"x": 1} and card["gate"]["promote"] is True
