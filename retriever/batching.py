"""Coalesce concurrent query encodings into one model call (dynamic micro-batching).

Under concurrent load, queries that arrive while the model is busy are encoded together in the
next forward pass instead of each thread running its own: one batch of 8 short queries costs
far less than 8 single calls, and the model's threads are not oversubscribed. A lone query
waits for nothing (no timer): it is encoded as soon as the encoder thread is free.

Queries are grouped by encoder object, so a batch never mixes the snapshots of two serving
pairs; each caller gets exactly its own row back.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ragctl.core.encoder import Embeddings, Encoder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchedEncoding:
    """One query's embedding and how it was made (for the server's stage metrics)."""

    embeddings: Embeddings
    batch_size: int
    """Queries encoded in the same model call (1 = alone)."""
    queued_s: float
    """Seconds between arriving and its batch's model call starting."""
    encode_s: float
    """Seconds of its batch's model call."""


@dataclass
class _Pending:
    encoder: Encoder
    query: str
    arrived: float = field(default_factory=time.perf_counter)
    result: Future[BatchedEncoding] = field(default_factory=Future)


_STOP = object()


class QueryBatcher:
    """Encoder threads that drain waiting queries into batches of up to `max_batch`.

    Args:
        max_batch: Most queries encoded in one call.
        workers: Encoder threads (batches encoded at the same time); about one per core
            when each model call runs single-threaded.
    """

    def __init__(self, max_batch: int = 32, workers: int = 1) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._run, name=f"ragctl-query-encoder-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def encode(self, encoder: Encoder, query: str) -> BatchedEncoding:
        """The embedding of `query` by `encoder` (blocks until its batch is done).

        Raises:
            RuntimeError: The batcher is closed.
            Exception: Whatever `encoder.encode_queries` raised for the batch.
        """
        if self._closed:
            raise RuntimeError("the query batcher is closed")
        pending = _Pending(encoder, query)
        self._queue.put(pending)
        return pending.result.result()

    def close(self) -> None:
        """Finish the queued work and stop the thread."""
        if not self._closed:
            self._closed = True
            for _ in self._threads:
                self._queue.put(_STOP)
            for thread in self._threads:
                thread.join(timeout=30)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[_Pending] = [first]  # type: ignore[list-item]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stopping = True
                    break
                batch.append(more)  # type: ignore[arg-type]
            self._encode(batch)

    @staticmethod
    def _encode(batch: list[_Pending]) -> None:
        groups: dict[int, list[_Pending]] = {}
        for item in batch:
            groups.setdefault(id(item.encoder), []).append(item)
        for items in groups.values():
            started = time.perf_counter()
            try:
                vectors = items[0].encoder.encode_queries([i.query for i in items])
            except BaseException as exc:  # handed to the caller, who raises it
                if len(items) == 1:
                    items[0].result.set_exception(exc)
                else:  # one bad query must not fail its neighbours: retry one by one
                    for item in items:
                        QueryBatcher._encode_alone(item)
                continue
            encode_s = time.perf_counter() - started
            for row, item in enumerate(items):
                item.result.set_result(
                    BatchedEncoding(
                        vectors.embeddings_slice(slice(row, row + 1)),
                        batch_size=len(items),
                        queued_s=started - item.arrived,
                        encode_s=encode_s,
                    )
                )

    @staticmethod
    def _encode_alone(item: _Pending) -> None:
        started = time.perf_counter()
        try:
            vectors = item.encoder.encode_queries([item.query])
        except BaseException as exc:  # handed to the caller, who raises it
            item.result.set_exception(exc)
            return
        item.result.set_result(
            BatchedEncoding(vectors, 1, started - item.arrived, time.perf_counter() - started)
        )
