"""Promotion and rollback through the running API while searches keep coming."""

import threading
import time

import pytest
import torch
from fastapi.testclient import TestClient

from ragctl.core.registry import ModelRecord, ModelRegistry
from ragctl.core.settings import load_settings
from ragctl.retriever.app import create_app

KEY = "test-admin-key"
QUERY = "how often are the grinder burrs replaced?"
DOCS = [
    {"id": f"doc-{i}", "text": text}
    for i, text in enumerate(
        [
            "The grinder burrs are replaced every 800 kg of coffee.",
            "Milk is steamed to 60 degrees Celsius for lattes.",
            "Refunds over 40 dollars need a shift lead's PIN.",
            "The roaster is preheated for thirty minutes before the first batch.",
            "Cold brew steeps for eighteen hours at fridge temperature.",
            "Staff schedules are published two weeks in advance.",
            "Water filters are changed every six months or 5,000 litres.",
            "Green coffee is stored below 20 degrees and 60 percent humidity.",
        ]
        * 4
    )
]


@pytest.fixture
def app_with_two_versions(tmp_path, real_encoder):
    settings = load_settings(data_dir=tmp_path / "data", retriever={"admin_api_key": KEY})
    registry = ModelRegistry(settings.data_dir)
    app = create_app(settings, encoder=real_encoder)
    with TestClient(app) as client:
        docs = [{"id": f"{d['id']}-{n}", "text": d["text"]} for n, d in enumerate(DOCS)]
        admin = {"Authorization": f"Bearer {KEY}"}  # admin implies write
        posted = client.post("/v1/documents", json={"documents": docs}, headers=admin)
        assert posted.status_code == 200
        # v2: the base model with perturbed token embeddings: it scores differently.
        model = real_encoder.model
        embeddings = model[0].auto_model.embeddings.word_embeddings.weight
        original = embeddings.detach().clone()
        with torch.no_grad():
            noise = torch.randn(embeddings.shape, generator=torch.Generator().manual_seed(0))
            embeddings.add_(noise * original.std() * 0.3)
            model.save_pretrained(str(registry.model_dir(2)))
            embeddings.copy_(original)
        registry.add(ModelRecord(version=2, ref="models/v2", parent=1, base_model="default"))
        yield client, registry


def test_promotion_and_rollback_under_search_load_fail_no_request(app_with_two_versions):
    client, registry = app_with_two_versions
    admin = {"Authorization": f"Bearer {KEY}"}
    seen: list[tuple[int, int, str, str, float]] = []
    stop = threading.Event()

    def search_forever():
        while not stop.is_set():
            # Dense: its score is the model's own cosine, which shows a mixed pair. (The corpus
            # repeats texts: fused ranks of tied duplicates would vary from call to call.)
            response = client.post("/v1/search", json={"query": QUERY, "k": 3, "mode": "dense"})
            body = response.json()
            top = body["results"][0] if response.status_code == 200 else {}
            seen.append(
                (
                    response.status_code,
                    body.get("model_version", -1),
                    body.get("collection", ""),
                    top.get("chunk_id", ""),
                    top.get("score", 0.0),
                )
            )

    def wait_for(version: int, count: int) -> None:
        deadline = time.monotonic() + 60
        while sum(1 for s in seen if s[1] == version) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    searcher = threading.Thread(target=search_forever)
    searcher.start()
    try:
        wait_for(1, 3)
        activated = client.post("/v1/admin/models/2/activate", headers=admin)
        assert activated.status_code == 200, activated.text
        assert activated.json() == {
            "changed": True,
            "previous": "docs__v1",
            "current": "docs__v2",
            "model_version": 2,
        }
        wait_for(2, 3)
        rolled = client.post("/v1/admin/rollback", headers=admin)
        assert rolled.status_code == 200, rolled.text
        assert rolled.json()["current"] == "docs__v1"
        before = len(seen)
        wait_for(1, sum(1 for s in seen if s[1] == 1) + 3)
    finally:
        stop.set()
        searcher.join(timeout=60)

    assert len(seen) > before and all(status == 200 for status, *_ in seen)
    versions = [version for _, version, *_ in seen]
    assert versions[0] == 1 and versions[-1] == 1 and 2 in versions
    for _, version, collection, _, _ in seen:
        assert collection == f"docs__v{version}"
    # Each version answers the same query with one score: a query embedded by one model and
    # searched in the other model's vectors would show up as a third value.
    for version in (1, 2):
        scores = {round(score, 4) for _, v, _, _, score in seen if v == version}
        assert len(scores) == 1, (version, scores)
    assert {round(s[4], 4) for s in seen if s[1] == 1} != {
        round(s[4], 4) for s in seen if s[1] == 2
    }
    assert (registry.serving("docs"), registry.get(2).status) == (1, "retired")


