"""API keys by role (read, write, admin) on every route, through TestClient."""

import hmac
import logging

import pytest
from fastapi.testclient import TestClient

from ragctl.core.settings import load_settings
from ragctl.retriever.app import create_app
from ragctl.retriever.auth import AccessPolicy, Role, is_loopback_host
from ragctl.retriever.testing import KeywordEncoder

READ, WRITE, ADMIN = "read-key-0123456789abc", "write-key-0123456789abc", "admin-key-0123456789ab"
SECOND_WRITE = "another-write-key-987654"
DOC = {"documents": [{"id": "grinder.md", "text": "The grinder burrs are replaced yearly."}]}


def _bearer(key):
    return {"Authorization": f"Bearer {key}"}


def _app(tmp_path, **retriever):
    settings = load_settings(data_dir=tmp_path / "data", retriever=retriever)
    return create_app(settings, encoder=KeywordEncoder())


def _code(response):
    return response.status_code, response.json()["error"]["code"] if response.is_error else None


def _writes(client, headers):
    """Status and code of each state-changing route with `headers`."""
    search = client.post("/v1/search", json={"query": "grinder"}, headers=_bearer(ADMIN))
    chunk = search.json()["results"][0]["chunk_id"] if search.status_code == 200 else "x"
    feedback = {"search_id": search.json().get("search_id", "x"), "chunk_id": chunk,
                "label": "relevant"}  # fmt: skip
    return [
        _code(client.post("/v1/documents", json=DOC, headers=headers)),
        _code(client.post("/v1/feedback", json=feedback, headers=headers)),
        _code(client.delete("/v1/documents/nope.md", headers=headers)),
    ]


@pytest.fixture
def keyed(tmp_path):
    app = _app(
        tmp_path,
        read_api_key=READ,
        write_api_key=[WRITE, SECOND_WRITE],
        admin_api_key=ADMIN,
    )
    with TestClient(app) as client:
        assert client.post("/v1/documents", json=DOC, headers=_bearer(ADMIN)).status_code == 200
        yield client


def test_auth_writes_need_a_write_or_admin_key(keyed, caplog):
    with caplog.at_level(logging.WARNING, logger="ragctl.retriever"):
        assert _writes(keyed, {}) == [(401, "unauthorized")] * 3
        assert _writes(keyed, _bearer("guessed-key")) == [(401, "unauthorized")] * 3
        assert _writes(keyed, _bearer(READ)) == [(403, "forbidden")] * 3
    for key in (WRITE, SECOND_WRITE, ADMIN):  # several keys per role; admin implies write
        assert _writes(keyed, _bearer(key)) == [
            (200, None), (201, None), (404, "document_not_found")
        ]  # fmt: skip
    assert all(key not in caplog.text for key in (READ, WRITE, ADMIN, "guessed-key"))
    assert "request refused (missing API key): POST /v1/documents" in caplog.text
    assert "request refused (read key on a route that needs a write or admin key)" in caplog.text
    denied = keyed.post("/v1/documents", json=DOC)
    assert denied.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer <key> with a write or admin key" in denied.text


def test_auth_every_read_route_needs_a_read_key_once_there_are_read_keys(keyed):
    reads = [
        ("POST", "/v1/search/batch", {"queries": ["grinder"]}),
        ("POST", "/v1/embeddings", {"input": "grinder"}),
        ("GET", "/v1/collections", None),
        ("GET", "/v1/documents", None),
        ("GET", "/v1/documents/grinder.md", None),
    ]
    for method, path, body in reads:
        anonymous = keyed.request(method, path, json=body)
        assert _code(anonymous) == (401, "unauthorized"), path
        for key in (READ, WRITE, ADMIN):  # a higher role reads too
            answered = keyed.request(method, path, json=body, headers=_bearer(key))
            assert answered.status_code == 200, (path, answered.text)
    create = {"name": "other"}
    assert _code(keyed.post("/v1/admin/collections", json=create, headers=_bearer(WRITE))) == (
        403,
        "forbidden",
    )
    assert keyed.post("/v1/admin/collections", json=create, headers=_bearer(ADMIN)).is_success


def test_auth_read_keys_make_searches_need_a_key(keyed):
    search = {"query": "grinder burrs"}
    assert _code(keyed.post("/v1/search", json=search)) == (401, "unauthorized")
    assert _code(keyed.post("/v1/search", json=search, headers=_bearer("x"))) == (
        401,
        "unauthorized",
    )
    for key in (READ, WRITE, ADMIN):
        assert keyed.post("/v1/search", json=search, headers=_bearer(key)).status_code == 200
    assert _code(keyed.get("/v1/admin/collections", headers=_bearer(WRITE))) == (403, "forbidden")
    assert keyed.get("/v1/admin/collections", headers=_bearer(ADMIN)).status_code == 200
    for path in ("/v1/health", "/v1/ready", "/metrics", "/openapi.json"):
        assert keyed.get(path).status_code == 200, path  # operations stay open


def test_auth_searches_are_open_without_read_keys(tmp_path):
    with TestClient(_app(tmp_path, write_api_key=WRITE)) as client:
        assert client.post("/v1/documents", json=DOC, headers=_bearer(WRITE)).status_code == 200
        assert client.post("/v1/search", json={"query": "grinder"}).status_code == 200
        assert _code(client.post("/v1/documents", json=DOC)) == (401, "unauthorized")
        assert _code(client.post("/v1/admin/reload", headers=_bearer(WRITE))) == (
            403,
            "admin_disabled",
        )


