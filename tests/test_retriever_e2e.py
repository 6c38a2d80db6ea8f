"""End to end: the real `ragctl serve` process with the packaged model, killed and restarted.

Ingests documents through the API, searches, posts feedback, SIGKILLs the server, starts it
again on the same data dir and finds the feedback (and the documents) still there. Traffic goes
to 127.0.0.1 only.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from ragctl.cli.main import main
from ragctl.client import Client, NotFoundError, PermissionDeniedError
from ragctl.retriever.schemas import SearchRequest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
DOCS = [
    {"id": "bar/grinder.md", "text": "The burrs of the espresso grinder are replaced every 800 kg "
     "of coffee. Clean the chute daily with a dry brush."},
    {"id": "bar/milk.md", "text": "Steam whole milk to 60 degrees Celsius; oat milk stretches "
     "best at 55 degrees."},
    {"id": "front/refunds.md", "text": "Refunds over 40 dollars need the PIN of a shift lead.",
     "metadata": {"team": "front"}},
]  # fmt: skip


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python -m ragctl serve` on a free port of 127.0.0.1, logging to a file."""

    def __init__(self, data_dir, log_path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ragctl", "--data-dir", str(data_dir), "serve",
             "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def wait_ready(self, timeout_s=120):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}")
            try:
                if self.client.get("/v1/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"server not ready after {timeout_s} s")

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self.client.close()
        self.log.close()
        return self.proc.returncode


def _cli(data_dir, *args, expect=0):
    result = CliRunner().invoke(
        main, ["--data-dir", str(data_dir), *args], prog_name="ragctl", catch_exceptions=False
    )
    assert result.exit_code == expect, result.output
    return result.output


def test_retriever_e2e_feedback_survives_sigkill_and_restart(tmp_path):
    data_dir = tmp_path / "served"
    log_path = tmp_path / "server.log"
    server = Server(data_dir, log_path)
    try:
        server.wait_ready()
        api = server.client
        written = api.post("/v1/documents", json={"documents": DOCS}).json()
        assert written["chunks_written"] == 3 and written["collection"] == "docs__v1"

        found = api.post(
            "/v1/search", json={"query": "When do the grinder burrs need replacing?", "k": 3}
        ).json()
        assert found["model_version"] == 1 and found["results"][0]["doc_id"] == "bar/grinder.md"
        top, other = found["results"][0], found["results"][1]
        for chunk, label in ((top, "relevant"), (other, "not_relevant")):
            response = api.post(
                "/v1/feedback",
                json={"search_id": found["search_id"], "chunk_id": chunk["chunk_id"],
                      "label": label},
            )  # fmt: skip
            assert response.status_code == 201, response.text

        # The log is readable from another process while the server writes it (WAL).
        assert len(_cli(data_dir, "feedback", "export").splitlines()) == 2

        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        server.stop(signal.SIGKILL)

    restarted = Server(data_dir, log_path)
    try:
        restarted.wait_ready()
        rows = [json.loads(line) for line in _cli(data_dir, "feedback", "export").splitlines()]
        assert [(r["label"], r["chunk_id"]) for r in rows] == [
            ("relevant", top["chunk_id"]),
            ("not_relevant", other["chunk_id"]),
        ]
        assert rows[0]["query"] == "When do the grinder burrs need replacing?"
        assert rows[0]["chunk_text"] == DOCS[0]["text"] and rows[0]["model_version"] == 1
        assert rows[0]["rank"] == 1 and rows[0]["search_id"] == found["search_id"]
        assert "feedback: 2 (relevant 1, not_relevant 1)" in _cli(data_dir, "feedback", "stats")

        # Documents and the search log survived too: feedback on the old search still works.
        again = restarted.client.post("/v1/search", json={"query": "oat milk temperature"}).json()
        assert again["results"][0]["doc_id"] == "bar/milk.md"
        late = restarted.client.post(
            "/v1/feedback",
            json={"search_id": found["search_id"], "chunk_id": top["chunk_id"],
                  "label": "relevant"},
        )  # fmt: skip
        assert late.status_code == 201, late.text
        # The public client (the one the CLI's --api uses) against a running server.
        with Client(restarted.url) as client:
            found = client.search(SearchRequest(query="refund PIN", k=1))
            assert found.results[0].doc_id == "front/refunds.md"
            assert client.delete_document("front/refunds.md").chunks_deleted == 1
            with pytest.raises(NotFoundError, match="no document 'front/refunds.md'") as missing:
                client.delete_document("front/refunds.md")
            assert (missing.value.status, missing.value.code) == (404, "document_not_found")
            with pytest.raises(PermissionDeniedError, match="admin_disabled"):
                client.physical_collections()

        # The data commands with --api talk to the running server (it holds the store's lock).
        folder = tmp_path / "more"
        folder.mkdir()
        (folder / "tea.md").write_text("Green tea is brewed at 80 degrees for two minutes.")
        output = _cli(data_dir, "ingest", "--api", restarted.url, str(folder))
        assert "1 documents (0 unchanged), 1 chunks written" in output
        found_tea = json.loads(
            _cli(data_dir, "search", "--api", restarted.url, "green tea", "--json")
        )
        assert found_tea["collection"] == "docs__v1"
        assert found_tea["results"][0]["text"].startswith("Green tea")
        deleted = _cli(
            data_dir, "delete", "--api", restarted.url, found_tea["results"][0]["doc_id"], "nope",
            expect=1,
        )  # fmt: skip
        assert "deleted 1 chunks of 1 document(s) from docs__v1" in deleted
        assert "Error: no document 'nope' in docs__v1; nothing deleted for it" in deleted

        metrics = restarted.client.get("/metrics").text
        assert 'ragctl_serving_model_version{collection="docs"} 1.0' in metrics
        # Graceful shutdown (uvicorn re-raises SIGTERM after it, hence -15 or 0), no traceback.
        assert restarted.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert "Traceback" not in log_path.read_text(errors="replace")
    finally:
        restarted.stop(signal.SIGKILL)
        if sys.exc_info()[0] is not None:
            print(log_path.read_text(errors="replace")[-5000:])
