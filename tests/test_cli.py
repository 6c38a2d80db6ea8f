"""The CLI end to end with the real packaged model and the embedded store."""

import json
import subprocess
import sys
import textwrap

import click
import pytest
from click.testing import CliRunner

from ragctl.cli.main import main


@pytest.fixture
def corpus(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "bar").mkdir(parents=True)
    (folder / "bar" / "grinder.md").write_text(
        "# Grinder care\n\nThe burrs of the espresso grinder are replaced every 800 kg of coffee. "
        "Clean the chute daily with a dry brush."
    )
    (folder / "bar" / "milk.txt").write_text(
        "Steam whole milk to 60 degrees Celsius; oat milk stretches best at 55 degrees."
    )
    (folder / "refunds.html").write_text(
        "<html><head><title>Refunds</title><style>p{color:red}</style></head><body>"
        "<h1>Refunds</h1><p>Refunds over 40 dollars need a shift lead's PIN.</p>"
        "<script>var secret = 'do not index';</script></body></html>"
    )
    (folder / "faq.jsonl").write_text(
        json.dumps(
            {
                "id": "faq-1",
                "title": "Wifi",
                "text": "The guest wifi password changes weekly.",
                "category": "it",
            }
        )
        + "\n{broken json\n"
    )
    (folder / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    return folder


def _run(*args, expect=0):
    result = CliRunner().invoke(main, list(args), prog_name="ragctl", catch_exceptions=False)
    assert result.exit_code == expect, result.output
    # Results go to stdout; progress bars and errors to stderr.
    return result.stdout if expect == 0 else result.stderr


@pytest.mark.parametrize("command", [[], ["ingest"], ["search"], ["collections"], ["delete"]])
def test_cli_help_explains_every_command(command):
    output = _run(*command, "--help")
    assert "Usage: ragctl" in output and "Options:" in output and len(output) > 200


def test_cli_ingest_search_collections_delete(corpus, tmp_path):
    output = _run("ingest", str(corpus))
    assert "4 documents (0 unchanged), 4 chunks written" in output
    assert (
        "1 skipped" in output
    )  # the broken jsonl line; image.png is not an input in a folder walk

    output = _run("ingest", str(corpus))
    assert "4 documents (4 unchanged), 0 chunks written, 0 deleted" in output

    results = json.loads(
        _run("search", "how often are burrs changed?", "--json", "-k", "2", "--mode", "dense")
    )
    assert results["collection"] == "docs__v1"
    assert results["results"][0]["doc_id"] == "corpus/bar/grinder.md"
    assert len(results["results"]) == 2

    sparse = json.loads(_run("search", "burrs", "--json", "--mode", "sparse"))
    assert [r["doc_id"] for r in sparse["results"]] == ["corpus/bar/grinder.md"]
    html = json.loads(_run("search", "refund approval PIN", "--json", "-k", "1"))["results"][0]
    assert html["doc_id"] == "corpus/refunds.html"
    assert "secret" not in html["text"] and "color" not in html["text"]

    filtered = json.loads(
        _run("search", "coffee", "--json", "--filter", "metadata.category=it", "--single-stage")
    )
    assert [r["doc_id"] for r in filtered["results"]] == ["faq-1"]
    negated = json.loads(
        _run("search", "coffee", "--json", "-k", "10", "--filter", "metadata.category!=it")
    )
    assert negated["results"] and "faq-1" not in [r["doc_id"] for r in negated["results"]]

    table = _run("collections")
    assert "docs__v1" in table and "384+64" in table

    assert "deleted 1 chunks of 1 document(s) from docs__v1" in _run("delete", "faq-1")
    assert json.loads(_run("collections", "--json"))["collections"][0]["points"] == 3
    # An id that is not there is named, with exit code 1; nothing else is touched.
    missing = CliRunner().invoke(main, ["delete", "faq-1", "nope"], prog_name="ragctl")
    assert missing.exit_code == 1
    assert "Error: no document 'faq-1', 'nope' in docs__v1; nothing deleted for it" in (
        missing.output
    )
    assert json.loads(_run("collections", "--json"))["collections"][0]["points"] == 3


def test_cli_errors_are_one_line(corpus):
    output = _run("search", "anything", expect=1)
    assert "Error: no collection or alias named 'docs'" in output
    _run("ingest", str(corpus / "bar"))
    assert "Invalid value for '--shortlist': shortlist (5) must be >= k (10)" in _run(
        "search", "milk", "--shortlist", "5", expect=2
    )
    assert "Invalid value for '-k': Input should be greater than or equal to 1 (got 0)" in _run(
        "search", "milk", "-k", "0", expect=2
    )
    assert "Invalid value for '--filter': cannot filter on 'text'" in _run(
        "search", "milk", "--filter", "text=x", expect=2
    )
    assert "is not KEY=VALUE" in _run("search", "milk", "--filter", "nokey", expect=2)
    assert "does not exist" in _run("ingest", str(corpus / "missing"), expect=2)
    assert (
        "Invalid value for '--chunk-size' / '--chunk-overlap': overlap_tokens (16) must be "
        "smaller than size_tokens (16)"
    ) in _run("ingest", str(corpus), "--chunk-size", "16", "--chunk-overlap", "16", expect=2)


def test_cli_settings_errors_name_the_file_variable_or_flag(tmp_path, monkeypatch):
    (tmp_path / "ragctl.toml").write_text("[search]\ntop_k = 3\n")
    output = _run("collections", expect=1)
    assert output.strip() == (
        "Error: ragctl.toml: [search]: unknown key 'top_k' (did you mean 'k'?); allowed: "
        "method, fusion, rrf_k, dense_weight, sparse_weight, candidates, hybrid_candidates, "
        "rescore, k, shortlist, mode"
    )
    (tmp_path / "ragctl.toml").write_text("[search]\nk = \n")
    assert _run("collections", expect=1).strip() == (
        "Error: ragctl.toml: invalid TOML at line 2, column 5: Invalid value"
    )
    (tmp_path / "ragctl.toml").unlink()
    monkeypatch.setenv("RAGCTL_SERACH__K", "5")
    assert "RAGCTL_SERACH__K: unknown setting 'serach' (did you mean RAGCTL_SEARCH__K?)" in _run(
        "collections", expect=1
    )
    monkeypatch.delenv("RAGCTL_SERACH__K")
    monkeypatch.setenv("RAGCTL_SEARCH__K", "0")
    assert "invalid setting search.k (from RAGCTL_SEARCH__K): Input should be greater" in _run(
        "collections", expect=1
    )
    monkeypatch.delenv("RAGCTL_SEARCH__K")
    assert "Invalid value for '--port'" in _run("serve", "--port", "0", expect=2)


def test_cli_unusable_data_dir_is_one_line(monkeypatch):
    monkeypatch.setenv("RAGCTL_DATA_DIR", "/proc/x")
    output = _run("collections", expect=1)
    assert output.count("\n") == 1 and "Traceback" not in output
    assert "cannot open the embedded store at /proc/x/qdrant: No such file or directory" in output


def test_cli_second_process_gets_a_clear_lock_error(corpus, tmp_path):
    data_dir = tmp_path / ".ragctl"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from pathlib import Path
                from ragctl.core.store.edge import EdgeStore
                store = EdgeStore(Path({str(data_dir / "qdrant")!r}))
                print("ready", flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        output = _run("ingest", str(corpus), expect=1)
        assert f"in use by pid {holder.pid}" in output
    finally:
        holder.kill()
        holder.wait()
    # Once the holder is gone (even killed), the store opens again and nothing was lost.
    assert "4 chunks written" in _run("ingest", str(corpus))


def test_cli_filter_flags_make_one_payload_filter():
    from ragctl.cli.commands_data import _parse_filters

    assert _parse_filters(
        ("doc_id=a.md", "doc_id=b.md", "metadata.year>=2020", "metadata.year<2024",
         "metadata.score>0.5", "metadata.lang!=de", "metadata.lang!=fr")
    ) == {
        "doc_id": ["a.md", "b.md"],
        "metadata.year": {"gte": 2020, "lt": 2024},
        "metadata.score": {"gt": 0.5},
        "must_not": {"metadata.lang": ["de", "fr"]},
    }  # fmt: skip
    assert _parse_filters(()) is None
    for bad, needle in (("metadata.year>=soon", "takes a number"), ("=x", "is not KEY=VALUE"),
                        ("nokey", "is not KEY=VALUE")):  # fmt: skip
        with pytest.raises(click.BadParameter, match=needle):
            _parse_filters((bad,))
