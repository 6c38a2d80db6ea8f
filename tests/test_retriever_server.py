"""The real uvicorn server ragctl runs: slow clients are cut off, workers get their settings.

A server with short deadlines (1-2 s) runs in a thread on a free port of 127.0.0.1 with the
weightless keyword encoder; raw sockets play the slow clients. Every wait has a harness
deadline, so a regression fails instead of hanging the suite; nothing asserts on timings.
"""

import json
import multiprocessing
import os
import socket
import threading
import time

import httpx
import pytest

from ragctl.core.settings import load_settings
from ragctl.retriever.app import create_app
from ragctl.retriever.server import MAX_HEAD_BYTES, ServeConfig, build_config, worker_app
from ragctl.retriever.testing import KeywordEncoder

HARNESS_S = 30  # far above every deadline under test; reaching it means "never cut off"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """uvicorn with ragctl's protocol and deadlines: head 1 s, body 2 s, keep-alive 1 s."""
    import uvicorn

    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("server") / "data",
        retriever={"port": _free_port(), "header_timeout_s": 1, "body_timeout_s": 2,
                   "keep_alive_timeout_s": 1},
    )  # fmt: skip
    app = create_app(settings, encoder=KeywordEncoder())
    running = uvicorn.Server(build_config(settings, app=app, log_level="warning"))
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + HARNESS_S
    while not running.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{settings.retriever.port}"
    posted = httpx.post(f"{url}/v1/documents", json={"documents": [
        {"id": "grinder.md", "text": "The grinder burrs are replaced every 800 kg."}]})  # fmt: skip
    assert posted.status_code == 200, posted.text
    yield settings.retriever.port
    running.should_exit = True
    thread.join(HARNESS_S)


def _connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=HARNESS_S)
    return sock


def _read_until_closed(sock):
    """Everything the server sends until it closes the connection (or the harness deadline)."""
    sock.settimeout(HARNESS_S)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _status_and_error(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)["error"] if body else None, head.lower()


def test_server_cuts_off_incomplete_headers_on_many_connections(server):
    sockets = [_connect(server) for _ in range(50)]
    for sock in sockets:
        sock.sendall(b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
    answers = [_read_until_closed(sock) for sock in sockets]  # returns only once closed
    for raw in answers:
        status, error, head = _status_and_error(raw)
        assert status == 408 and error["code"] == "request_timeout"
        assert error["message"] == "request headers not received within 1 s"
        assert b"connection: close" in head
    for sock in sockets:
        sock.close()


def test_server_cuts_off_a_connection_that_sends_nothing(server):
    with _connect(server) as sock:
        status, error, _ = _status_and_error(_read_until_closed(sock))
    assert (status, error["code"]) == (408, "request_timeout")


def test_server_cuts_off_a_body_trickling_one_byte_per_half_second(server):
    with _connect(server) as sock:
        sock.sendall(b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n")  # fmt: skip
        sock.settimeout(0.5)
        sent, answer = 0, b""
        deadline = time.monotonic() + HARNESS_S
        while time.monotonic() < deadline:
            try:
                sock.sendall(b" ")
                sent += 1
            except OSError:
                break  # the server closed the connection
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break  # closed with our bytes unread: a reset can overtake the 408
            if not chunk:
                break
            answer += chunk
    assert sent < 1000, "the slow body was never cut off"
    if not answer:
        return
    status, error, _ = _status_and_error(answer)
    assert (status, error["code"]) == (408, "request_timeout")
    assert error["message"] == "request body not received within 2 s"


def test_server_closes_idle_keep_alive_connections_and_serves_normal_ones(server):
    body = json.dumps({"query": "grinder burrs"}).encode()
    request = (b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
    with _connect(server) as sock:
        sock.sendall(request + request)  # two requests on one keep-alive connection
        raw = _read_until_closed(sock)  # then idle: the server closes it
    assert raw.count(b"HTTP/1.1 200 OK") == 2 and raw.count(b'"doc_id":"grinder.md"') == 2


def test_server_refuses_oversized_headers(server):
    with _connect(server) as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        try:
            for _ in range(MAX_HEAD_BYTES // 1000 + 5):
                sock.sendall(b"X-Filler: " + b"a" * 990 + b"\r\n")
        except OSError:
            pass  # closed while sending: fine, the answer is already in the buffer
        status, error, _ = _status_and_error(_read_until_closed(sock))
    assert (status, error["code"]) == (431, "request_header_fields_too_large")


def _load_worker(config, results):
    """In a spawned worker: what `ServeConfig.load` hands the app, and what the env holds."""
    config.load()
    app = config.loaded_app
    while not hasattr(app, "state"):  # uvicorn wraps the app in its own middleware
        app = app.app
    keys = [k.get_secret_value() for k in app.state.settings.retriever.admin_api_key]
    results.put((keys, any(keys[0] in value for value in os.environ.values())))


def test_server_workers_get_their_settings_through_the_spawn_pipe_not_the_environment():
    key = "worker-admin-key-0123456789"
    settings = load_settings(
        store={"url": "http://qdrant.invalid:6333"},
        retriever={"workers": 2, "admin_api_key": key, "torch_threads": None},
    )
    config = build_config(settings)
    assert isinstance(config, ServeConfig) and config.workers == 2
    assert all(key not in value for value in os.environ.values())
    context = multiprocessing.get_context("spawn")  # what uvicorn's supervisor uses
    results = context.Queue()
    child = context.Process(target=_load_worker, args=(config, results))
    child.start()
    try:
        deadline = time.monotonic() + 120
        while results.empty():
            assert child.is_alive() and time.monotonic() < deadline, "the worker failed"
            time.sleep(0.1)
        keys, in_environment = results.get(timeout=HARNESS_S)
    finally:
        child.join(HARNESS_S)
    assert keys == [key] and in_environment is False
    with pytest.raises(RuntimeError, match="started by `ragctl serve --workers N` only"):
        worker_app()
