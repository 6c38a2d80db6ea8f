"""The server path's exact requests: collection layout, search parameters, connection, retries.

A recording subclass of qdrant-client (in local mode) captures what ragctl sends, so these run
without a server; `tests/test_store.py` runs the same store behaviour against a live server
when RAGCTL_TEST_QDRANT_URL is set.
"""

from __future__ import annotations

import math
from dataclasses import replace

import httpx
import numpy as np
import pytest
from pydantic import ValidationError
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from ragctl.core.encoder import Embeddings
from ragctl.core.errors import StoreError
from ragctl.core.ids import chunk_id
from ragctl.core.lexical import LexicalSpec
from ragctl.core.matryoshka import normalize, truncate
from ragctl.core.records import Chunk
from ragctl.core.search import SearchParams
from ragctl.core.settings import Settings, StoreSettings, load_settings
from ragctl.core.store import open_store
from ragctl.core.store.base import CollectionSpec
from ragctl.core.store.server import ServerStore

DIM, SHORT = 32, 8
COSINE = models.Distance.COSINE
SPEC = CollectionSpec("docs", 1, "fake-model", DIM, (SHORT,))
TWO_STAGE = SearchParams(k=3, shortlist=10)
SINGLE_STAGE = SearchParams(k=3, shortlist=10, single_stage=True)
# Local mode takes search params and ignores them (exact search), saying so.
pytestmark = pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning")

SCALE = {
    "shard_number": 6,
    "replication_factor": 2,
    "write_consistency_factor": 1,
    "full_on_disk": True,
    "hnsw_m": 32,
    "hnsw_ef_construct": 256,
    "hnsw_ef": 200,
    "shortlist_quantization": "int8",
}


class RecordingClient(QdrantClient):
    """qdrant-client local mode that records the kwargs of the calls we assert on."""

    def __init__(self) -> None:
        super().__init__(location=":memory:")
        self.calls: dict[str, list[dict]] = {}

    def _record(self, name: str, kwargs: dict) -> None:
        self.calls.setdefault(name, []).append(kwargs)

    def create_collection(self, **kwargs):  # type: ignore[override]
        self._record("create_collection", kwargs)
        return super().create_collection(**kwargs)

    def create_payload_index(self, **kwargs):  # type: ignore[override]
        self._record("create_payload_index", kwargs)  # local mode ignores indexes: not passed on
        return True

    def query_batch_points(self, **kwargs):  # type: ignore[override]
        self._record("query_batch_points", kwargs)
        return super().query_batch_points(**kwargs)


def _store(settings: StoreSettings | None = None) -> tuple[ServerStore, RecordingClient]:
    client = RecordingClient()
    # local_mode=False: take the real server's code path (payload index included).
    return ServerStore(client, settings=settings), client


def _filled(store: ServerStore, n: int = 20) -> Embeddings:
    store.create_collection(SPEC)
    full = normalize(np.random.default_rng(0).normal(size=(n, DIM)).astype(np.float32))
    vectors = Embeddings(full, {SHORT: truncate(full, SHORT)})
    chunks = [
        Chunk(chunk_id(f"d{i}", 0, f"t{i}"), f"d{i}", 0, f"t{i}", 0, 2, f"d{i}.txt", {})
        for i in range(n)
    ]
    store.upsert(SPEC.physical, chunks, vectors)
    return vectors


def test_store_server_params_default_create_sends_plain_collection():
    store, client = _store()
    store.create_collection(SPEC)
    [sent] = client.calls["create_collection"]
    assert sent == {
        "collection_name": "docs__v1",
        "vectors_config": {
            "full": models.VectorParams(size=DIM, distance=models.Distance.COSINE, on_disk=False),
            "mrl_8": models.VectorParams(
                size=SHORT, distance=models.Distance.COSINE, on_disk=False
            ),
        },
        "shard_number": None,
        "replication_factor": None,
        "write_consistency_factor": None,
        "hnsw_config": None,
        "sparse_vectors_config": None,
        "metadata": {"ragctl": SPEC.to_dict()},
    }
    assert client.calls["create_payload_index"] == [
        {
            "collection_name": "docs__v1",
            "field_name": "doc_id",
            "field_schema": models.PayloadSchemaType.KEYWORD,
        }
    ]


