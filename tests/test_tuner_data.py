"""Training pairs, split, synthetic questions (pure parts and the LLM client)."""

import json

import httpx
import pytest

from ragctl.core.records import Chunk
from ragctl.core.settings import LLMSettings
from ragctl.tuner.errors import TunerError
from ragctl.tuner.pairs import PairSet, TrainingPair, add_feedback, deduplicate, read_pair_file
from ragctl.tuner.split import drop_queries, split_heldout
from ragctl.tuner.synth import LLMQuestionGenerator, offline_questions, parse_questions


def test_pairs_from_feedback_split_relevant_and_negatives():
    pair_set = PairSet()
    add_feedback(
        pair_set,
        [
            {
                "query": "Burr  interval?",
                "chunk_id": "a#0@1",
                "label": "relevant",
                "chunk_text": "A",
            },
            {"query": "burr interval?", "chunk_id": "b#0@2", "label": "not_relevant"},
            {"query": "", "chunk_id": "c#0@3", "label": "relevant"},
            {"query": "x", "chunk_id": "c#0@3", "label": "maybe"},
        ],
    )
    assert pair_set.pairs == [TrainingPair("Burr  interval?", "A", "a#0@1", origin="feedback")]
    assert pair_set.relevant == {"burr interval?": {"a#0@1"}}
    assert pair_set.not_relevant == {"burr interval?": {"b#0@2"}}
    assert pair_set.counts == {
        "feedback_relevant": 1,
        "feedback_not_relevant": 1,
        "feedback_invalid": 2,
    }


def test_pairs_read_file_formats_and_errors(tmp_path):
    good = tmp_path / "pairs.jsonl"
    good.write_text(
        json.dumps({"anchor": "q1", "positive": "p1"})
        + "\n"
        + json.dumps({"anchor": "q2", "positive": "p2", "negative": "n2"})
        + "\n"
    )
    assert read_pair_file(good) == [
        TrainingPair("q1", "p1"),
        TrainingPair("q2", "p2", negative="n2"),
    ]
    csv = tmp_path / "pairs.csv"
    csv.write_text("anchor,positive\nq,p\n")
    assert read_pair_file(csv) == [TrainingPair("q", "p")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"anchor": "q1"}) + "\n")
    with pytest.raises(Exception, match=r"bad.jsonl.*line 1.*positive"):
        read_pair_file(bad)
    with pytest.raises(TunerError, match="pair file not found"):
        read_pair_file(tmp_path / "missing.jsonl")


def test_pairs_deduplicate_by_query_and_positive():
    pairs = [
        TrainingPair("Q", "text", "c1"),
        TrainingPair("q ", "other text, same chunk", "c1"),
        TrainingPair("q", "text2", "c2"),
    ]
    assert deduplicate(pairs) == [pairs[0], pairs[2]]


def test_split_groups_queries_and_is_stable():
    pairs = [TrainingPair(f"question {i % 50}", f"p{i}") for i in range(200)]
    train, heldout = split_heldout(pairs, 0.2, seed=1)
    held_queries = {p.query for p in heldout}
    assert not held_queries & {p.query for p in train}
    assert 5 <= len(held_queries) <= 18  # about 20% of 50 distinct queries
    assert split_heldout(pairs, 0.2, seed=1) == (train, heldout)
    assert split_heldout(pairs, 0.2, seed=2) != (train, heldout)
    with pytest.raises(TunerError, match="too few"):
        split_heldout(pairs[:1], 0.1)
    with pytest.raises(TunerError, match=r"in \(0, 1\)"):
        split_heldout(pairs, 1.5)
    assert drop_queries(pairs, ["QUESTION 3"]) == [p for p in pairs if p.query != "question 3"]


def test_synth_offline_uses_a_sentence_as_query():
    text = (
        "The roaster is preheated for thirty minutes before the first batch. "
        "Green coffee is weighed into bins of twelve kilograms each. "
        "Every batch is logged with its drop temperature and time."
    )
    chunk = Chunk("d#0@x", "d", 0, text, 0, len(text), "d.md")
    [question] = offline_questions([chunk], per_chunk=1, seed=3, keep_sentence=0.0)
    assert question.question in text and question.question not in question.positive
    assert question.chunk_id == "d#0@x" and question.method == "ict"
    assert offline_questions([Chunk("e#0@y", "e", 0, "one sentence only", 0, 17, "e")]) == []


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('{"questions": ["A?", "B?"]}', ["A?", "B?"]),
        ('```json\n["A?", " "]\n```', ["A?"]),
        ("Sure!\n1. First?\n- Second?\nnot a question", ["First?", "Second?"]),
    ],
)
def test_synth_parse_questions(answer, expected):
    assert parse_questions(answer) == expected


def _chunks(n):
    return [Chunk(f"d{i}#0@x", f"d{i}", 0, f"passage {i}", 0, 9, "s") for i in range(n)]


def test_synth_llm_retries_then_caches(tmp_path):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        calls.append(body)
        assert request.headers["authorization"] == "Bearer sk-test"
        if len(calls) == 1:
            return httpx.Response(429, headers={"retry-after": "0"})
        passage = body["messages"][0]["content"].rsplit("\n", 1)[-1]
        content = json.dumps({"questions": [f"what is in {passage}?", "another?"]})
        return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})

    settings = LLMSettings(
        base_url="http://llm.test/v1", model="m", api_key="sk-test", concurrency=1
    )
    sleeps = []
    client = httpx.Client(transport=httpx.MockTransport(handler))
    generator = LLMQuestionGenerator(
        settings, tmp_path / "cache.sqlite", client=client, sleep=sleeps.append
    )
    questions = generator.generate(_chunks(3), per_chunk=2)
    generator.close()
    assert len(questions) == 6 and questions[0].question == "what is in passage 0?"
    assert (len(calls), sleeps) == (4, [0.0])  # one 429 retried after Retry-After

    again = LLMQuestionGenerator(settings, tmp_path / "cache.sqlite", client=client)
    assert again.generate(_chunks(3), per_chunk=2) == questions
    assert again.calls == 0  # all answers came from the cache
    again.close()


def test_synth_llm_gives_up_on_a_chunk_but_not_the_run(tmp_path):
    def handler(request: httpx.Request) -> httpx.Response:
        if b"passage 1" in request.content:
            return httpx.Response(400, text="bad request")
        return httpx.Response(200, json={"choices": [{"message": {"content": '["ok?"]'}}]})

    settings = LLMSettings(base_url="http://llm.test/v1", concurrency=2, max_retries=2)
    client = httpx.Client(transport=httpx.MockTransport(handler))
    generator = LLMQuestionGenerator(
        settings, tmp_path / "c.sqlite", client=client, sleep=lambda s: None
    )
    questions = generator.generate(_chunks(3), per_chunk=1)
    generator.close()
    assert sorted(q.chunk_id for q in questions) == ["d0#0@x", "d2#0@x"]


def test_synth_llm_needs_an_endpoint(tmp_path):
    with pytest.raises(TunerError, match="no LLM endpoint configured"):
        LLMQuestionGenerator(LLMSettings(), tmp_path / "c.sqlite")
