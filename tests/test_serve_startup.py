"""`serve` listens at once and answers 503 `not_ready` until its service (the model) is open;
a service that cannot open stops the server with one line and exit code 3."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from ragctl.core.errors import ModelLoadError
from ragctl.core.settings import load_settings
from ragctl.retriever.app import create_app
from ragctl.retriever.server import build_config, run
from ragctl.retriever.service import RetrieverService

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
HARNESS_S = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_served_answers_503_until_the_model_is_loaded(monkeypatch, real_encoder):
    """A real uvicorn server whose service opens only when the test says so: until then it
    answers health, and 503 `not_ready` with Retry-After on ready and search; then ready."""
    may_open = threading.Event()
    real_open = RetrieverService.open

    def gated_open(*args, **kwargs):
        assert may_open.wait(HARNESS_S), "the test never let the service open"
        return real_open(*args, **kwargs)

    monkeypatch.setattr(RetrieverService, "open", gated_open)
    port = _free_port()
    settings = load_settings(retriever={"port": port})
    app = create_app(settings, encoder=real_encoder, open_in_background=True)
    server = uvicorn.Server(build_config(settings, app=app, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + HARNESS_S
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.02)
        assert httpx.get(f"{url}/v1/health").status_code == 200
        ready = httpx.get(f"{url}/v1/ready")
        assert ready.status_code == 503 and ready.headers["Retry-After"] == "1"
        assert ready.json()["error"]["code"] == "not_ready"
        assert "starting up" in ready.json()["error"]["message"]
        search = httpx.post(f"{url}/v1/search", json={"query": "beer"})
        assert search.status_code == 503 and search.json()["error"]["code"] == "not_ready"
        may_open.set()
        while (ready := httpx.get(f"{url}/v1/ready")).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.05)
        assert ready.json()["collection"] == "docs__v1"
        assert httpx.post(f"{url}/v1/search", json={"query": "beer"}).status_code == 200
    finally:
        may_open.set()
        server.should_exit = True
        thread.join(HARNESS_S)


def test_a_service_that_cannot_open_stops_the_server(monkeypatch):
    """Opening fails in the background: ready says why, and `run` stops and returns False."""
    may_fail = threading.Event()

    def failing_open(*_args, **_kwargs):
        assert may_fail.wait(HARNESS_S)
        raise ModelLoadError("cannot load embedding model 'nowhere': no such folder")

    monkeypatch.setattr(RetrieverService, "open", failing_open)
    port = _free_port()
    settings = load_settings(retriever={"port": port})
    app = create_app(settings, open_in_background=True)
    outcome: list[bool] = []
    thread = threading.Thread(
        target=lambda: outcome.append(run(build_config(settings, app=app, log_level="warning"))),
        daemon=True,
    )
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + HARNESS_S
    while True:  # listening before the service fails
        try:
            ready = httpx.get(f"{url}/v1/ready")
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not listen"
            time.sleep(0.02)
    assert ready.status_code == 503 and ready.json()["error"]["code"] == "not_ready"
    may_fail.set()
    thread.join(HARNESS_S)
    assert outcome == [False]
    assert isinstance(app.state.startup_error, ModelLoadError)


def test_ragctl_serve_with_a_model_that_cannot_load_is_one_line_and_exit_3(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCTL_")}
    env.update(PYTHONPATH=str(REPO_ROOT), HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-m", "ragctl", "--data-dir", str(tmp_path / "data"), "--model",
         str(tmp_path / "no-such-model"), "serve", "--port", str(_free_port()),
         "--log-level", "warning"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    failures = [line for line in done.stderr.splitlines() if "retriever cannot start" in line]
    assert len(failures) == 1 and "no-such-model" in failures[0], done.stderr
    assert "Traceback" not in done.stderr
