"""`ragctl eval` and `ragctl compare` through click's CliRunner."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from ragctl.cli.main import main
from ragctl.evalkit.results import EvalReport, RunRow, load_report, save_report


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ragctl.toml from the repo; data dir under tmp_path
    monkeypatch.setenv("RAGCTL_DATA_DIR", str(tmp_path / ".ragctl"))


def _report(model: str, ndcg: float) -> EvalReport:
    rows = [
        RunRow("384", "exact", 384, {"ndcg@10": ndcg, "mrr@10": ndcg}),
        RunRow("64", "exact", 64, {"ndcg@10": ndcg - 0.1, "mrr@10": ndcg}),
        RunRow("two-stage", "two-stage", 384, {"ndcg@10": ndcg}),
    ]
    return EvalReport(model, "tiny", "test", 384, {"queries": 2, "corpus": 5}, rows)


@pytest.mark.slow
def test_cli_eval_prints_table_and_writes_outputs(
    tmp_path: Path, write_beir: Callable[..., Path]
) -> None:
    data = write_beir(tmp_path / "tiny")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "eval",
            "--model",
            "default",
            "--dataset",
            str(data),
            "--dims",
            "128,64",
            "--shortlist",
            "5",
            "--bm25",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "2 queries, 5 docs" in result.output
    # the table comes in blocks of columns that fit 80 characters, the metric names repeated
    headers = [line.split() for line in result.output.splitlines() if line.startswith("metric")]
    assert len(headers) >= 2 and all(h[0] == "metric" for h in headers)
    table_lines = result.output.split("\n\n", 1)[1].splitlines()
    assert all(len(line) <= 80 for line in table_lines if not line.startswith("wrote ")), (
        result.output
    )
    assert ["metric", *(name for h in headers for name in h[1:])] == [
        "metric",
        "384",
        "128",
        "64",
        "two-stage",
        "single-stage",
        "sparse",
        "hybrid",
        "bm25",
    ]
    assert "ndcg@10" in result.output
    assert {p.name for p in out.iterdir()} == {"report.json", "report.md", "ndcg.png"}
    report = load_report(out / "report.json")
    assert report.row("384").metrics["accuracy@1"] == 1.0  # type: ignore[union-attr]
    assert report.config["protocol"] == "best-chunk"


def test_cli_eval_errors_are_one_line_with_exit_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["eval", "--dataset", str(tmp_path / "missing")])
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: dataset not found")
    assert "Traceback" not in result.output
    bad = CliRunner().invoke(main, ["eval", "--dataset", "x", "--dims", "384,abc"])
    assert bad.exit_code == 2 and "comma-separated list of integers" in bad.output
    protocol = CliRunner().invoke(main, ["eval", "--dataset", "x", "--protocol", "chunks"])
    assert protocol.exit_code == 2 and "'best-chunk', 'whole-document'" in protocol.output


def test_cli_eval_and_compare_help() -> None:
    for command in ("eval", "compare"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0
    text = CliRunner().invoke(main, ["eval", "--help"]).output
    for option in ("--dataset", "--dims", "--protocol", "--pipeline / --no-pipeline", "--bm25"):
        assert option in text


def test_cli_compare_prints_absolute_and_relative_change(tmp_path: Path) -> None:
    base = save_report(_report("base", 0.5), tmp_path / "a.json")
    tuned = save_report(_report("tuned", 0.6), tmp_path / "b.json")
    md = tmp_path / "cmp.md"
    result = CliRunner().invoke(main, ["compare", str(base), str(tuned), "--out", str(md)])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("384") and "ndcg@10" in x)
    assert line.split() == ["384", "ndcg@10", "0.5000", "0.6000", "+0.1000", "+20.0%"]
    assert "## ndcg@10" in md.read_text()


def test_cli_compare_rejects_a_file_that_is_not_a_report(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    result = CliRunner().invoke(main, ["compare", str(bad), str(bad)])
    assert result.exit_code == 1
    assert "not an evalkit report" in result.output


def _per_query_report(model: str, values: list[float]) -> EvalReport:
    per_query = {f"q{i}": {"ndcg@10": v} for i, v in enumerate(values)}
    mean = sum(values) / len(values)
    rows = [RunRow("384", "exact", 384, {"ndcg@10": mean}, per_query=per_query)]
    queries = {f"q{i}": f"question number {i}" for i in range(len(values))}
    sizes = {"queries": len(values), "corpus": 50}
    return EvalReport(model, "tiny", "test", 384, sizes, rows, queries=queries)


def test_cli_compare_tests_each_column_and_lists_the_biggest_losses(tmp_path: Path) -> None:
    base_values = [0.5] * 40
    tuned_values = [0.8] * 36 + [0.5, 0.4, 0.1, 0.0]  # wins most, loses three queries
    base = save_report(_per_query_report("base", base_values), tmp_path / "a.json")
    tuned = save_report(_per_query_report("tuned", tuned_values), tmp_path / "b.json")
    result = CliRunner().invoke(main, ["compare", str(base), str(tuned)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "paired randomization test per column" in out
    row = next(x for x in out.splitlines() if x.startswith("384") and "/" in x)
    assert row.split()[-1] == "36/3/1" and float(row.split()[4]) < 0.05  # p better
    losses = out[out.index("biggest per-query losses at 384") :].splitlines()[1:4]
    assert [line.split()[0] for line in losses] == ["-0.5000", "-0.4000", "-0.1000"]
    assert "q39: question number 39" in losses[0]