def test_store_server_params_scale_settings_reach_create_collection(monkeypatch):
    for key, value in SCALE.items():
        monkeypatch.setenv(f"RAGCTL_STORE__{key.upper()}", str(value).lower())
    store, client = _store(load_settings().store)
    store.create_collection(SPEC)
    [sent] = client.calls["create_collection"]
    int8 = models.ScalarQuantization(
        scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
    )
    assert sent == {
        "collection_name": "docs__v1",
        "vectors_config": {
            "full": models.VectorParams(
                size=DIM,
                distance=models.Distance.COSINE,
                on_disk=True,
                hnsw_config=models.HnswConfigDiff(on_disk=True),
            ),
            # int8 copy in RAM, float originals on disk (never read: no rescoring).
            "mrl_8": models.VectorParams(
                size=SHORT,
                distance=models.Distance.COSINE,
                on_disk=True,
                quantization_config=int8,
            ),
        },
        "shard_number": 6,
        "replication_factor": 2,
        "write_consistency_factor": 1,
        "hnsw_config": models.HnswConfigDiff(m=32, ef_construct=256),
        "sparse_vectors_config": None,
        "metadata": {"ragctl": SPEC.to_dict()},
    }


def test_store_server_params_never_quantize_the_full_vector():
    store, client = _store(StoreSettings(shortlist_quantization="int8", full_on_disk=False))
    store.create_collection(SPEC)
    [sent] = client.calls["create_collection"]
    assert sent["vectors_config"]["full"].quantization_config is None
    assert "quantization_config" not in sent  # no collection-wide default for `full` to inherit
    assert sent["vectors_config"]["mrl_8"].quantization_config is not None
    assert sent["vectors_config"]["full"].on_disk is False  # full_on_disk=False: RAM


def test_store_server_params_quantized_shortlist_is_not_rescored():
    store, client = _store(StoreSettings(shortlist_quantization="int8"))
    vectors = _filled(store)
    query = vectors.embeddings_slice(slice(0, 1))
    store.search_batch(SPEC.physical, query, TWO_STAGE)
    store.search_batch(SPEC.physical, query, SINGLE_STAGE)
    [two_stage] = client.calls["query_batch_points"][0]["requests"]
    [single] = client.calls["query_batch_points"][1]["requests"]
    assert two_stage.prefetch[0].params == models.SearchParams(
        quantization=models.QuantizationSearchParams(rescore=False)
    )
    assert two_stage.params is None and single.params is None  # `full` is never quantized


def test_store_server_params_hnsw_ef_goes_to_the_one_hnsw_search():
    store, client = _store(StoreSettings(hnsw_ef=123))
    vectors = _filled(store)
    query = vectors.embeddings_slice(slice(0, 1))
    two = store.search_batch(SPEC.physical, query, TWO_STAGE)
    one = store.search_batch(SPEC.physical, query, SINGLE_STAGE)
    assert two[0][0].chunk_id == one[0][0].chunk_id
    [two_stage] = client.calls["query_batch_points"][0]["requests"]
    [single] = client.calls["query_batch_points"][1]["requests"]
    ef = models.SearchParams(hnsw_ef=123)
    assert (two_stage.prefetch[0].using, two_stage.prefetch[0].limit) == ("mrl_8", 10)
    assert two_stage.prefetch[0].params == ef
    assert two_stage.params is None  # the rerank scores the shortlist exactly: no index
    assert (single.using, single.prefetch, single.params) == ("full", None, ef)


def test_store_server_params_no_search_params_by_default():
    store, client = _store()
    vectors = _filled(store)
    store.search_batch(SPEC.physical, vectors.embeddings_slice(slice(0, 1)), TWO_STAGE)
    [request] = client.calls["query_batch_points"][0]["requests"]
    assert request.params is None and request.prefetch[0].params is None


def test_store_server_params_local_mode_accepts_every_setting():
    store = ServerStore.connect(StoreSettings(url=":memory:", **SCALE))
    vectors = _filled(store)
    hits = store.search(SPEC.physical, vectors.embeddings_slice(slice(4, 5)), TWO_STAGE)
    assert hits[0].doc_id == "d4" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    store.close()


def test_store_server_params_settings_validation():
    with pytest.raises(ValidationError, match=r"write_consistency_factor \(3\) must not exceed"):
        StoreSettings(replication_factor=2, write_consistency_factor=3)
    with pytest.raises(ValidationError, match=r"write_consistency_factor \(2\) must not exceed"):
        StoreSettings(write_consistency_factor=2)
    with pytest.raises(ValidationError, match="shortlist_quantization"):
        StoreSettings(shortlist_quantization="int4")
    with pytest.raises(ValidationError, match="shard_number"):
        StoreSettings(shard_number=0)
    with pytest.raises(ValidationError, match="timeout_s"):
        StoreSettings(timeout_s=0)


