"""Prometheus metrics of one app, in their own registry (several apps per process stay apart).

Names (`collection` is the collection's alias name, e.g. `docs`):
- `ragctl_http_requests_total{method, route, status}`: requests per route template.
- `ragctl_http_request_duration_seconds{method, route}`: latency histogram per route template.
- `ragctl_search_stage_seconds{collection, stage}`: search stages `queue` (waiting for the query
  encoder), `encode` (the model call), `store` (the Qdrant query) and `log` (the durable
  search-log write); a batch search is observed once.
- `ragctl_query_encode_batch_size{collection}`: queries encoded in the same model call as a
  search's (micro-batching; 1 = alone; a sparse search calls no model and is not counted).
- `ragctl_searches_total{collection, mode}`: queries answered (each query of a batch counts).
- `ragctl_feedback_total{collection, label}`: feedback events stored, by label.
- `ragctl_documents_chunks_written_total{collection}` / `..._deleted_total{collection}`.
- `ragctl_embeddings_inputs_total{collection}`: texts embedded by `POST /v1/embeddings`.
- `ragctl_serving_model_version{collection}`: the model version served, per loaded collection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from ragctl.retriever.service import SearchOutcome

if TYPE_CHECKING:
    from ragctl.retriever.service import BatchSearchOutcome
    from ragctl.retriever.serving import Serving

_LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

UNMATCHED_ROUTE = "<unmatched>"


class Metrics:
    """The retriever's counters, histograms and gauges in a private `CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "ragctl_http_requests",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "ragctl_http_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.search_stage_seconds = Histogram(
            "ragctl_search_stage_seconds",
            "Time per search stage: queue (waiting for the encoder), encode (query embedding), "
            "store (Qdrant query), log.",
            ["collection", "stage"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.encode_batch_size = Histogram(
            "ragctl_query_encode_batch_size",
            "Queries encoded in the same model call as a search's (query micro-batching).",
            ["collection"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.searches = Counter(
            "ragctl_searches",
            "Queries answered, by mode (dense, sparse, hybrid).",
            ["collection", "mode"],
            registry=self.registry,
        )
        self.feedback = Counter(
            "ragctl_feedback",
            "Feedback events stored, by label.",
            ["collection", "label"],
            registry=self.registry,
        )
        self.chunks_written = Counter(
            "ragctl_documents_chunks_written",
            "Chunks embedded and written through POST /v1/documents.",
            ["collection"],
            registry=self.registry,
        )
        self.chunks_deleted = Counter(
            "ragctl_documents_chunks_deleted",
            "Chunks deleted through the documents routes.",
            ["collection"],
            registry=self.registry,
        )
        self.embedding_inputs = Counter(
            "ragctl_embeddings_inputs",
            "Texts embedded through POST /v1/embeddings.",
            ["collection"],
            registry=self.registry,
        )
        self.serving_version = Gauge(
            "ragctl_serving_model_version",
            "Model version (N of NAME__vN) of the collection being served.",
            ["collection"],
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request and its latency."""
        self.requests.labels(method, route, str(status)).inc()
        self.request_seconds.labels(method, route).observe(seconds)

    def observe_search(self, outcome: SearchOutcome | BatchSearchOutcome) -> None:
        """Record the stage timings of one search (or batch) and count its queries."""
        name = outcome.serving.spec.name
        if isinstance(outcome, SearchOutcome):
            self.search_stage_seconds.labels(name, "queue").observe(outcome.queue_s)
            if outcome.encode_batch:
                self.encode_batch_size.labels(name).observe(outcome.encode_batch)
        self.search_stage_seconds.labels(name, "encode").observe(outcome.encode_s)
        self.search_stage_seconds.labels(name, "store").observe(outcome.store_s)
        self.search_stage_seconds.labels(name, "log").observe(outcome.log_s)
        queries = 1 if isinstance(outcome, SearchOutcome) else len(outcome.searches)
        self.searches.labels(name, outcome.mode).inc(queries)

    def set_serving(self, serving: Serving) -> None:
        """Publish the model version a collection serves now."""
        self.serving_version.labels(serving.spec.name).set(serving.model_version)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
