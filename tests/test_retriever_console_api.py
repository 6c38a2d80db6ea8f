"""The routes the console reads (models, feedback stats and export, retune status, eval reports,
documents, access) and the console page itself, through TestClient with a keyword encoder."""

import json
import os
import re
import socket

import pytest
from fastapi.testclient import TestClient

from ragctl.core.registry import ModelRecord, ModelRegistry
from ragctl.core.settings import load_settings
from ragctl.evalkit.results import EvalReport, RunRow, save_report
from ragctl.retriever.app import create_app
from ragctl.retriever.console import CONSOLE_DIR
from ragctl.retriever.testing import KeywordEncoder
from ragctl.tuner.status import RetuneStatus, status_path

READ, WRITE, ADMIN = "read-key-0123456789", "write-key-0123456789", "admin-key-0123456789"
DOCS = [
    {"id": "bar/grinder.md", "text": "The grinder burrs are replaced every 800 kg of coffee.",
     "metadata": {"team": "bar"}},
    {"id": "bar/milk.md", "text": "Steam whole milk to 60 degrees; oat milk at 55 degrees.",
     "metadata": {"team": "bar"}},
    {"id": "front/refunds.md", "text": "Refunds over 40 dollars need a shift lead's PIN.",
     "metadata": {"team": "front"}},
]  # fmt: skip


def _client(tmp_path, **retriever):
    settings = load_settings(data_dir=tmp_path / "data", retriever=retriever or None)
    return TestClient(create_app(settings, encoder=KeywordEncoder()))


