"""Ingest throughput vs raw `model.encode` on the same chunks, measured in one run.

Goal (issue 2): ingest overhead beyond encoding (loading, chunking, id lookups, upserts)
stays under 15%. Raw encoding runs before and after the ingest and the mean is used, so
drift of a noisy machine is split between both sides.

    .venv/bin/python bench/ingest_throughput.py [--corpus ../shared/data/scifact/corpus.jsonl]
        [--limit N] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from ragctl.core.collections import open_or_create
    from ragctl.core.encoder import SentenceTransformerEncoder
    from ragctl.core.settings import load_settings
    from ragctl.core.store.edge import EdgeStore
    from ragctl.ingest.loaders import Document, iter_documents
    from ragctl.ingest.pipeline import ingest_documents, make_chunker

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--corpus", type=Path, default=ROOT.parent / "shared/data/scifact/corpus.jsonl"
    )
    parser.add_argument("--limit", type=int, default=0, help="only the first N documents (0 = all)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    args = parser.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"corpus not found: {args.corpus} (the shared datasets live next to the repo)")

    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp))
        encoder = SentenceTransformerEncoder.load(settings.model, settings.store.shortlist_dims)
        chunker = make_chunker(
            encoder, settings.chunking.size_tokens, settings.chunking.overlap_tokens
        )
        docs = [d for d in iter_documents([args.corpus]) if isinstance(d, Document)]
        if args.limit:
            docs = docs[: args.limit]
        started = time.perf_counter()
        texts = [c.text for d in docs for c in chunker.chunk(d)]
        chunk_s = time.perf_counter() - started
        print(
            f"{len(docs)} documents -> {len(texts)} chunks (chunking {chunk_s:.1f} s)", flush=True
        )

        def raw_encode() -> float:
            t0 = time.perf_counter()
            encoder.model.encode(texts, batch_size=settings.model.batch_size, convert_to_numpy=True)
            return time.perf_counter() - t0

        encoder.model.encode(texts[:64])  # warm-up
        raw_before = raw_encode()
        print(f"raw encode: {raw_before:.1f} s", flush=True)
        store = EdgeStore(settings.qdrant_path)
        target = open_or_create(store, settings, "bench", encoder=encoder)
        report = ingest_documents(docs, target, chunker)
        points = store.count(target.physical)
        again = ingest_documents(docs, target, chunker)
        store.close()
        print(
            f"ingest: {report.seconds:.1f} s; re-ingest (unchanged): {again.seconds:.1f} s",
            flush=True,
        )
        raw_after = raw_encode()
        print(f"raw encode: {raw_after:.1f} s", flush=True)

    raw = (raw_before + raw_after) / 2
    result = {
        "corpus": str(args.corpus.relative_to(ROOT.parent))
        if args.corpus.is_relative_to(ROOT.parent)
        else str(args.corpus),
        "documents": len(docs),
        "chunks": len(texts),
        "points_stored": points,
        "raw_encode_s": [round(raw_before, 2), round(raw_after, 2)],
        "ingest_s": round(report.seconds, 2),
        "ingest_encode_s": round(report.encode_seconds, 2),
        "reingest_unchanged_s": round(again.seconds, 2),
        "reingest_chunks_written": again.chunks_written,
        "raw_encode_chunks_per_s": round(len(texts) / raw, 1),
        "ingest_chunks_per_s": round(report.chunks_written / report.seconds, 1),
        "overhead_vs_raw_encode": round(report.seconds / raw - 1, 4),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "model": "all-MiniLM-L6-v2 (packaged), chunk 256 tokens, overlap 32, batch 64",
        "command": "python bench/ingest_throughput.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ingest_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "ingest_throughput.md").write_text(
        "# Ingest throughput vs raw encoding\n\n"
        f"`{result['command']}` on {result['machine']}, {result['date']}; {result['model']}.\n\n"
        "| corpus | docs | chunks | raw encode chunks/s | ingest chunks/s | overhead "
        "| re-ingest (unchanged) |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| {result['corpus']} | {len(docs)} | {len(texts)} "
        f"| {result['raw_encode_chunks_per_s']} | "
        f"{result['ingest_chunks_per_s']} | {result['overhead_vs_raw_encode']:+.1%} | "
        f"{result['reingest_unchanged_s']} s, {again.chunks_written} written |\n\n"
        "Overhead = ingest wall time / mean raw `model.encode` time on the same chunk texts - 1. "
        "Ingest includes loading, chunking, id lookups, encoding in calls of up to 2,048 chunks "
        "and upserts into the embedded Qdrant Edge store.\n"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
