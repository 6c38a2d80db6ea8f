"""Feedback an app can retry safely, and free-text feedback kept out of training by default."""

import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from ragctl.cli.main import main
from ragctl.core.errors import RagctlError
from ragctl.core.settings import load_settings
from ragctl.retriever.app import create_app
from ragctl.retriever.feedback_log import open_feedback_log
from ragctl.retriever.testing import KeywordEncoder
from ragctl.tuner.pairs import is_free_text

KEY = "feedback-write-key-0123456789"


@pytest.fixture
def client(tmp_path):
    settings = load_settings(data_dir=tmp_path / "data", retriever={"write_api_key": KEY})
    app = create_app(settings, encoder=KeywordEncoder())
    with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as client:
        docs = [{"id": "grinder.md", "text": "Grinder burrs are replaced every 800 kg."},
                {"id": "milk.md", "text": "Steam the milk to 60 degrees."}]  # fmt: skip
        assert client.post("/v1/documents", json={"documents": docs}).status_code == 200
        yield client


def _judgement(client):
    found = client.post("/v1/search", json={"query": "grinder burrs"}).json()
    return {"search_id": found["search_id"], "chunk_id": found["results"][0]["chunk_id"],
            "label": "relevant"}  # fmt: skip


def _stored(client):
    return list(client.app.state.service.feedback_log.iter_feedback())


def test_feedback_retry_with_the_same_idempotency_key_is_stored_once(client):
    body = _judgement(client)
    first = client.post("/v1/feedback", json=body, headers={"Idempotency-Key": "app-42"})
    retry = client.post("/v1/feedback", json=body, headers={"Idempotency-Key": "app-42"})
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json() and retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    in_field = client.post("/v1/feedback", json={**body, "idempotency_key": "app-43"})
    again = client.post("/v1/feedback", json={**body, "idempotency_key": "app-43"})
    assert again.json()["feedback_id"] == in_field.json()["feedback_id"]
    assert len(_stored(client)) == 2
    metrics = client.get("/metrics").text
    assert (
        'ragctl_feedback_total{collection="docs",label="relevant"} 2.0' in metrics
    )  # replays are not counted


def test_feedback_idempotency_key_reused_for_another_judgement_is_409(client):
    body = _judgement(client)
    assert client.post("/v1/feedback", json={**body, "idempotency_key": "k1"}).status_code == 201
    other = client.post("/v1/feedback", json={**body, "label": "not_relevant",
                                             "idempotency_key": "k1"})  # fmt: skip
    assert other.status_code == 409, other.text
    error = other.json()["error"]
    assert (error["code"], error["field"]) == ("idempotency_key_reused", "idempotency_key")
    both = client.post("/v1/feedback", json={**body, "idempotency_key": "k2"},
                       headers={"Idempotency-Key": "k3"})  # fmt: skip
    assert both.status_code == 422 and "differ" in both.json()["error"]["message"]
    bad = client.post("/v1/feedback", json=body, headers={"Idempotency-Key": "has space"})
    assert bad.status_code == 422
    assert len(_stored(client)) == 1


def test_feedback_without_a_search_id_is_marked_free_text(client):
    chunk = _judgement(client)["chunk_id"]
    typed = client.post("/v1/feedback", json={"query": "anything at all", "chunk_id": chunk,
                                             "label": "relevant"})  # fmt: skip
    tied = client.post("/v1/feedback", json=_judgement(client))
    assert typed.json()["free_text"] is True and tied.json()["free_text"] is False
    assert [r["free_text"] for r in _stored(client)] == [True, False]


def test_feedback_is_free_text_reads_the_mark_or_a_missing_search_id():
    assert is_free_text({"free_text": True, "search_id": None})
    assert not is_free_text({"free_text": False, "search_id": "s1"})
    assert is_free_text({"query": "q", "label": "relevant"})  # an older export
    assert not is_free_text({"search_id": "s1"})


class _Stop(RagctlError):
    pass


def test_feedback_retune_from_log_leaves_free_text_out_unless_asked(client, monkeypatch):
    from ragctl.tuner import loop

    chunk = _judgement(client)["chunk_id"]
    client.post("/v1/feedback", json={"query": "typed by someone", "chunk_id": chunk,
                                     "label": "relevant"})  # fmt: skip
    client.post("/v1/feedback", json=_judgement(client))
    settings = client.app.state.settings
    client.__exit__(None, None, None)  # the CLI opens the store the app held

    def stop(settings, store, options, on_step=None, serving_encoder=None):
        raise _Stop(json.dumps([r["query"] for r in options.feedback]))

    monkeypatch.setattr(loop, "retune", stop)
    runner = CliRunner()
    base = ["--data-dir", str(settings.data_dir), "retune", "--from-log"]
    default = runner.invoke(main, base)
    assert "left out 1 free-text feedback record(s)" in default.output
    assert 'Error: ["grinder burrs"]' in default.output
    included = runner.invoke(main, [*base, "--include-free-text"])
    assert 'Error: ["typed by someone", "grinder burrs"]' in included.output
    with open_feedback_log(settings) as log:
        assert len(list(log.iter_feedback())) == 2
