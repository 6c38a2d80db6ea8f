"""`ragctl serve` and `ragctl feedback export|stats` through CliRunner."""

import json

import pytest
from click.testing import CliRunner

from ragctl.cli.main import main
from ragctl.core.settings import load_settings
from ragctl.retriever.feedback_log import FeedbackEvent, SearchEvent, open_feedback_log


def _run(*args, expect=0):
    result = CliRunner().invoke(main, list(args), prog_name="ragctl", catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


@pytest.fixture
def filled_log(_isolated_data_dir):
    settings = load_settings()
    with open_feedback_log(settings) as log:
        log.log_search(SearchEvent("s1", "espresso?", 10, 1, "docs__v1", ("a#0@1",)))
        log.log_search(SearchEvent("s2", "milk?", 10, 2, "docs__v2", ()))
        for i, (label, version, day) in enumerate(
            [("relevant", 1, "01"), ("not_relevant", 1, "02"), ("relevant", 2, "03")]
        ):
            log.log_feedback(
                FeedbackEvent(
                    query=f"q{i}",
                    chunk_id=f"a#{i}@1",
                    doc_id="a",
                    label=label,
                    chunk_text=f"chunk {i} ☕",
                    model_version=version,
                    collection=f"docs__v{version}",
                    search_id="s1" if i == 0 else None,
                    rank=1 if i == 0 else None,
                    created_at=f"2025-03-{day}T10:00:00.000000+00:00",
                )
            )
    return settings


@pytest.mark.parametrize(
    "command", [["serve"], ["feedback"], ["feedback", "export"], ["feedback", "stats"]]
)
def test_retriever_cli_help_explains_every_command(command):
    output = _run(*command, "--help").output
    assert "Usage: ragctl" in output and "Options:" in output and len(output) > 300


def test_retriever_cli_serve_refuses_workers_on_the_embedded_store():
    result = _run("serve", "--workers", "2", expect=1)
    assert result.output.count("\n") == 1
    assert "needs a Qdrant server (store.url" in result.output
    assert "single-process" in result.output


def test_retriever_cli_feedback_export_jsonl_to_stdout_and_file(filled_log, tmp_path):
    lines = _run("feedback", "export").output.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["label"] for r in rows] == ["relevant", "not_relevant", "relevant"]
    assert rows[0]["chunk_text"] == "chunk 0 ☕" and rows[0]["search_id"] == "s1"
    assert set(rows[0]) >= {
        "query", "chunk_id", "doc_id", "label", "chunk_text", "model_version", "collection",
        "search_id", "created_at",
    }  # fmt: skip

    out = tmp_path / "exports" / "feedback.jsonl"
    result = _run("feedback", "export", "--since", "2025-03-02", "--out", str(out))
    assert f"exported 2 feedback records to {out}" in result.output
    exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["query"] for r in exported] == ["q1", "q2"]


def test_retriever_cli_feedback_export_rows_load_in_evalkit(filled_log, tmp_path):
    from ragctl.evalkit.sources.feedback import read_feedback

    out = tmp_path / "feedback.jsonl"
    _run("feedback", "export", "--out", str(out))
    raw = read_feedback(out)
    assert len(raw.queries) == 3 and len(raw.corpus) == 3


def test_retriever_cli_feedback_export_bad_since():
    result = _run("feedback", "export", "--since", "yesterday", expect=2)
    assert "not an ISO 8601 date" in result.output


def test_retriever_cli_feedback_stats(filled_log):
    output = _run("feedback", "stats").output
    assert "searches logged: 2" in output
    assert "feedback: 3 (relevant 2, not_relevant 1)" in output
    assert "v1" in output and "v2" in output
    data = json.loads(_run("feedback", "stats", "--json").output)
    assert data["feedback_by_model_version"] == {
        "1": {"relevant": 1, "not_relevant": 1},
        "2": {"relevant": 1, "not_relevant": 0},
    }


def test_retriever_cli_feedback_without_a_log_says_so():
    result = _run("feedback", "stats", expect=1)
    assert "no feedback log at" in result.output and "Traceback" not in result.output


def test_retriever_client_unreachable_and_bad_urls():
    from ragctl.retriever.client import ApiClientError, RetrieverClient
    from ragctl.retriever.schemas import SearchRequest

    with pytest.raises(ApiClientError, match="must be an http"):
        RetrieverClient("localhost:8000")
    port = _closed_port()
    with pytest.raises(ApiClientError, match="cannot reach the retriever") as error:
        RetrieverClient(f"http://127.0.0.1:{port}", timeout_s=5).search(SearchRequest(query="x"))
    assert error.value.code == "unreachable"


def _closed_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
