"""evalkit runs end to end with the real packaged model: exact dims, pipeline, BM25, reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragctl.core.encoder import SentenceTransformerEncoder
from ragctl.core.records import Document
from ragctl.core.settings import ModelSettings
from ragctl.evalkit.datasets import EvalDataset, load_beir
from ragctl.evalkit.metrics import MetricConfig
from ragctl.evalkit.pipeline import doc_ranking
from ragctl.evalkit.report import format_markdown, format_text, write_outputs
from ragctl.evalkit.results import EvalReport, load_report
from ragctl.evalkit.runs import WHOLE_DOCUMENT, EvalOptions, evaluate, resolve_dims
from ragctl.evalkit.search import best_chunk_search, exact_search, id_ranks
from ragctl.ingest.pipeline import make_chunker
from ragctl.retriever.testing import EncoderWrapper

pytestmark = pytest.mark.slow

DOCS = {
    "astro": ("Telescopes", "Astronomers use telescopes to observe distant galaxies and stars."),
    "bake": ("Baking bread", "Knead the dough, let it rise, then bake the loaf in a hot oven."),
    "bike": ("Bicycle repair", "To fix a flat tyre, remove the wheel and patch the inner tube."),
    "chess": ("Chess openings", "The Sicilian Defence is a popular reply to the king's pawn."),
    "coffee": ("Coffee", "Espresso is brewed by forcing hot water through ground coffee beans."),
    "garden": ("Gardening", "Tomatoes need full sun, rich soil and regular watering to grow."),
    "python": ("Python", "Python lists are mutable sequences; tuples are immutable."),
    "sleep": ("Sleep", "Adults need seven to nine hours of sleep each night for good health."),
    "tax": ("Income tax", "Taxable income is gross income minus deductions and exemptions."),
    "volcano": ("Volcanoes", "Magma rising through the crust erupts as lava from volcanoes."),
}
LONG = " ".join(
    [
        "The history of the Roman Empire spans many centuries of conquest and administration.",
        "Its legions built roads, aqueducts and forts across Europe and the Mediterranean.",
        "Emperors such as Augustus and Hadrian reorganised provinces and the army.",
        "Latin, the language of Rome, shaped the Romance languages spoken today.",
    ]
    * 3
)
QUERIES = {
    "q1": ("how do I patch a punctured bike tire", {"bike": 1}),
    "q2": ("what did Roman legions build", {"rome": 2, "python": 0}),
    "q3": ("how to make espresso", {"coffee": 1}),
    "q4": ("how many hours should adults sleep", {"sleep": 1}),
    "q5": ("what do astronomers look at with telescopes", {"astro": 1}),
    "q6": ("growing tomatoes in the garden", {"garden": 1, "sleep": 0}),
}


def write_tiny_beir(root: Path) -> Path:
    """A small BEIR folder: 11 docs (one long enough to be chunked), 6 queries, graded qrels."""
    root.mkdir(parents=True, exist_ok=True)
    docs = [{"_id": k, "title": t, "text": x} for k, (t, x) in DOCS.items()]
    docs.append({"_id": "rome", "title": "Rome", "text": LONG})
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"_id": q, "text": t} for q, (t, _) in QUERIES.items()]
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{q}\t{d}\t{s}" for q, (_, rel) in QUERIES.items() for d, s in rel.items()]
    (root / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def encoder() -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder.load(ModelSettings(), (64,))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> EvalDataset:
    return load_beir(write_tiny_beir(tmp_path_factory.mktemp("beir") / "tiny"), "test")


class CountingEncoder(EncoderWrapper):
    """The real encoder, recording every (prompt, text) it encodes."""

    def __init__(self, base: SentenceTransformerEncoder) -> None:
        super().__init__(base)
        self.encoded: list[tuple[str, str]] = []

    def encode_full(self, texts: Any, prompt: str, *, show_progress: bool = False) -> Any:
        self.encoded += [(prompt, t) for t in texts]
        return super().encode_full(texts, prompt, show_progress=show_progress)


def _options(work: Path, **changes: Any) -> EvalOptions:
    return EvalOptions(
        dims=(256, 128, 64),
        bm25=True,
        shortlist=8,
        chunk_size_tokens=32,
        chunk_overlap_tokens=4,
        work_dir=work,
        **changes,
    )


@pytest.fixture(scope="module")
def counted(
    encoder: SentenceTransformerEncoder, tiny: EvalDataset, tmp_path_factory: pytest.TempPathFactory
) -> tuple[EvalReport, CountingEncoder]:
    """The default (best-chunk) evaluation, with every text the encoder was given."""
    counting = CountingEncoder(encoder)
    report = evaluate(tiny, counting, _options(tmp_path_factory.mktemp("work")))  # type: ignore[arg-type]
    return report, counting


@pytest.fixture(scope="module")
def report(counted: tuple[EvalReport, CountingEncoder]) -> EvalReport:
    return counted[0]


@pytest.fixture(scope="module")
def whole_report(
    encoder: SentenceTransformerEncoder, tiny: EvalDataset, tmp_path_factory: pytest.TempPathFactory
) -> EvalReport:
    """The same evaluation under the whole-document protocol (what eval did before)."""
    options = _options(tmp_path_factory.mktemp("work"), protocol=WHOLE_DOCUMENT)
    return evaluate(tiny, encoder, options)


def test_runs_report_has_exact_pipeline_and_bm25_rows(report: EvalReport) -> None:
    assert [r.name for r in report.rows] == [
        "384",
        "256",
        "128",
        "64",
        "two-stage",
        "single-stage",
        "sparse",
        "hybrid",
        "bm25",
    ]
    assert report.full_row() is not None and report.full_row().dim == 384  # type: ignore[union-attr]
    assert report.sizes["queries"] == 6 and report.sizes["corpus"] == 11
    assert report.sizes["chunks"] > 11 and report.sizes["max_chunks_per_doc"] > 1
    for row in report.rows:
        assert set(MetricConfig().keys()) == set(row.metrics)
        assert all(0.0 <= v <= 1.0 for v in row.metrics.values())
    # The queries are easy: every way of ranking finds nearly all of them first.
    assert report.row("384").metrics["accuracy@3"] == 1.0  # type: ignore[union-attr]
    assert report.row("two-stage").metrics["accuracy@3"] == 1.0  # type: ignore[union-attr]
    assert report.row("two-stage").params == {  # type: ignore[union-attr]
        "hits_per_query": 8,
        "shortlist": 8,
        "shortlist_dim": 64,
    }
    assert {"encode_corpus", "encode_queries", "ingest", "bm25_index", "total"} <= set(
        report.timings
    )


def test_runs_default_eval_encodes_each_chunk_once(
    counted: tuple[EvalReport, CountingEncoder],
    encoder: SentenceTransformerEncoder,
    tiny: EvalDataset,
) -> None:
    report, counting = counted
    asked = {q for q, _ in QUERIES.values()}  # (the model's two prompts are the same, "")
    documents = [t for _, t in counting.encoded if t not in asked]
    queries = [t for _, t in counting.encoded if t in asked]
    # one encode serves the exact rows and the pipeline: each chunk text once, each query once
    chunker = make_chunker(encoder, 32, 4)
    chunks = [c.text for d, t in tiny.corpus.items() for c in chunker.chunk(Document(d, t, "x"))]
    assert len(chunks) == report.sizes["chunks"] > 11
    assert sorted(documents) == sorted(set(chunks))  # the long doc repeats itself: 3 chunks less
    assert sorted(queries) == sorted(q for q, _ in QUERIES.values())
    assert LONG not in documents  # the long doc only as its chunks
    assert report.config["protocol"] == "best-chunk"


def test_runs_pipeline_rows_are_the_same_under_both_protocols(
    report: EvalReport, whole_report: EvalReport
) -> None:
    pipeline = ["two-stage", "single-stage", "sparse", "hybrid"]
    assert [r.name for r in whole_report.rows] == [r.name for r in report.rows]
    for name in pipeline:
        ours, before = report.row(name), whole_report.row(name)
        assert ours is not None and before is not None
        assert ours.params == before.params
        for metric, value in before.metrics.items():
            assert ours.metrics[metric] == pytest.approx(value, abs=1e-6), (name, metric)
    assert report.row("bm25").metrics == whole_report.row("bm25").metrics  # type: ignore[union-attr]
    # the long doc is chunked: its exact rows differ by protocol (best chunk vs whole text)
    assert whole_report.config["protocol"] == "whole-document"


def test_runs_exact_rows_of_best_chunk_are_exact_pipeline_rankings(report: EvalReport) -> None:
    # Single-stage pipeline search is exact over the same chunk vectors in a tiny store.
    full, single = report.row("384"), report.row("single-stage")
    assert full is not None and single is not None
    for metric, value in single.metrics.items():
        assert full.metrics[metric] == pytest.approx(value, abs=1e-6), metric


def test_runs_protocol_must_be_known() -> None:
    from ragctl.evalkit.errors import EvalError

    with pytest.raises(EvalError, match="protocol must be one of best-chunk, whole-document"):
        EvalOptions(protocol="chunks")


def test_runs_exact_rows_equal_sentence_transformers_evaluator(
    encoder: SentenceTransformerEncoder, tiny: EvalDataset, whole_report: EvalReport
) -> None:
    """The whole-document protocol gives the old exact rows: sentence-transformers' numbers."""
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )

    relevant = {q: {d for d, s in j.items() if s > 0} for q, j in tiny.qrels.items()}
    for dim in (384, 64):
        evaluator = InformationRetrievalEvaluator(
            queries=dict[str, Any](tiny.queries),
            corpus=dict[str, Any](tiny.corpus),
            relevant_docs=relevant,
            truncate_dim=None if dim == 384 else dim,
            write_csv=False,
        )
        theirs = evaluator(encoder.model)
        ours = whole_report.row(str(dim)).metrics  # type: ignore[union-attr]
        compared = 0
        for key, value in theirs.items():
            # "cosine_ndcg@10" -> "ndcg@10". Every query has one relevant doc, so the graded
            # gain of q2 (score 2) normalizes away and ndcg equals ST's binary ndcg too.
            metric = key.split("_", 1)[1]
            assert ours[metric] == pytest.approx(value, abs=1e-6), (dim, metric)
            compared += 1
        assert compared == 15


