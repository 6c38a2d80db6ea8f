"""evalkit.datasets: BEIR folders, pair files, feedback exports, Hub ids; validation errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ragctl.evalkit.datasets import (
    EvalDataset,
    load_beir,
    load_eval_dataset,
    load_feedback,
    load_hf,
    load_pairs,
)
from ragctl.evalkit.errors import EvalError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _beir(root: Path, qrels: str | None = None) -> Path:
    _jsonl(
        root / "corpus.jsonl",
        [
            {"_id": "d1", "title": "Cats", "text": "Cats purr."},
            {"_id": "d2", "title": "", "text": "Dogs bark."},
            {"_id": 3, "text": "Birds sing."},
        ],
    )
    _jsonl(
        root / "queries.jsonl",
        [
            {"_id": "q1", "text": "what purrs"},
            {"_id": "q2", "text": "who barks"},
            {"_id": "q3", "text": "unjudged"},
            {"_id": "q4", "text": "only a zero"},
        ],
    )
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    default = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\t3\t0\nq4\td1\t0\n"
    (root / "qrels" / "test.tsv").write_text(qrels or default, encoding="utf-8")
    return root


def test_datasets_beir_folder_loads_and_drops_queries_without_relevant_docs(
    tmp_path: Path,
) -> None:
    data = load_beir(_beir(tmp_path / "tiny"), "test")
    assert data.name == "tiny" and data.split == "test"
    assert data.corpus == {"d1": "Cats Cats purr.", "d2": "Dogs bark.", "3": "Birds sing."}
    assert list(data.queries) == ["q1", "q2"]
    assert data.qrels["q2"] == {"d2": 2, "3": 0}
    assert data.sizes() == {"queries": 2, "corpus": 3, "relevant_pairs": 2, "dropped_queries": 1}
    assert any("1 queries dropped" in note for note in data.notes)


def test_datasets_beir_missing_split_lists_available_ones(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match=r"no qrels for split 'dev'.*available splits: test"):
        load_beir(_beir(tmp_path), "dev")


def test_datasets_beir_errors_name_file_line_and_field(tmp_path: Path) -> None:
    root = _beir(tmp_path)
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{"_id": "d2"}\n')
    with pytest.raises(EvalError, match=r"corpus.jsonl, line 2: missing field 'text'"):
        load_beir(root)
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\n{"_id": "d1", "text": "x"}\n')
    with pytest.raises(EvalError, match=r"line 2: field '_id': duplicate id 'd1' \(first at"):
        load_beir(root)
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": "ok"}\nnot json\n')
    with pytest.raises(EvalError, match=r"corpus.jsonl, line 2: invalid JSON"):
        load_beir(root)
    (root / "corpus.jsonl").write_text('{"_id": "d1", "text": 5}\n')
    with pytest.raises(EvalError, match=r"line 1: field 'text' must be a string, got int"):
        load_beir(root)


def test_datasets_beir_qrels_errors_name_line_and_field(tmp_path: Path) -> None:
    root = _beir(tmp_path, qrels="query-id\tcorpus-id\tscore\nq1\td1\tyes\n")
    with pytest.raises(EvalError, match=r"test.tsv, line 2: field 'score' must be an integer"):
        load_beir(root)
    (root / "qrels" / "test.tsv").write_text("q1\td1\n")
    with pytest.raises(EvalError, match=r"test.tsv, line 1: expected 3 tab-separated fields"):
        load_beir(root)
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n")
    with pytest.raises(EvalError, match="no qrels rows"):
        load_beir(root)


def test_datasets_beir_with_no_relevant_query_is_an_error(tmp_path: Path) -> None:
    root = _beir(tmp_path, qrels="q1\td1\t0\n")
    with pytest.raises(EvalError, match="no query has both a text and a relevant doc"):
        load_beir(root)


PAIRS = [
    {"anchor": "what purrs", "positive": "Cats purr.", "global_chunk_id": 7, "id": 10},
    {"anchor": "who barks", "positive": "Dogs bark.", "global_chunk_id": 8, "id": 11},
    {"anchor": "what do cats do", "positive": "Cats purr.", "global_chunk_id": 7, "id": 12},
]


def test_datasets_pairs_dedupe_positives_by_group_id(tmp_path: Path) -> None:
    data = load_pairs(_jsonl(tmp_path / "test.jsonl", PAIRS))
    assert data.corpus == {"7": "Cats purr.", "8": "Dogs bark."}
    assert data.queries["12"] == "what do cats do"
    assert data.qrels == {"10": {"7": 1}, "11": {"8": 1}, "12": {"7": 1}}


def test_datasets_pairs_csv_without_group_dedupes_by_text(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(
        "anchor,positive\nwhat purrs,Cats purr.\nwho barks,Dogs bark.\ncats?,Cats purr.\n"
    )
    data = load_eval_dataset(path)
    assert len(data.corpus) == 2
    assert data.qrels["q0"] == data.qrels["q2"]
    assert data.sizes()["queries"] == 3


def test_datasets_pairs_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "test.parquet"
    pq.write_table(pa.Table.from_pylist(PAIRS), path)
    data = load_eval_dataset(path)
    assert data.corpus == {"7": "Cats purr.", "8": "Dogs bark."}


def test_datasets_pairs_errors_name_file_line_and_field(tmp_path: Path) -> None:
    bad = [PAIRS[0], {"anchor": "x", "global_chunk_id": 9, "id": 1}]
    with pytest.raises(EvalError, match=r"bad.jsonl, line 2: missing field 'positive'"):
        load_pairs(_jsonl(tmp_path / "bad.jsonl", bad))
    dup = [PAIRS[0], PAIRS[0]]
    with pytest.raises(EvalError, match=r"line 2: field 'id': duplicate query id '10'"):
        load_pairs(_jsonl(tmp_path / "dup.jsonl", dup))
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("anchor,positive\nok,fine\n ,empty anchor\n")
    with pytest.raises(EvalError, match=r"bad.csv, line 3: field 'anchor' is empty"):
        load_pairs(csv_path)
    with pytest.raises(EvalError, match="no records"):
        load_eval_dataset(_jsonl(tmp_path / "empty.jsonl", []))


def test_datasets_pair_folder_adds_other_files_as_distractors(tmp_path: Path) -> None:
    _jsonl(tmp_path / "test_dataset.json", PAIRS[:2])
    _jsonl(
        tmp_path / "train_dataset.json",
        [{"anchor": "sing?", "positive": "Birds sing.", "global_chunk_id": 9, "id": 1}],
    )
    data = load_eval_dataset(tmp_path, "test")
    assert set(data.corpus) == {"7", "8", "9"}
    assert list(data.queries) == ["10", "11"]
    with pytest.raises(EvalError, match=r"no file for split 'dev'.*test_dataset.json"):
        load_eval_dataset(tmp_path, "dev")


def test_datasets_feedback_export(tmp_path: Path) -> None:
    base: list[dict[str, Any]] = [
        {"query": "what purrs", "chunk_id": "c1", "label": "relevant", "chunk_text": "Cats purr."},
        {"query": "what purrs", "chunk_id": "c2", "label": "not_relevant", "chunk_text": "Dogs."},
        {"query": "only bad", "chunk_id": "c2", "label": "not_relevant", "chunk_text": "Dogs."},
    ]
    rows: list[dict[str, Any]] = [
        r | {"model_version": 1, "ts": "2026-01-01T00:00:00Z"} for r in base
    ]
    data = load_eval_dataset(_jsonl(tmp_path / "feedback.jsonl", rows))
    assert data.split == "all"
    assert data.corpus == {"c1": "Cats purr.", "c2": "Dogs."}
    assert data.qrels == {"fq0": {"c1": 1, "c2": 0}}
    assert data.dropped_queries == 1
    bad = [rows[0] | {"label": "maybe"}]
    with pytest.raises(EvalError, match=r"fb.jsonl, line 1: field 'label' must be one of"):
        load_feedback(_jsonl(tmp_path / "fb.jsonl", bad))


def test_datasets_subset_keeps_judged_docs(tmp_path: Path) -> None:
    corpus = {f"d{i}": f"text {i}" for i in range(50)}
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(20)}
    data = EvalDataset("x", "test", corpus, {q: q for q in qrels}, qrels)
    small = data.subset(max_queries=5, max_corpus=10, seed=1)
    assert len(small.queries) == 5 and len(small.corpus) == 10
    for judged in small.qrels.values():
        assert set(judged) <= set(small.corpus)
    assert small.subset(max_queries=5).queries == small.queries
    with pytest.raises(EvalError, match="max_queries must be >= 1, got 0"):
        data.subset(max_queries=0)


def test_datasets_unknown_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="dataset not found"):
        load_eval_dataset(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(EvalError, match=r"unsupported file type '.txt'"):
        load_eval_dataset(tmp_path / "x.txt")


class _FakeTable(list):  # type: ignore[type-arg]
    """Enough of a `datasets.Dataset` for the loader: iterable rows and column names."""

    @property
    def column_names(self) -> list[str]:
        return list(self[0]) if self else []


def test_datasets_hf_mteb_layout_through_datasets_api(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    tables = {
        "corpus": {"corpus": _FakeTable([{"_id": "d1", "title": "T", "text": "body"}])},
        "queries": {"queries": _FakeTable([{"_id": "q1", "text": "question"}])},
        "default": _FakeTable([{"query-id": "q1", "corpus-id": "d1", "score": 1}]),
    }
    monkeypatch.setattr(
        datasets, "get_dataset_config_names", lambda repo, revision=None: list(tables)
    )

    def fake_load(repo: str, config: str | None = None, split: str | None = None, **_: Any) -> Any:
        assert repo == "mteb/tiny"
        return tables[config or "default"]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    data = load_eval_dataset("mteb/tiny", "test")
    assert data.corpus == {"d1": "T body"} and data.queries == {"q1": "question"}
    assert data.source == "hf:mteb/tiny"


def test_datasets_hf_pair_layout_through_datasets_api(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    rows = _FakeTable([{"question": "what purrs", "text": "Cats purr.", "global_chunk_id": 1}])
    monkeypatch.setattr(
        datasets, "get_dataset_config_names", lambda repo, revision=None: ["default"]
    )
    monkeypatch.setattr(datasets, "load_dataset", lambda repo, split=None, **_: rows)
    data = load_hf("owner/pairs", "train")
    assert data.corpus == {"1": "Cats purr."} and data.queries == {"q0": "what purrs"}


@pytest.mark.skip(reason="needs network access to the Hugging Face Hub (tests run offline)")
def test_datasets_hf_real_hub_dataset() -> None:
    data = load_hf("mteb/scifact", "test")
    assert data.sizes()["queries"] == 300


def test_datasets_shared_scifact_sizes() -> None:
    root = SHARED_DATA / "scifact"
    if not root.is_dir():
        pytest.skip(f"shared dataset not present at {root}")
    data = load_eval_dataset(root, "test")
    assert data.sizes() == {
        "queries": 300,
        "corpus": 5183,
        "relevant_pairs": 339,
        "dropped_queries": 0,
    }