def test_auth_without_keys_writes_only_on_a_loopback_bind(tmp_path):
    with TestClient(_app(tmp_path / "local", host="127.0.0.1")) as local:
        assert local.post("/v1/documents", json=DOC).status_code == 200
        assert _code(local.post("/v1/admin/rollback")) == (403, "admin_disabled")
    with TestClient(_app(tmp_path / "public", host="0.0.0.0")) as public:
        refused = public.post("/v1/documents", json=DOC)
        assert _code(refused) == (403, "writes_disabled")
        assert "not only this machine; set retriever.write_api_key" in refused.text
        assert _code(public.delete("/v1/documents/x")) == (403, "writes_disabled")
        assert public.post("/v1/search", json={"query": "grinder"}).status_code == 200
    with TestClient(_app(tmp_path / "insecure", host="0.0.0.0", insecure=True)) as insecure:
        assert insecure.post("/v1/documents", json=DOC).status_code == 200


def test_auth_only_read_keys_turn_writes_off(tmp_path):
    with TestClient(_app(tmp_path, read_api_key=READ)) as client:
        assert _code(client.post("/v1/documents", json=DOC, headers=_bearer(READ))) == (
            403,
            "writes_disabled",
        )


def test_auth_compares_every_key_in_constant_time(monkeypatch):
    retriever = load_settings(
        retriever={"read_api_key": READ, "write_api_key": [WRITE, SECOND_WRITE],
                   "admin_api_key": ADMIN}
    ).retriever  # fmt: skip
    policy = AccessPolicy.from_settings(retriever)
    calls = []
    real = hmac.compare_digest

    def counting(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    assert policy.role_of(READ) is Role.READ
    assert policy.role_of(SECOND_WRITE) is Role.WRITE
    assert policy.role_of(ADMIN) is Role.ADMIN
    assert policy.role_of("x") is None and policy.role_of(READ + "x") is None
    assert policy.role_of("") is None and policy.role_of(None) is None
    # Every key is compared on every try (no early exit), always as 32-byte digests.
    assert calls == [(32, 32)] * 4 * 5


def test_auth_start_line_says_who_may_do_what(tmp_path):
    def line(**retriever):
        return AccessPolicy.from_settings(load_settings(retriever=retriever).retriever).describe()

    assert "only this machine can reach it" in line(host="127.0.0.1")
    assert "INSECURE" in line(host="0.0.0.0", insecure=True)
    both = line(write_api_key=[WRITE, SECOND_WRITE], admin_api_key=ADMIN, host="0.0.0.0")
    assert both == (
        "access: searches are open (no read key configured); writes need a write or admin key "
        "(2 write, 1 admin); admin routes need an admin key."
    )
    assert WRITE not in both
    assert "writes are off" in line(read_api_key=READ)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.4", False),
     ("retriever.internal", False), ("", False)],
)  # fmt: skip
def test_auth_loopback_hosts(host, loopback):
    assert is_loopback_host(host) is loopback


def test_auth_keys_from_toml_and_environment(tmp_path, monkeypatch):
    (tmp_path / "ragctl.toml").write_text(
        f'[retriever]\nwrite_api_key = ["{WRITE}", " ", "{SECOND_WRITE}"]\n'
        f'admin_api_key = "{ADMIN}"\n'
    )
    retriever = load_settings().retriever
    assert [k.get_secret_value() for k in retriever.write_api_key] == [WRITE, SECOND_WRITE]
    assert [k.get_secret_value() for k in retriever.admin_api_key] == [ADMIN]
    assert WRITE not in repr(retriever) and ADMIN not in str(retriever.model_dump())
    monkeypatch.setenv("RAGCTL_RETRIEVER__READ_API_KEY", f'["{READ}"]')
    monkeypatch.setenv("RAGCTL_RETRIEVER__ADMIN_API_KEY", "")
    retriever = load_settings().retriever
    assert [k.get_secret_value() for k in retriever.read_api_key] == [READ]
    assert retriever.admin_api_key == ()


def test_auth_openapi_says_where_a_key_is_optional(tmp_path):
    def security(app):
        paths = app.openapi()["paths"]
        return {
            name: paths[path][method].get("security")
            for name, path, method in (
                ("search", "/v1/search", "post"),
                ("documents", "/v1/documents", "post"),
                ("feedback", "/v1/feedback", "post"),
                ("admin", "/v1/admin/rollback", "post"),
            )
        }

    bearer = [{"HTTPBearer": []}]
    assert security(_app(tmp_path / "a", read_api_key=READ, write_api_key=WRITE)) == {
        "search": bearer, "documents": bearer, "feedback": bearer, "admin": bearer,
    }  # fmt: skip
    assert security(_app(tmp_path / "b", write_api_key=WRITE)) == {
        "search": [{}, *bearer], "documents": bearer, "feedback": bearer, "admin": bearer,
    }  # fmt: skip
    assert security(_app(tmp_path / "c")) == {  # no keys, loopback
        "search": [{}, *bearer], "documents": [{}, *bearer], "feedback": [{}, *bearer],
        "admin": bearer,
    }  # fmt: skip