def _bearer(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def client(tmp_path):
    with _client(tmp_path) as client:
        assert client.post("/v1/documents", json={"documents": DOCS}).status_code == 200
        yield client


def _report(model, ndcg, *, per_query=None):
    rows = [
        RunRow("64", "exact", 64, {"ndcg@10": ndcg - 0.1}),
        RunRow("64-full", "exact", 128, {"ndcg@10": ndcg}),
        RunRow("two-stage", "two-stage", 128, {"ndcg@10": ndcg}),
        RunRow("bm25", "bm25", None, {"ndcg@10": 0.3}),
    ]
    data = EvalReport(model, "docs-heldout", "heldout", 128, {"queries": 3, "corpus": 3}, rows)
    out = data.to_dict()
    if per_query is not None:
        for row in out["rows"]:
            if row["name"] == "two-stage":
                row["per_query"] = {q: {"ndcg@10": v} for q, v in per_query.items()}
    return out


def _register_candidate(data_dir, *, per_query=True):
    registry = ModelRegistry(data_dir)
    serving = _report("keyword-fake", 0.5, per_query={"q0": 0.5, "q1": 0.25, "q2": 0.75})
    candidate = _report("models/v2", 0.6, per_query={"q0": 0.75, "q1": 0.25, "q2": 0.8})
    if not per_query:
        for report in (serving, candidate):
            for row in report["rows"]:
                row.pop("per_query", None)
    registry.add(
        ModelRecord(
            version=2,
            ref="models/v2",
            parent=1,
            base_model="keyword-fake",
            gate={"promote": False, "reason": "reject: ndcg@10 gain at 128 is +0.0040 < "
                  "+0.0050; ndcg@10 at 64 regressed by 0.0200 > 0.0100"},
            evaluation={"serving": serving, "candidate": candidate},
            search={"mode": "hybrid", "ndcg@10": {"dense": 0.6, "hybrid": 0.62}},
        )
    )  # fmt: skip


def test_console_root_redirects_and_page_loads_only_local_assets(client):
    root = client.get("/", follow_redirects=False)
    assert root.status_code == 307 and root.headers["location"] == "/console/"
    page = client.get("/console/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "http" not in csp
    assets = re.findall(r'(?:src|href)="([^"#]+)"', page.text)
    assert assets and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    # every module the page imports, and every module those import, is served here
    seen, queue = set(), [a for a in assets if a.endswith(".js")]
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        response = client.get(path)
        assert response.status_code == 200, path
        assert "javascript" in response.headers["content-type"], path
        for spec in re.findall(r'from "(\.[^"]+)"', response.text):
            base = path.rsplit("/", 1)[0]
            queue.append(os.path.normpath(f"{base}/{spec}"))
        code = response.text.replace('"http://www.w3.org/2000/svg"', "")  # a namespace name
        assert not re.search(r"https?://", code), f"{path} names an outside URL"
    assert len(seen) == len(list(CONSOLE_DIR.rglob("*.js")))
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_models_list_and_detail_with_gate_numbers(client, tmp_path):
    listing = client.get("/v1/models").json()
    assert listing["collection"] == "docs" and listing["serving"] == 1
    assert listing["history"] == [1] and [m["version"] for m in listing["models"]] == [1]
    assert listing["profile"]["mode"] == "hybrid" and listing["profile"]["physical"] == "docs__v1"

    _register_candidate(tmp_path / "data")
    listing = client.get("/v1/models").json()
    v2 = listing["models"][1]
    assert v2["status"] == "rejected" and v2["parent"] == 1 and "evaluation" not in v2
    detail = client.get("/v1/models/2").json()
    assert detail["evaluation"]["candidate"]["model"] == "models/v2"
    assert detail["gate_reason_lines"] == [
        "reject:",
        "ndcg@10 gain at 128 is +0.0040 < +0.0050",
        "ndcg@10 at 64 regressed by 0.0200 > 0.0100",
    ]
    by_column = {c["column"]: c for c in detail["comparisons"]}
    assert set(by_column) == {"64", "64-full", "two-stage"}  # bm25 is not the model's
    two_stage = by_column["two-stage"]
    assert two_stage["serving"] == 0.5 and two_stage["candidate"] == 0.6
    assert two_stage["delta"] == pytest.approx(0.1)
    test = two_stage["test"]  # per-query values: gain 0.25, 0, 0.05 on three queries
    assert (test["wins"], test["losses"], test["ties"], test["n"]) == (2, 0, 1, 3)
    assert test["gain"] == pytest.approx(0.1) and test["ci_low"] <= 0.1 <= test["ci_high"]
    assert by_column["64"]["test"] is None  # no per-query values on that row

    missing = client.get("/v1/models/9")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
    other = client.get("/v1/models", params={"collection": "other"})
    assert other.status_code == 404 and other.json()["error"]["code"] == "collection_not_found"


def test_models_detail_uses_the_gates_own_comparisons_when_recorded(client, tmp_path):
    _register_candidate(tmp_path / "data")
    recorded = [
        {"check": "gain", "column": "two-stage", "metric": "ndcg@10", "candidate": 0.6,
         "serving": 0.5, "threshold": 0.005, "passed": True,
         "test": {"gain": 0.1, "ci_low": 0.02, "ci_high": 0.2, "p_better": 0.01, "wins": 2,
                  "losses": 0, "ties": 1}},
    ]  # fmt: skip
    ModelRegistry(tmp_path / "data").update(
        2, gate={"promote": True, "reason": "promote: fine", "comparisons": recorded}
    )
    detail = client.get("/v1/models/2").json()
    assert detail["status"] == "candidate"
    [line] = detail["comparisons"]
    assert line["check"] == "gain" and line["passed"] is True and line["test"]["ci_low"] == 0.02
    assert line["delta"] == pytest.approx(0.1)


def test_feedback_stats_count_by_label_and_day_and_list_recent(client):
    hits = client.post("/v1/search", json={"query": "grinder burrs"}).json()
    for result, label in zip(hits["results"][:2], ["relevant", "not_relevant"], strict=True):
        response = client.post(
            "/v1/feedback",
            json={"search_id": hits["search_id"], "chunk_id": result["chunk_id"], "label": label},
        )
        assert response.status_code == 201
    stats = client.get("/v1/feedback/stats", params={"days": 7}).json()
    assert stats["total"] == 2 and stats["by_label"] == {"relevant": 1, "not_relevant": 1}
    assert stats["days"] == 7 and len(stats["by_day"]) == 7 and stats["searches"] == 1
    today = stats["by_day"][-1]
    assert (today["relevant"], today["not_relevant"]) == (1, 1)
    assert all(d["relevant"] == d["not_relevant"] == 0 for d in stats["by_day"][:-1])
    assert [r["label"] for r in stats["recent"]] == ["not_relevant", "relevant"]  # newest first
    assert stats["recent"][1]["search_id"] == hits["search_id"]
    assert client.get("/v1/feedback/stats", params={"days": 0}).status_code == 422
    other = client.get("/v1/feedback/stats", params={"collection": "nope"})
    assert other.json()["error"]["code"] == "collection_not_found"


def test_feedback_export_needs_write_and_streams_the_log_rows(tmp_path):
    with _client(tmp_path, write_api_key=WRITE, read_api_key=READ) as client:
        client.post("/v1/documents", json={"documents": DOCS}, headers=_bearer(WRITE))
        hits = client.post("/v1/search", json={"query": "milk"}, headers=_bearer(READ)).json()
        chunk = hits["results"][0]["chunk_id"]
        body = {"search_id": hits["search_id"], "chunk_id": chunk, "label": "relevant"}
        assert client.post("/v1/feedback", json=body, headers=_bearer(WRITE)).status_code == 201
        assert client.get("/v1/feedback/export").status_code == 401
        refused = client.get("/v1/feedback/export", headers=_bearer(READ))
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        answer = client.get("/v1/feedback/export", headers=_bearer(WRITE))
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("application/x-ndjson")
        rows = [json.loads(line) for line in answer.text.splitlines()]
        log = client.app.state.service.feedback_log
        assert rows == list(log.iter_feedback())
        assert rows[0]["chunk_id"] == chunk and rows[0]["label"] == "relevant"
        later = client.get(
            "/v1/feedback/export", params={"since": "2999-01-01"}, headers=_bearer(WRITE)
        )
        assert later.status_code == 200 and later.text == ""
        bad = client.get("/v1/feedback/export", params={"since": "soon"}, headers=_bearer(WRITE))
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "since"
        # reads need the read key when read keys are configured
        assert client.get("/v1/feedback/stats").status_code == 401
        assert client.get("/v1/models").status_code == 401
        assert client.get("/v1/reports").status_code == 401
        assert client.get("/v1/retune/status").status_code == 401
        assert client.get("/v1/documents").status_code == 401
        assert client.get("/v1/feedback/stats", headers=_bearer(READ)).json()["total"] == 1
        assert client.get("/v1/models", headers=_bearer(WRITE)).status_code == 200


def test_access_says_what_each_key_may_do(tmp_path):
    with _client(tmp_path, write_api_key=WRITE, admin_api_key=ADMIN) as client:
        assert client.get("/v1/access").json() == {
            "role": None, "read": True, "write": False, "admin": False
        }  # fmt: skip
        assert client.get("/v1/access", headers=_bearer("wrong")).json()["write"] is False
        assert client.get("/v1/access", headers=_bearer(WRITE)).json() == {
            "role": "write", "read": True, "write": True, "admin": False
        }  # fmt: skip
        assert client.get("/v1/access", headers=_bearer(ADMIN)).json() == {
            "role": "admin", "read": True, "write": True, "admin": True
        }  # fmt: skip
    with _client(tmp_path / "open") as client:  # no keys, loopback: writes open, admin off
        assert client.get("/v1/access").json() == {
            "role": None, "read": True, "write": True, "admin": False
        }  # fmt: skip


def test_retune_status_running_finished_and_interrupted(client, tmp_path):
    assert client.get("/v1/retune/status").json() == {"collection": "docs", "status": None}
    data_dir = tmp_path / "data"
    status = RetuneStatus(data_dir, "docs")
    status.start({"feedback": 3})
    status.step("training v2 from v1 on 40 pairs")
    running = client.get("/v1/retune/status").json()["status"]
    assert running["state"] == "running" and running["step"] == "training v2 from v1 on 40 pairs"
    assert running["pid"] == os.getpid() and running["options"] == {"feedback": 3}
    status.finish({"candidate_version": 2, "promote": False, "reason": "reject: x"})
    done = client.get("/v1/retune/status").json()["status"]
    assert done["state"] == "finished" and done["result"]["candidate_version"] == 2
    assert [s["message"] for s in done["steps"]] == ["training v2 from v1 on 40 pairs"]
    # a run whose process died without saying so
    path = status_path(data_dir, "docs")
    dead = {**json.loads(path.read_text()), "state": "running", "pid": 2**22 + 12345,
            "host": socket.gethostname()}  # fmt: skip
    path.write_text(json.dumps(dead))
    assert client.get("/v1/retune/status").json()["status"]["state"] == "interrupted"


def test_reports_from_the_registry_and_the_reports_folder(client, tmp_path):
    assert client.get("/v1/reports").json()["reports"] == []
    _register_candidate(tmp_path / "data")
    folder = tmp_path / "data" / "reports" / "scifact" / "base"
    save_report(EvalReport.from_dict(_report("default", 0.64)), folder / "report.json")
    (tmp_path / "data" / "reports" / "junk").mkdir()
    (tmp_path / "data" / "reports" / "junk" / "report.json").write_text("{not json")
    listing = client.get("/v1/reports").json()
    ids = [r["id"] for r in listing["reports"]]
    assert ids == ["registry/v2/candidate", "registry/v2/serving", "files/scifact/base"]
    candidate = listing["reports"][0]
    assert candidate["baseline"] == "registry/v2/serving" and candidate["per_query"] is True
    assert candidate["queries"] == 3 and candidate["version"] == 2
    assert listing["reports"][2]["per_query"] is False
    one = client.get("/v1/reports/files/scifact/base").json()
    assert one["report"]["model"] == "default" and one["path"] == "scifact/base"
    reg = client.get("/v1/reports/registry/v2/candidate").json()
    assert reg["report"]["rows"][2]["per_query"]["q0"] == {"ndcg@10": 0.75}
    for bad in ("files/../../etc", "files/junk", "registry/v9/candidate", "registry/v2/x", "x"):
        answer = client.get(f"/v1/reports/{bad}")
        assert answer.status_code == 404, bad
        assert answer.json()["error"]["code"] in ("report_not_found", "not_found"), bad


def test_documents_list_filter_page_and_get(client):
    listing = client.get("/v1/documents").json()
    assert listing["collection"] == "docs__v1" and listing["total"] == 3
    assert [d["doc_id"] for d in listing["documents"]] == [
        "bar/grinder.md", "bar/milk.md", "front/refunds.md"
    ]  # fmt: skip
    assert listing["documents"][0]["chunks"] == 1 and listing["next_offset"] is None
    page = client.get("/v1/documents", params={"limit": 2}).json()
    assert [d["doc_id"] for d in page["documents"]] == ["bar/grinder.md", "bar/milk.md"]
    assert page["next_offset"] == 2
    rest = client.get("/v1/documents", params={"limit": 2, "offset": 2}).json()
    assert [d["doc_id"] for d in rest["documents"]] == ["front/refunds.md"]
    assert rest["next_offset"] is None
    prefixed = client.get("/v1/documents", params={"prefix": "bar/"}).json()
    assert prefixed["total"] == 2
    front = client.get("/v1/documents", params={"filter": '{"metadata.team": "front"}'}).json()
    assert [d["doc_id"] for d in front["documents"]] == ["front/refunds.md"]
    bad = client.get("/v1/documents", params={"filter": '{"text": "x"}'})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "filter"
    assert client.get("/v1/documents", params={"limit": 501}).status_code == 422
    doc = client.get("/v1/documents/bar/milk.md").json()
    assert doc["doc_id"] == "bar/milk.md" and doc["metadata"] == {"team": "bar"}
    [chunk] = doc["chunks"]
    assert chunk["index"] == 0 and chunk["text"].startswith("Steam whole milk")
    missing = client.get("/v1/documents/nope.md")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "document_not_found"


def test_console_reads_answer_for_the_collection_named(tmp_path):
    with _client(tmp_path, write_api_key=WRITE, admin_api_key=ADMIN) as client:
        created = client.post("/v1/admin/collections", json={"name": "notes"},
                              headers=_bearer(ADMIN))  # fmt: skip
        assert created.status_code == 201, created.text
        note = {"id": "n.md", "text": "The grinder burrs are replaced every 800 kg."}
        for body in ({"documents": DOCS}, {"documents": [note], "collection": "notes"}):
            assert client.post("/v1/documents", json=body, headers=_bearer(WRITE)).is_success
        found = client.post("/v1/search", json={"query": "grinder burrs", "collection": "notes"})
        hit = found.json()["results"][0]
        judged = {"search_id": found.json()["search_id"], "chunk_id": hit["chunk_id"],
                  "label": "relevant"}  # fmt: skip
        assert client.post("/v1/feedback", json=judged, headers=_bearer(WRITE)).status_code == 201

        notes = {"collection": "notes"}
        stats = client.get("/v1/feedback/stats", params=notes).json()
        assert stats["collection"] == "notes" and stats["total"] == 1 and stats["searches"] == 1
        assert client.get("/v1/feedback/stats").json()["total"] == 0  # the default: docs
        models = client.get("/v1/models", params=notes).json()
        assert models["collection"] == "notes" and models["profile"]["physical"] == "notes__v1"
        assert client.get("/v1/retune/status", params=notes).json()["collection"] == "notes"
        assert client.get("/v1/documents", params=notes).json()["total"] == 1
        export = client.get("/v1/feedback/export", params=notes, headers=_bearer(WRITE))
        assert [json.loads(line)["doc_id"] for line in export.text.splitlines()] == ["n.md"]
        unknown = client.get("/v1/retune/status", params={"collection": "nope"}).json()
        assert unknown["error"]["code"] == "collection_not_found"
        assert "docs, notes" in unknown["error"]["message"]  # names the known ones


def test_openapi_marks_reads_open_without_read_keys(client, tmp_path):
    paths = client.get("/openapi.json").json()["paths"]
    assert {} in paths["/v1/models"]["get"]["security"]
    assert {} in paths["/v1/feedback/stats"]["get"]["security"]
    assert {} in paths["/v1/feedback/export"]["get"]["security"]  # loopback, no keys: writes too
    assert {} not in paths["/v1/admin/rollback"]["post"]["security"]
    with _client(tmp_path / "keyed", write_api_key=WRITE) as keyed:
        paths = keyed.get("/openapi.json").json()["paths"]
        assert {} in paths["/v1/models"]["get"]["security"]
        assert {} not in paths["/v1/feedback/export"]["get"]["security"]
        assert {} not in paths["/v1/feedback"]["post"]["security"]
