"""Query micro-batching: concurrent queries share one encode call, each gets its own row."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ragctl.retriever.batching import QueryBatcher
from ragctl.retriever.testing import KeywordEncoder


def _wait_for(predicate, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.fixture
def batcher():
    opened = QueryBatcher(max_batch=4)
    yield opened
    opened.close()


def test_retriever_batching_coalesces_waiting_queries_and_returns_each_row(batcher):
    sizes, gate = [], threading.Event()

    def hold_first_call(texts):
        sizes.append(len(texts))
        if len(sizes) == 1:
            assert gate.wait(5)

    encoder = KeywordEncoder(before_encode=hold_first_call)
    queries = [f"query about topic{i} and word{i}" for i in range(7)]
    with ThreadPoolExecutor(max_workers=7) as pool:
        first = pool.submit(batcher.encode, encoder, queries[0])
        _wait_for(lambda: sizes == [1])
        rest = [pool.submit(batcher.encode, encoder, q) for q in queries[1:]]
        _wait_for(lambda: batcher._queue.qsize() == 6)
        gate.set()
        results = [first.result(5)] + [f.result(5) for f in rest]
    assert sizes == [1, 4, 2]  # max_batch 4, then the remainder
    assert [r.batch_size for r in results] == [1, 4, 4, 4, 4, 2, 2]
    assert all(r.queued_s >= 0 and r.encode_s >= 0 for r in results)
    reference = KeywordEncoder()
    for query, batched in zip(queries, results, strict=True):
        got = batched.embeddings
        expected = reference.encode_queries([query])
        assert got.full.shape == (1, 64)
        np.testing.assert_allclose(got.full, expected.full, atol=1e-6)
        np.testing.assert_allclose(got.shortlist[16], expected.shortlist[16], atol=1e-6)


def test_retriever_batching_never_mixes_encoders(batcher):
    calls, gate = [], threading.Event()

    def record(name):
        def hook(texts):
            calls.append((name, tuple(texts)))
            if len(calls) == 1:
                assert gate.wait(5)

        return hook

    old = KeywordEncoder(model_ref="v1", before_encode=record("v1"))
    new = KeywordEncoder(model_ref="v2", before_encode=record("v2"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        blocker = pool.submit(batcher.encode, old, "first")
        _wait_for(lambda: len(calls) == 1)
        futures = [pool.submit(batcher.encode, enc, q) for enc, q in
                   [(old, "a"), (new, "b"), (old, "c")]]  # fmt: skip
        _wait_for(lambda: batcher._queue.qsize() == 3)
        gate.set()
        blocker.result(5)
        [f.result(5) for f in futures]
    assert sorted(calls[1:]) == [("v1", ("a", "c")), ("v2", ("b",))]


def test_retriever_batching_a_bad_query_fails_alone(batcher):
    gate = threading.Event()
    seen = []

    def hook(texts):
        seen.append(list(texts))
        if len(seen) == 1:
            assert gate.wait(5)
        if "bad" in texts:
            raise ValueError("cannot encode 'bad'")

    encoder = KeywordEncoder(before_encode=hook)
    with ThreadPoolExecutor(max_workers=4) as pool:
        blocker = pool.submit(batcher.encode, encoder, "first")
        _wait_for(lambda: len(seen) == 1)
        good = pool.submit(batcher.encode, encoder, "good")
        bad = pool.submit(batcher.encode, encoder, "bad")
        _wait_for(lambda: batcher._queue.qsize() == 2)
        gate.set()
        blocker.result(5)
        assert good.result(5).embeddings.full.shape == (1, 64)
        with pytest.raises(ValueError, match="cannot encode 'bad'"):
            bad.result(5)


def test_retriever_batching_refuses_work_after_close():
    batcher = QueryBatcher(max_batch=2)
    assert batcher.encode(KeywordEncoder(), "hello").embeddings.full.shape == (1, 64)
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.encode(KeywordEncoder(), "hello")
    with pytest.raises(ValueError, match="max_batch must be >= 1"):
        QueryBatcher(max_batch=0)


def test_retriever_batching_with_several_encoder_threads_answers_everyone():
    batcher = QueryBatcher(max_batch=3, workers=2)
    try:
        encoder = KeywordEncoder()
        queries = [f"word{i} other{i}" for i in range(40)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = [
                b.embeddings for b in pool.map(lambda q: batcher.encode(encoder, q), queries)
            ]
        for query, got in zip(queries, results, strict=True):
            np.testing.assert_allclose(got.full, encoder.encode_queries([query]).full, atol=1e-6)
    finally:
        batcher.close()
    assert all(not t.is_alive() for t in batcher._threads)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        QueryBatcher(workers=0)
