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


def test_retriever_cli_feedback_stats_and_export_of_one_collection(filled_log):
    with open_feedback_log(filled_log) as log:
        log.log_search(SearchEvent("s9", "refunds?", 10, 1, "faq__v1", ("f#0@1",)))
        log.log_feedback(FeedbackEvent("refunds?", "f#0@1", "f", "relevant", "refund text", 1,
                                       "faq__v1", search_id="s9", rank=1))  # fmt: skip
    every = json.loads(_run("feedback", "stats", "--json").output)
    assert (every["searches"], every["feedback"]) == (3, 4)
    faq = json.loads(_run("feedback", "stats", "--collection", "faq", "--json").output)
    assert (faq["searches"], faq["feedback"], faq["by_label"]["relevant"]) == (1, 1, 1)
    docs = json.loads(_run("feedback", "stats", "-c", "docs", "--json").output)
    assert (docs["searches"], docs["feedback"]) == (2, 3)
    none = json.loads(_run("feedback", "stats", "-c", "doc", "--json").output)  # not a prefix
    assert (none["searches"], none["feedback"]) == (0, 0)
    lines = _run("feedback", "export", "-c", "faq").output.splitlines()
    rows = [json.loads(line) for line in lines if line.startswith("{")]
    assert [r["chunk_id"] for r in rows] == ["f#0@1"]


def test_retriever_cli_feedback_without_a_log_says_so():
    result = _run("feedback", "stats", expect=1)
    assert "no feedback log at" in result.output and "Traceback" not in result.output


def test_retriever_cli_api_unreachable_and_bad_urls():
    bad = _run("search", "--api", "localhost:8000", "x", expect=2)
    assert "Invalid value for --api: the retriever's URL must be http(s)" in bad.output
    port = _closed_port()
    down = _run("search", "--api", f"http://127.0.0.1:{port}", "x", expect=1)
    assert f"Error: cannot reach the retriever at http://127.0.0.1:{port}" in down.output
    assert "Traceback" not in down.output


def _closed_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_retriever_cli_serve_refuses_a_public_address_without_keys():
    result = _run("serve", "--host", "0.0.0.0", expect=1)
    assert result.output.count("\n") == 1
    assert "refusing to serve 0.0.0.0 without API keys" in result.output
    assert "or pass --insecure" in result.output


@pytest.fixture
def started(monkeypatch):
    """`ragctl serve` up to the point where uvicorn would run; records the config it got."""
    from ragctl.retriever import server

    configs = []

    def fake_run(config):
        configs.append(config)
        return True

    monkeypatch.setattr(server, "run", fake_run)
    return configs


def test_retriever_cli_serve_insecure_starts_and_says_so(started):
    result = _run("serve", "--host", "0.0.0.0", "--insecure", "--port", "9123")
    assert "access: INSECURE: no API keys configured and bound to 0.0.0.0" in result.output
    (config,) = started
    assert (config.host, config.port) == ("0.0.0.0", 9123)
    assert config.header_timeout_s == 10 and config.body_timeout_s == 60
    assert config.timeout_keep_alive == 5


def test_retriever_cli_serve_workers_get_keys_without_the_environment(started, tmp_path):
    import os

    key = "toml-admin-key-0123456789"
    (tmp_path / "ragctl.toml").write_text(
        f'[retriever]\nadmin_api_key = "{key}"\nwrite_api_key = ["w-0123456789abcdef"]\n'
        '[store]\nurl = "http://qdrant.invalid:6333"\n'
    )
    result = _run("serve", "--workers", "3", "--host", "0.0.0.0")
    assert "writes need a write or admin key (1 write, 1 admin)" in result.output
    assert key not in result.output
    (config,) = started
    assert config.workers == 3 and config.app == "ragctl.retriever.server:worker_app"
    assert [k.get_secret_value() for k in config.worker_settings.retriever.admin_api_key] == [key]
    assert all(key not in value for value in os.environ.values())


def test_retriever_cli_serve_warns_about_short_keys(started, monkeypatch):
    monkeypatch.setenv("RAGCTL_RETRIEVER__WRITE_API_KEY", "short")
    result = _run("serve")
    assert "warning: write API key(s) shorter than 16 characters" in result.output
    assert "short" not in result.output.replace("shorter", "")


@pytest.mark.slow
def test_retriever_cli_second_serve_on_a_held_data_dir_is_one_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from ragctl.core.store.edge import EdgeStore

    data_dir = tmp_path / "held"
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1"}
    with EdgeStore(data_dir / "qdrant"):  # this process holds the store, like a first server
        done = subprocess.run(
            [sys.executable, "-m", "ragctl", "--data-dir", str(data_dir), "serve", "--port",
             str(_closed_port())],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert output.strip().count("\n") == 0 and "Traceback" not in output
    assert f"is in use by pid {os.getpid()}" in output
