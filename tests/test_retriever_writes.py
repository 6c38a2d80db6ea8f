"""Bounded writes: a per-request text limit, and no admin operation waiting behind a model.

Upserts embed outside the write lock (`ingest.staged`), so an admin reload answers while an
upsert is still inside the encoder; the upsert then lands in the collection served after the
swap. Blocking encoders make the interleavings exact; nothing asserts on timings.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from ragctl.core.collections import spec_for_new
from ragctl.core.records import Document
from ragctl.core.settings import load_settings
from ragctl.retriever.app import create_app
from ragctl.retriever.testing import KeywordEncoder

KEY = "writes-admin-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
HARNESS_S = 30


def _client(tmp_path, encoder, **retriever):
    settings = load_settings(
        data_dir=tmp_path / "data", retriever={"admin_api_key": KEY, **retriever}
    )
    return TestClient(create_app(settings, encoder=encoder), headers=AUTH)


class Gate:
    """Holds the encoder when it sees `marker` in a text, until released."""

    def __init__(self, marker):
        self.marker = marker
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, texts):
        if any(self.marker in t for t in texts) and not self.release.is_set():
            self.entered.set()
            assert self.release.wait(HARNESS_S), "never released"


def test_writes_request_text_over_the_limit_is_413(tmp_path):
    with _client(tmp_path, KeywordEncoder(), max_request_text_mib=0.001) as client:  # 1,048 B
        docs = [{"id": f"d{i}", "text": "é" * 200} for i in range(3)]  # 400 bytes each
        response = client.post("/v1/documents", json={"documents": docs})
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert (error["code"], error["field"]) == ("payload_too_large", "documents")
        assert (
            "over 1048 bytes of text (retriever.max_request_text_mib = 0.001)" in (error["message"])
        )
        ok = client.post("/v1/documents", json={"documents": docs[:2]})
        assert ok.status_code == 200, ok.text


def test_writes_admin_reload_does_not_wait_for_an_upsert_in_the_encoder(tmp_path):
    gate = Gate("slow upsert")
    encoder = KeywordEncoder(before_encode=gate)
    with _client(tmp_path, encoder) as client:
        first = {"id": "a.md", "text": "The espresso grinder burrs are replaced yearly."}
        assert client.post("/v1/documents", json={"documents": [first]}).status_code == 200
        service = client.app.state.service
        v2 = spec_for_new("docs", 2, encoder)  # a promotion by another process, say
        service.store.create_collection(v2)
        service.store.set_alias("docs", v2.physical)
        with ThreadPoolExecutor(max_workers=1) as pool:
            doc = {"id": "slow.md", "text": "A slow upsert about cold brew ratios."}
            upsert = pool.submit(client.post, "/v1/documents", json={"documents": [doc]})
            assert gate.entered.wait(HARNESS_S)
            # The upsert is inside the encoder, holding no lock: the swap goes through now.
            reload = client.post("/v1/admin/reload")
            assert not upsert.done()
            gate.release.set()
            written = upsert.result(timeout=HARNESS_S)
        assert reload.status_code == 200 and reload.json()["current"] == "docs__v2"
        # Prepared for v1, committed after the swap: prepared again and written to v2.
        assert written.status_code == 200 and written.json()["collection"] == "docs__v2"
        assert set(service.store.chunk_ids_of("docs__v2", ["slow.md"])) == {"slow.md"}
        assert service.store.chunk_ids_of("docs__v1", ["slow.md"]) == {}


def test_writes_racing_upserts_of_one_document_leave_one_version(tmp_path):
    gate = Gate("first version")
    encoder = KeywordEncoder(before_encode=gate)
    with _client(tmp_path, encoder) as client:
        store = client.app.state.service.store
        chunker = client.app.state.service.current().chunker
        first = Document("race.md", "The first version of the race document.", "api")
        second = Document("race.md", "Then a second version, written meanwhile.", "api")
        with ThreadPoolExecutor(max_workers=1) as pool:
            slow = pool.submit(
                client.post, "/v1/documents",
                json={"documents": [{"id": first.doc_id, "text": first.text}]},
            )  # fmt: skip
            assert gate.entered.wait(HARNESS_S)
            fast = client.post(
                "/v1/documents", json={"documents": [{"id": second.doc_id, "text": second.text}]}
            )
            assert fast.status_code == 200
            gate.release.set()
            assert slow.result(timeout=HARNESS_S).status_code == 200
        # The later commit re-planned against the earlier one: its version alone is stored.
        stored = store.chunk_ids_of("docs__v1", ["race.md"])["race.md"]
        assert stored == {c.chunk_id for c in chunker.chunk(first)}
        hits = client.post("/v1/search", json={"query": "race document version"}).json()
        assert [h["text"] for h in hits["results"]] == [first.text]