def test_runs_report_json_round_trip_and_outputs(report: EvalReport, tmp_path: Path) -> None:
    paths = write_outputs(report, tmp_path / "out")
    assert [p.name for p in paths] == ["report.json", "report.md", "ndcg.png"]
    assert (tmp_path / "out" / "ndcg.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = load_report(tmp_path / "out" / "report.json")
    assert loaded.to_dict() == report.to_dict()
    text = format_text(report)
    assert "ndcg@10" in text.splitlines()[-8] or "ndcg@10" in text
    assert "| ndcg@10 |" in format_markdown(report)


def test_runs_resolve_dims() -> None:
    assert resolve_dims(None, 384) == (384, 256, 128, 64)
    assert resolve_dims(None, 768) == (768, 512, 256, 128, 64)
    assert resolve_dims((64, 128), 384) == (384, 128, 64)
    from ragctl.evalkit.errors import EvalError

    with pytest.raises(EvalError, match=r"dims must be in \[1, 384\].*\[512\]"):
        resolve_dims((512,), 384)


def test_runs_exact_search_blocks_and_ties_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    corpus = rng.integers(0, 3, size=(300, 4)).astype(np.float32)  # many exact ties
    queries = rng.integers(0, 3, size=(20, 4)).astype(np.float32)
    ids = [f"d{rng.integers(0, 10_000):05d}-{i}" for i in range(300)]
    ranks = id_ranks(ids)
    idx, vals = exact_search(queries, corpus, 25, ranks, block_cells=20 * 64)
    for row in range(20):
        scores = corpus @ queries[row]
        expected = sorted(range(300), key=lambda i: (-scores[i], ids[i]))[:25]
        assert idx[row].tolist() == expected
        assert np.allclose(vals[row], scores[expected])


def test_runs_best_chunk_search_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 5, size=60)  # 60 docs of 1-4 chunks
    chunks = rng.integers(0, 3, size=(int(sizes.sum()), 4)).astype(np.float32)  # many ties
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    queries = rng.integers(0, 3, size=(12, 4)).astype(np.float32)
    ids = [f"d{rng.integers(0, 10_000):05d}-{i}" for i in range(60)]
    idx, vals = best_chunk_search(queries, chunks, starts, 15, id_ranks(ids))
    for row in range(12):
        scores = chunks @ queries[row]
        best = [scores[s : s + n].max() for s, n in zip(starts, sizes, strict=True)]
        expected = sorted(range(60), key=lambda i: (-best[i], ids[i]))[:15]
        assert idx[row].tolist() == expected
        assert np.allclose(vals[row], [best[i] for i in expected])


def test_runs_doc_ranking_takes_each_docs_best_chunk() -> None:
    hits = [("a", 0.9), ("b", 0.8), ("a", 0.7), ("c", 0.8)]
    assert doc_ranking(hits, 10) == ["a", "b", "c"]
    assert doc_ranking(hits, 2) == ["a", "b"]
