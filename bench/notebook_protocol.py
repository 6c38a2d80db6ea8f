"""ndcg@10 on the notebook's legal data, evaluated exactly as the notebook evaluates it.

The notebook this project grew from (fine-tune an embedding model on synthetic legal
question/chunk pairs) reports ndcg@10 per Matryoshka dim with sentence-transformers'
InformationRetrievalEvaluator over:
  corpus   = every row of train + test (id -> positive), duplicate chunk texts included;
  queries  = the test rows' anchors;
  relevant = every corpus row with the same global_chunk_id as the query's row;
  exact cosine search at each dim (the first D components).
Its published number: 0.664 at 768-d for ModernBERT-embed-base fine-tuned 4 epochs on a GPU
(0.442 before). This script builds that protocol from the raw pair files and scores any
models with evalkit's exact rows (equal to the sentence-transformers evaluator: encode once,
truncate per dim), and cross-checks the full dim with the sentence-transformers evaluator
itself unless --no-cross-check.

    .venv/bin/python bench/notebook_protocol.py [--model NAME=PATH_OR_ID ...] [--tag TAG]

Beside the per-dim rows: exact two-stage search as served (64-d shortlist of 100, reranked at
the full dim), its ndcg@10 and the overlap@10 of its top 10 with the full-dim top 10.

Models default to the packaged base model (`base=default`). Results go to
bench/results/notebook_protocol[_TAG].{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RAW = ROOT.parent / "shared/data/legal-rag-positives-synthetic/raw"
PUBLISHED = {"modernbert-embed-base (notebook, before)": 0.442, "notebook fine-tune": 0.664}


def notebook_dataset(raw: Path = RAW) -> Any:
    """The notebook's evaluation set as an EvalDataset (duplicates kept, as it does)."""
    from ragctl.evalkit.datasets import EvalDataset

    def rows(name: str) -> list[dict[str, Any]]:
        path = raw / name
        return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]

    train, test = rows("train_dataset.json"), rows("test_dataset.json")
    everything = train + test
    corpus = {str(r["id"]): r["positive"] for r in everything}
    by_chunk: dict[int, list[str]] = {}
    for r in everything:
        by_chunk.setdefault(int(r["global_chunk_id"]), []).append(str(r["id"]))
    queries = {str(r["id"]): r["anchor"] for r in test}
    qrels = {str(r["id"]): {doc: 1 for doc in by_chunk[int(r["global_chunk_id"])]} for r in test}
    return EvalDataset(
        name="legal-notebook-protocol",
        split="test",
        corpus=corpus,
        queries=queries,
        qrels=qrels,
        source=str(raw),
        notes=["the notebook's protocol: corpus = train+test rows with duplicates"],
    )


