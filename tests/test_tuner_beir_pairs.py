"""`retune --pairs BEIR_FOLDER`: train qrels as pairs, graded with a threshold; the collection
steps and the mining counts on the way."""

import json

import pytest

from ragctl.core.settings import load_settings
from ragctl.tuner.errors import TunerError
from ragctl.tuner.loop import RetuneOptions, add_hard_negatives, collect_pairs

DOCS = {
    "grind": "Grinders are cleaned every Monday; the burrs are swapped every six months.",
    "milk": "Milk for the burrs crew is steamed to sixty degrees and never steamed twice.",
    "decaf": "Decaf is served after six pm on request, brewed as a single shot.",
    "opening": "The opening shift arrives at half past six and checks the pastry delivery.",
    "closing": "The closing shift swaps the knock box and back-flushes the espresso machine.",
}
BEANS = "Beans are stored in airtight tins away from the window."  # in the corpus only
QUERIES = {
    "q1": "when are the burrs swapped",
    "q2": "where are the beans stored",
    "q3": "when is decaf served",
    "q4": "who cleans the ghost",
    "q5": "",
}
# Graded 0-3: with --min-relevance 2, q1/grind, q2/beans, q3/decaf are positives; q1/milk is
# partly relevant (left out, never a negative); q1/closing is judged not relevant.
QRELS = [
    ("q1", "grind", 3),
    ("q1", "milk", 1),
    ("q1", "closing", 0),
    ("q2", "beans", 2),
    ("q3", "decaf", 2),
    ("q4", "ghost", 3),
]


@pytest.fixture
def serving(keyword_collection):
    return keyword_collection(DOCS)


def _beir(folder, qrels=QRELS, split="train"):
    (folder / "qrels").mkdir(parents=True)
    corpus = {**DOCS, "beans": BEANS}
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in corpus.items())
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    )
    (folder / "qrels" / f"{split}.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels)
    )
    return folder


def test_beir_folder_train_qrels_become_pairs_above_the_threshold(serving, tmp_path):
    folder = _beir(tmp_path / "golden")
    steps: list[str] = []
    options = RetuneOptions("docs", pair_files=[folder], min_relevance=2)
    pair_set = collect_pairs(options, serving, steps.append)

    by_query = {p.query: p for p in pair_set.pairs}
    assert set(by_query) == {QUERIES["q1"], QUERIES["q2"], QUERIES["q3"]}
    # Documents the collection holds are pinned to their stored chunk; the others train with
    # their corpus text.
    assert by_query[QUERIES["q1"]].positive_id.startswith("grind#")
    assert by_query[QUERIES["q1"]].positive == DOCS["grind"]
    assert by_query[QUERIES["q2"]].positive_id is None
    assert by_query[QUERIES["q2"]].positive == BEANS
    assert {p.origin for p in pair_set.pairs} == {"beir"}
    # The partly relevant doc is kept out of the negatives, the judged one is a known negative.
    relevant = {c.split("#")[0] for c in pair_set.relevant[QUERIES["q1"]]}
    assert relevant == {"grind", "milk"}
    assert {c.split("#")[0] for c in pair_set.not_relevant[QUERIES["q1"]]} == {"closing"}
    assert pair_set.counts["beir_positives"] == 3
    assert pair_set.counts["beir_below_threshold"] == 1
    assert steps[0] == "collecting training pairs"
    assert steps[1] == (
        "golden (BEIR qrels/train.tsv, positive when score >= 2): 3 positive pairs (2 pinned "
        "to stored chunks), 1 judged below the threshold (left out), 1 judged not relevant "
        "(known negatives), 1 missing"
    )
    assert steps[-1].startswith("3 pairs (0 dropped")

    # The known negative is what mining gives q1; nothing relevant is ever a negative.
    tuner = load_settings().tuner.model_copy(update={"negative_margin": 0.0})
    mined, report = add_hard_negatives(pair_set.pairs, pair_set, serving, tuner)
    q1 = next(p for p in mined if p.query == QUERIES["q1"])
    assert q1.negative == DOCS["closing"]
    assert report.from_feedback == 1 and report.pairs == 3
    for pair in mined:
        assert pair.negative not in (DOCS["grind"], DOCS["milk"]) or pair.query != QUERIES["q1"]

    # At the default threshold (1), the partly relevant doc is a positive too.
    loose = collect_pairs(RetuneOptions("docs", pair_files=[folder]), serving)
    assert loose.counts["beir_positives"] == 4


def test_beir_folder_errors_name_what_is_wrong(serving, tmp_path):
    no_train = _beir(tmp_path / "only-test", split="test")
    with pytest.raises(TunerError, match=r"not a BEIR folder with training judgments.*train\.tsv"):
        collect_pairs(RetuneOptions("docs", pair_files=[no_train]), serving)
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(TunerError, match="not a BEIR folder"):
        collect_pairs(RetuneOptions("docs", pair_files=[plain]), serving)
    folder = _beir(tmp_path / "golden")
    with pytest.raises(TunerError, match="min_relevance must be >= 1"):
        collect_pairs(RetuneOptions("docs", pair_files=[folder], min_relevance=0), serving)
    nothing = _beir(tmp_path / "none", qrels=[("q1", "grind", 1)])
    with pytest.raises(TunerError, match="no training pairs"):
        collect_pairs(RetuneOptions("docs", pair_files=[nothing], min_relevance=2), serving)
