"""deploy/reload_replicas.py: POST /v1/admin/reload to every replica, against a local stub."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "deploy" / "reload_replicas.py"
KEY = "test-admin-key"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reload_replicas", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Replica(BaseHTTPRequestHandler):
    calls: list[tuple[str, str | None]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        _Replica.calls.append((self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b'{"error": {"code": "unauthorized"}}')
            return
        body = {"changed": True, "previous": "docs__v1", "current": "docs__v2"}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def replica() -> Iterator[int]:
    _Replica.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Replica)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_deploy_reload_posts_to_each_replica(replica, monkeypatch, capsys):
    monkeypatch.setenv("RAGCTL_RETRIEVER__ADMIN_API_KEY", KEY)
    assert _load().main([f"127.0.0.1:{replica}"]) == 0
    assert _Replica.calls == [("/v1/admin/reload", f"Bearer {KEY}")]
    assert f"127.0.0.1:{replica} switched: docs__v1 -> docs__v2" in capsys.readouterr().out


def test_deploy_reload_wrong_key_fails_without_retry(replica, monkeypatch, capsys):
    monkeypatch.setenv("RAGCTL_RETRIEVER__ADMIN_API_KEY", "wrong")
    assert _load().main([f"127.0.0.1:{replica}"]) == 1
    assert len(_Replica.calls) == 1
    assert "HTTP 401" in capsys.readouterr().err


def test_deploy_reload_needs_the_admin_key(monkeypatch, capsys):
    monkeypatch.delenv("RAGCTL_RETRIEVER__ADMIN_API_KEY", raising=False)
    assert _load().main(["127.0.0.1:9"]) == 2
    assert "RAGCTL_RETRIEVER__ADMIN_API_KEY is not set" in capsys.readouterr().err


def test_deploy_reload_unresolvable_host(monkeypatch, capsys):
    import socket

    def no_such_host(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setenv("RAGCTL_RETRIEVER__ADMIN_API_KEY", KEY)
    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    assert _load().main(["no-such-host.invalid:8000"]) == 1
    assert "cannot resolve" in capsys.readouterr().err