def cross_check(model_path: str, dataset: Any, dim: int) -> float:
    """ndcg@10 at `dim` from sentence-transformers' own evaluator (the notebook's code path)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )

    model = SentenceTransformer(model_path, device="cpu")
    evaluator = InformationRetrievalEvaluator(
        queries=dataset.queries,
        corpus=dataset.corpus,
        relevant_docs={q: set(d) for q, d in dataset.qrels.items()},
        name=f"dim_{dim}",
        truncate_dim=dim,
        score_functions={"cosine": __import__("sentence_transformers").util.cos_sim},
    )
    scores = evaluator(model)
    return float(scores[f"dim_{dim}_cosine_ndcg@10"])


def two_stage_agreement(
    dataset: Any, encoder: Any, corpus: Any, shortlist_dim: int = 64, shortlist: int = 100
) -> dict[str, float]:
    """Exact two-stage search as the retriever serves it (the `shortlist` best by the
    `shortlist_dim` prefix, reranked at the full dim): its ndcg@10 and the mean overlap@10 of
    its top 10 with the full-dim top 10. `corpus`: `encoder`'s vectors of the corpus, in
    `dataset.corpus` order."""
    from ragctl.evalkit.metrics import NDCG_AT_10, mean_metrics, per_query_metrics
    from ragctl.evalkit.search import exact_search, id_ranks, two_stage_search

    corpus_ids, query_ids = list(dataset.corpus), list(dataset.queries)
    queries = encoder.encode_queries([dataset.queries[q] for q in query_ids])
    ranks = id_ranks(corpus_ids)
    full, _ = exact_search(queries.full, corpus.full, 10, ranks)
    two, _ = two_stage_search(
        queries.full,
        corpus.full,
        queries.shortlist[shortlist_dim],
        corpus.shortlist[shortlist_dim],
        shortlist,
        10,
        ranks,
    )
    rankings = {q: [corpus_ids[i] for i in two[row]] for row, q in enumerate(query_ids)}
    ndcg = mean_metrics(per_query_metrics(rankings, dataset.qrels, NDCG_AT_10))["ndcg@10"]
    overlap = sum(len(set(a) & set(b)) / 10 for a, b in zip(full, two, strict=True)) / len(full)
    return {"two_stage_ndcg@10": round(ndcg, 4), "overlap@10": round(overlap, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH_OR_ID")
    parser.add_argument("--tag", default="")
    parser.add_argument("--no-cross-check", action="store_true")
    parser.add_argument("--raw", type=Path, default=RAW, help="the notebook's pair files")
    args = parser.parse_args()
    if not args.raw.is_dir():
        raise SystemExit(f"needs the notebook's pair files under {args.raw}")

    from ragctl.core.encoder import SentenceTransformerEncoder, resolve_model
    from ragctl.core.settings import ModelSettings
    from ragctl.evalkit.runs import WHOLE_DOCUMENT, EvalOptions, evaluate

    dataset = notebook_dataset(args.raw)
    models = dict(m.split("=", 1) for m in args.model) or {"base": "default"}
    results: dict[str, Any] = {}
    for name, ref in models.items():
        encoder = SentenceTransformerEncoder.load(
            ModelSettings(name_or_path=ref, device="cpu"), (64,)
        )
        started = time.perf_counter()
        # The corpus is encoded once, for the exact rows and the two-stage check alike.
        corpus = encoder.encode_documents(list(dataset.corpus.values()))
        report = evaluate(
            dataset,
            encoder,
            EvalOptions(protocol=WHOLE_DOCUMENT, pipeline=False, lexical=None),
            corpus_vectors=dict(zip(dataset.corpus, corpus.full, strict=True)),
        )
        row = {r.name: round(r.metrics["ndcg@10"], 4) for r in report.exact_rows()}
        results[name] = {"model": ref, "ndcg@10": row, "seconds": time.perf_counter() - started}
        results[name]["two_stage"] = two_stage_agreement(dataset, encoder, corpus)
        if not args.no_cross_check:
            full = encoder.dim
            theirs = cross_check(resolve_model(ref), dataset, full)
            results[name]["sentence_transformers_ndcg@10_full"] = round(theirs, 4)
        print(name, results[name], flush=True)

    out = ROOT / "bench/results" / f"notebook_protocol{'_' + args.tag if args.tag else ''}"
    payload = {
        "benchmark": "notebook_protocol",
        "protocol": "corpus = train+test rows (6,469, duplicates kept); queries = test anchors "
        "(647); relevant = every row of the same global_chunk_id; exact cosine per dim",
        "sizes": {"corpus": len(dataset.corpus), "queries": len(dataset.queries)},
        "published": PUBLISHED,
        "models": results,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "command": " ".join(["python", "bench/notebook_protocol.py", *sys.argv[1:]]),
    }
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    dims = sorted({d for r in results.values() for d in r["ndcg@10"]}, key=int, reverse=True)
    lines = [
        "# The notebook's protocol (legal, test split): ndcg@10 per dim",
        "",
        f"`{payload['command']}` -- {payload['protocol']}.",
        "",
        "| model | " + " | ".join(dims) + " | ST evaluator (full dim) | two-stage "
        "(64-d shortlist 100) | overlap@10 with full-dim top 10 |",
        "|---|" + "---|" * (len(dims) + 3),
    ]
    for name, r in results.items():
        cells = [f"{r['ndcg@10'].get(d, float('nan')):.4f}" for d in dims]
        check = r.get("sentence_transformers_ndcg@10_full")
        two = r["two_stage"]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {check if check else '-'} | "
            f"{two['two_stage_ndcg@10']:.4f} | {two['overlap@10']:.3f} |"
        )
    lines += [
        "",
        "Published (the notebook, ModernBERT-embed-base, 768-d): 0.442 before, 0.664 after "
        "4 epochs on a GPU.",
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}.json and .md")


if __name__ == "__main__":
    main()