def test_admin_activate_refuses_rejected_and_unknown_versions(app_with_two_versions):
    client, registry = app_with_two_versions
    admin = {"Authorization": f"Bearer {KEY}"}
    registry.update(2, gate={"promote": False, "reason": "no gain"})
    refused = client.post("/v1/admin/models/2/activate", headers=admin)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "gate_rejected"
    unknown = client.post("/v1/admin/models/9/activate", headers=admin)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert client.post("/v1/admin/models/2/activate").status_code == 401
    forced = client.post("/v1/admin/models/2/activate?force=true", headers=admin)
    assert forced.status_code == 200 and forced.json()["model_version"] == 2
    back = client.post("/v1/admin/rollback", headers=admin)
    assert back.status_code == 200 and back.json()["current"] == "docs__v1"
    # Rollback only goes back: nothing served before v1, so the second one is refused.
    again = client.post("/v1/admin/rollback", headers=admin)
    assert again.status_code == 409 and again.json()["error"]["code"] == "nothing_to_roll_back"
    assert registry.serving("docs") == 1 and registry.history("docs") == [1]


def test_admin_rollback_onto_a_rejected_version_needs_force(app_with_two_versions):
    client, registry = app_with_two_versions
    admin = {"Authorization": f"Bearer {KEY}"}
    registry.update(2, gate={"promote": False, "reason": "no gain"})
    assert client.post("/v1/admin/models/2/activate?force=true", headers=admin).status_code == 200
    assert client.post("/v1/admin/models/1/activate", headers=admin).status_code == 200
    assert registry.history("docs") == [1, 2, 1]
    refused = client.post("/v1/admin/rollback", headers=admin)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "gate_rejected"
    assert registry.serving("docs") == 1
    forced = client.post("/v1/admin/rollback?force=true", headers=admin)
    assert forced.status_code == 200 and forced.json()["current"] == "docs__v2"
    assert (registry.get(2).status, registry.history("docs")) == ("serving", [1, 2])


def test_activation_and_rollback_are_per_collection_under_search_load(app_with_two_versions):
    client, registry = app_with_two_versions
    admin = {"Authorization": f"Bearer {KEY}"}
    created = client.post("/v1/admin/collections", json={"name": "other"}, headers=admin)
    assert created.status_code == 201, created.text
    docs = [{"id": f"{d['id']}-{n}", "text": d["text"]} for n, d in enumerate(DOCS)]
    posted = client.post(
        "/v1/documents", json={"documents": docs, "collection": "other"}, headers=admin
    )
    assert posted.status_code == 200 and posted.json()["collection"] == "other__v1"
    seen: dict[str, list[tuple[int, int, str, float]]] = {"docs": [], "other": []}
    stop = threading.Event()

    def search_forever(name):
        while not stop.is_set():
            body = {"query": QUERY, "k": 3, "mode": "dense", "collection": name}
            response = client.post("/v1/search", json=body)
            answer = response.json()
            top = answer["results"][0] if response.status_code == 200 else {}
            seen[name].append(
                (
                    response.status_code,
                    answer.get("model_version", -1),
                    answer.get("collection", ""),
                    top.get("score", 0.0),
                )
            )

    def wait_for(name, version, count):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sum(1 for s in seen[name] if s[1] == version) >= count:
                return
            time.sleep(0.05)

    def switched(response, current):
        assert response.status_code == 200, response.text
        assert response.json()["current"] == current

    searchers = [threading.Thread(target=search_forever, args=(n,)) for n in seen]
    for thread in searchers:
        thread.start()
    try:
        wait_for("other", 1, 3)
        switched(
            client.post("/v1/admin/models/2/activate?collection=other", headers=admin),
            "other__v2",
        )
        wait_for("other", 2, 3)
        docs_before = len(seen["docs"])
        switched(client.post("/v1/admin/models/2/activate", headers=admin), "docs__v2")
        # Both collections serve v2 now: with one encoder of it.
        served = {s.name: s.current() for s in client.app.state.service.collections.loaded()}
        assert served["docs"].encoder is served["other"].encoder
        wait_for("docs", 2, 3)
        switched(client.post("/v1/admin/rollback?collection=other", headers=admin), "other__v1")
        wait_for("other", 1, sum(1 for s in seen["other"] if s[1] == 1) + 3)
    finally:
        stop.set()
        for thread in searchers:
            thread.join(timeout=60)

    for name, answers in seen.items():
        assert answers and all(status == 200 for status, *_ in answers), name
        for _, version, collection, _ in answers:
            assert collection == f"{name}__v{version}"
        for version in (1, 2):  # one score per (collection, version): no mixed pair
            scores = {round(score, 4) for _, v, _, score in answers if v == version}
            assert len(scores) <= 1, (name, version, scores)
    # `docs` kept serving v1 while `other` switched, and the reverse.
    assert all(version == 1 for _, version, *_ in seen["docs"][:docs_before])
    assert (seen["other"][-1][1], seen["docs"][-1][1]) == (1, 2)
    assert (registry.serving("other"), registry.serving("docs")) == (1, 2)
