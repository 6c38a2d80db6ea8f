"""CLI output people read and scripts parse: every reporting command's `--json` prints only
JSON on stdout (with the HTTP API's field names), tables fit 80 columns, and the ingest bar
counts chunks as they are embedded."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ragctl.cli.main import main
from ragctl.cli.output import table
from ragctl.evalkit.results import EvalReport, RunRow, save_report
from ragctl.retriever.feedback_log import FeedbackEvent, FeedbackLog, SearchEvent

pytestmark = pytest.mark.slow

LONG = "A very long sentence about espresso grinders and their burrs, repeated. " * 12
DOCS = {
    "bar/grinder.md": "# Grinder care\n\nThe burrs of the espresso grinder are replaced every "
    "800 kg of coffee. Clean the chute daily with a dry brush.",
    "a-rather-long-folder-name/with/nested/paths/and-a-long-file-name.md": LONG,
    "front/refunds.md": "Refunds over 40 dollars need the PIN of a shift lead.",
}
QUERIES = {"q1": ("grinder burrs", "grinder"), "q2": ("refund PIN", "refunds")}
BEIR_DOCS = {"grinder": DOCS["bar/grinder.md"], "refunds": DOCS["front/refunds.md"]}


def _run(data_dir: Path, *args: str, expect: int = 0):
    result = CliRunner().invoke(main, ["--data-dir", str(data_dir), *args], prog_name="ragctl")
    assert result.exit_code == expect, (result.stdout, result.stderr, result.exception)
    return result


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """A data dir with the corpus ingested (`ingest --json`) and a logged judgement."""
    root = tmp_path_factory.mktemp("cli-output")
    corpus = root / "corpus"
    for name, text in DOCS.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text, encoding="utf-8")
    data_dir = root / "data"
    result = _run(data_dir, "ingest", str(corpus), "--json")
    summary = json.loads(result.stdout)
    with FeedbackLog.open(str(data_dir / "feedback.db")) as log:
        log.log_search(SearchEvent("s1", "grinder burrs", 10, 1, "docs__v1", ("c1",)))
        log.log_feedback(FeedbackEvent("grinder burrs", "c1", "bar/grinder.md", "relevant",
                                       "text", 1, "docs__v1", search_id="s1", rank=1))  # fmt: skip
    return root, data_dir, summary, result.stderr


def test_ingest_json_is_the_summary_and_the_bar_counts_chunks(ingested):
    _, _, summary, stderr = ingested
    assert summary["documents"] == 3 and summary["chunks_written"] == summary["points"] >= 3
    assert summary["collection"] == "docs__v1" and summary["alias"] == "docs"
    assert summary["model_version"] == 1 and summary["skipped"] == [] and summary["took_ms"] > 0
    assert "embedding" in stderr and "chunk" in stderr  # the bar, on stderr


def test_every_reporting_command_prints_only_json(ingested, tmp_path, write_beir):
    root, data_dir, _, _ = ingested
    rows = [
        RunRow("384", "exact", 384, {"ndcg@10": 0.5}),
        RunRow("64", "exact", 64, {"ndcg@10": 0.4}),
    ]
    for name, value in (("base", 0.5), ("tuned", 0.6)):
        scored = [RunRow(r.name, r.kind, r.dim, {"ndcg@10": value}) for r in rows]
        report = EvalReport(name, "tiny", "test", 384, {"queries": 2, "corpus": 2}, scored)
        save_report(report, tmp_path / name / "report.json")
    beir = write_beir(tmp_path / "tiny", BEIR_DOCS, QUERIES)
    commands = {
        "search": ["search", "how often are the burrs replaced?", "--json", "-k", "2"],
        "collections": ["collections", "--json"],
        "models list": ["models", "list", "--json"],
        "models show": ["models", "show", "v1", "--json"],
        "feedback stats": ["feedback", "stats", "--json"],
        "compare": ["compare", str(tmp_path / "base" / "report.json"),
                    str(tmp_path / "tuned" / "report.json"), "--json"],
        "eval": ["eval", "--dataset", str(beir), "--no-pipeline",
                 "--dims", "384,64", "--json"],
        "retune": ["retune", "--pairs", str(_pairs(tmp_path)), "--dry-run", "--json"],
        "models profile": ["models", "profile", "v1", "--eval-set", str(_pairs(tmp_path)),
                           "--json"],
    }  # fmt: skip
    parsed = {name: json.loads(_run(data_dir, *args).stdout) for name, args in commands.items()}

    search = parsed["search"]
    assert {"search_id", "took_ms", "model_version", "collection", "mode", "results"} <= set(search)
    hit = search["results"][0]
    assert {"chunk_id", "doc_id", "score", "text", "start", "end", "metadata"} <= set(hit)
    assert hit["doc_id"].endswith("bar/grinder.md") and hit["end"] > hit["start"]
    assert parsed["collections"]["collections"][0]["physical"] == "docs__v1"
    assert (
        parsed["models list"]["serving"] == 1 and parsed["models list"]["models"][0]["version"] == 1
    )
    assert parsed["models show"]["version"] == 1 and parsed["models show"]["comparisons"] == []
    stats = parsed["feedback stats"]
    assert stats["total"] == 1 and stats["by_label"]["relevant"] == 1
    assert parsed["compare"]["deltas"][0]["absolute"] == pytest.approx(0.1)
    assert [r["name"] for r in parsed["eval"]["rows"]] == ["384", "64"]
    retune = parsed["retune"]
    assert retune["serving_version"] == 1 and retune["promote"] is None
    assert retune["counts"]["pairs"] == 20
    profile = parsed["models profile"]
    assert profile["version"] == 1 and profile["applied"] is False
    assert {"sparse", "hybrid"} <= set(profile["measured"]["ndcg@10"])
    status = json.loads((data_dir / "retune" / "docs.json").read_text())
    assert status["state"] == "finished" and status["steps"]


def _pairs(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    lines = [
        json.dumps({"anchor": f"question {i} about {topic}", "positive": DOCS[doc]})
        for i in range(10)
        for topic, doc in (("burrs", "bar/grinder.md"), ("refunds", "front/refunds.md"))
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_search_tables_fit_80_columns_and_wide_shows_everything(ingested):
    _, data_dir, _, _ = ingested
    output = _run(data_dir, "search", "espresso grinder burrs", "-k", "3").stdout
    lines = output.splitlines()
    assert len(lines) >= 5 and all(len(line) <= 80 for line in lines), output
    assert "#" in lines[1] and "score" in lines[1]
    wide = _run(data_dir, "search", "espresso grinder burrs", "-k", "3", "--wide").stdout
    assert LONG.strip()[:300] in " ".join(wide.split())  # the whole chunk, not cut
    for args in (
        ["collections"],
        ["models", "list"],
        ["feedback", "stats"],
        ["models", "show", "1"],
    ):
        out = _run(data_dir, *args).stdout
        assert all(len(line) <= 80 for line in out.splitlines()), (args, out)


def test_table_wraps_text_and_drops_the_least_useful_column():
    rows = [("v1", "serving", "x" * 70, "2025-01-01 10:00")]
    wrapped = table(["version", "status", "model", "created"], rows, wrap=["model"])
    assert all(len(line) <= 80 for line in wrapped.splitlines())
    assert "x" * 30 in wrapped and len(wrapped.splitlines()) > 3  # the model wraps
    dropped = table(["version", "status", "note", "created"], [("v1", "ok", "y" * 75, "now")],
                    drop=["created", "note"])  # fmt: skip
    assert all(len(line) <= 80 for line in dropped.splitlines())
    assert "created" not in dropped.splitlines()[0] and "left out" in dropped