class FakeRemote:
    """Stands in for `QdrantClient(url=...)`: records how it was built, fails on demand."""

    instances: list[FakeRemote] = []
    failures: list[BaseException] = []

    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs
        self.get_collections_calls = 0
        self.create_calls = 0
        FakeRemote.instances.append(self)

    def get_collections(self):
        self.get_collections_calls += 1
        if FakeRemote.failures:
            raise FakeRemote.failures.pop(0)
        return models.CollectionsResponse(collections=[])

    def collection_exists(self, name):
        return False

    def create_collection(self, **kwargs):
        self.create_calls += 1
        raise ResponseHandlingException(httpx.ReadTimeout("timed out"))

    def close(self):
        pass


@pytest.fixture
def fake_remote(monkeypatch):
    import qdrant_client

    FakeRemote.instances = []
    FakeRemote.failures = []
    monkeypatch.setattr(qdrant_client, "QdrantClient", FakeRemote)
    monkeypatch.setattr("ragctl.core.store.server.time.sleep", lambda s: None)
    return FakeRemote


def _remote(**settings) -> StoreSettings:
    return StoreSettings(url="http://qdrant:6333", **settings)


def _refused() -> ResponseHandlingException:
    return ResponseHandlingException(httpx.ConnectError("connection refused"))


def test_store_server_params_open_store_passes_url_key_timeout_and_params(fake_remote):
    settings = Settings(
        store={"url": "https://qdrant.example:6333", "api_key": "s3cret", "timeout_s": 2.5, **SCALE}
    )
    store = open_store(settings)
    [client] = fake_remote.instances
    assert client.kwargs == {
        "url": "https://qdrant.example:6333",
        "api_key": "s3cret",
        "timeout": 3,
    }
    assert store.settings is settings.store and store.settings.shard_number == 6


def test_store_server_params_connect_retries_transient_failures(fake_remote):
    fake_remote.failures = [_refused(), _refused()]
    store = ServerStore.connect(_remote(max_retries=2))
    assert fake_remote.instances[0].get_collections_calls == 3
    assert store.client is fake_remote.instances[0]


def test_store_server_params_connect_gives_up_after_max_retries(fake_remote):
    fake_remote.failures = [_refused(), _refused()]
    with pytest.raises(StoreError, match="Qdrant server: .*connection refused"):
        ServerStore.connect(_remote(max_retries=1))
    assert fake_remote.instances[0].get_collections_calls == 2


def test_store_server_params_no_retry_on_a_real_answer(fake_remote):
    fake_remote.failures = [UnexpectedResponse(403, "Forbidden", b"bad api key", httpx.Headers())]
    with pytest.raises(StoreError, match="403"):
        ServerStore.connect(_remote(max_retries=5))
    assert fake_remote.instances[0].get_collections_calls == 1


def test_store_server_params_overloaded_server_is_retried(fake_remote):
    fake_remote.failures = [UnexpectedResponse(503, "Unavailable", b"", httpx.Headers())]
    ServerStore.connect(_remote(max_retries=1))
    assert fake_remote.instances[0].get_collections_calls == 2


def test_store_server_params_create_collection_is_never_retried(fake_remote):
    store = ServerStore.connect(_remote(max_retries=5))
    with pytest.raises(StoreError, match="timed out"):
        store.create_collection(SPEC)
    assert fake_remote.instances[0].create_calls == 1


def test_store_server_params_timeout_is_rounded_up(fake_remote):
    ServerStore.connect(_remote(timeout_s=0.2))
    assert fake_remote.instances[0].kwargs["timeout"] == math.ceil(0.2) == 1


def test_store_server_params_lexical_spec_creates_an_idf_sparse_vector():
    store, client = _store()
    spec = replace(SPEC, lexical=LexicalSpec())
    store.create_collection(spec)
    [sent] = client.calls["create_collection"]
    assert sent["sparse_vectors_config"] == {
        "lex": models.SparseVectorParams(modifier=models.Modifier.IDF)
    }
    assert store.spec(spec.physical).lexical == LexicalSpec()
