"""Two-stage (64-d shortlist -> full rerank) vs single-stage search on a real corpus.

Ingests a BEIR corpus into a fresh embedded store (or reuses one with --data-dir), runs the
dataset's queries through both paths, and records how far the top 10 agree and what each
costs in-process. Issue 2's check: two-stage top 10 agrees with single-stage on most queries.

    .venv/bin/python bench/two_stage_agreement.py [--dataset ../shared/data/scifact]
        [--split test] [--shortlists 50,100,200,500] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _queries(dataset: Path, split: str) -> list[str]:
    wanted = set()
    with (dataset / "qrels" / f"{split}.tsv").open() as handle:
        next(handle)
        for line in handle:
            wanted.add(line.split("\t")[0])
    texts = []
    with (dataset / "queries.jsonl").open() as handle:
        for line in handle:
            record = json.loads(line)
            if record["_id"] in wanted:
                texts.append(record["text"])
    return texts


def main() -> None:
    from ragctl.core.collections import open_or_create
    from ragctl.core.search import SearchParams
    from ragctl.core.settings import load_settings
    from ragctl.core.store.edge import EdgeStore
    from ragctl.ingest.loaders import iter_documents
    from ragctl.ingest.pipeline import ingest_documents, make_chunker

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/scifact")
    parser.add_argument("--split", default="test")
    parser.add_argument("--shortlists", default="50,100,200,500")
    parser.add_argument("--data-dir", type=Path, help="reuse (or keep) the store here")
    parser.add_argument("--collection", default="agreement", help="collection (reused if there)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    args = parser.parse_args()
    if not (args.dataset / "corpus.jsonl").is_file():
        sys.exit(f"dataset not found: {args.dataset} (the shared datasets live next to the repo)")

    tmp = None if args.data_dir else tempfile.TemporaryDirectory()
    data_dir = args.data_dir or Path(tmp.name)  # type: ignore[union-attr]
    settings = load_settings(data_dir=data_dir)
    store = EdgeStore(settings.qdrant_path)
    target = open_or_create(store, settings, args.collection)
    spec, encoder = target.spec, target.encoder
    chunker = make_chunker(encoder, settings.chunking.size_tokens, settings.chunking.overlap_tokens)
    report = ingest_documents(iter_documents([args.dataset / "corpus.jsonl"]), target, chunker)
    print(
        f"ingest: {report.documents} docs, {report.chunks_written} chunks, {report.seconds:.0f} s",
        flush=True,
    )
    points = store.count(spec.physical)
    queries = _queries(args.dataset, args.split)
    vectors = encoder.encode_queries(queries)

    def run(params: SearchParams) -> tuple[list[list[str]], float]:
        ids, times = [], []
        for row in range(len(queries)):
            one = vectors.embeddings_slice(slice(row, row + 1))
            t0 = time.perf_counter()
            hits = store.search(spec.physical, one, params)
            times.append((time.perf_counter() - t0) * 1000)
            ids.append([h.chunk_id for h in hits])
        return ids, statistics.median(times)

    single, single_ms = run(SearchParams(k=10, shortlist=100, single_stage=True))
    rows = []
    for shortlist in [int(s) for s in args.shortlists.split(",")]:
        two, two_ms = run(SearchParams(k=10, shortlist=shortlist))
        overlap = [len(set(a) & set(b)) / 10 for a, b in zip(two, single, strict=True)]
        rows.append(
            {
                "shortlist": shortlist,
                "mean_overlap_at_10": round(statistics.mean(overlap), 4),
                "identical_top10_sets": round(sum(o == 1.0 for o in overlap) / len(overlap), 4),
                "same_top1": round(
                    sum(a[:1] == b[:1] for a, b in zip(two, single, strict=True)) / len(two), 4
                ),
                "queries_with_overlap_ge_0.8": round(
                    sum(o >= 0.8 for o in overlap) / len(overlap), 4
                ),
                "median_ms": round(two_ms, 3),
            }
        )
        print(rows[-1], flush=True)
    store.close()
    result = {
        "dataset": args.dataset.name,
        "split": args.split,
        "queries": len(queries),
        "points": points,
        "single_stage_median_ms": round(single_ms, 3),
        "two_stage": rows,
        "note": "HNSW where the store was optimized; all-MiniLM-L6-v2 is not Matryoshka-trained",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "command": "python bench/two_stage_agreement.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "two_stage_agreement.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Two-stage vs single-stage top 10",
        "",
        f"`{result['command']}` on {result['machine']}, {result['date']}: {args.dataset.name} "
        f"({points} chunks), {len(queries)} {args.split} queries, base all-MiniLM-L6-v2, "
        f"64-d shortlist then 384-d rerank, embedded Qdrant Edge "
        "(HNSW where the store was optimized).",
        "",
        "| shortlist | mean overlap@10 | identical top-10 sets | same top-1 "
        "| queries with overlap >= 0.8 | median ms |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['shortlist']} | {r['mean_overlap_at_10']:.3f} | {r['identical_top10_sets']:.1%} | "
        f"{r['same_top1']:.1%} | {r['queries_with_overlap_ge_0.8']:.1%} | {r['median_ms']} |"
        for r in rows
    ]
    lines += ["", f"Single-stage median: {result['single_stage_median_ms']} ms.", ""]
    (args.out / "two_stage_agreement.md").write_text("\n".join(lines))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
