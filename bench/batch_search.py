"""Batch search vs one request per query, over HTTP with ragctl.client, and the cost of a
documents page as a collection grows.

1. A real retriever (uvicorn in this process, the packaged all-MiniLM-L6-v2, dense mode) serves
   the examples/ corpus; the 40 queries of examples/queries.jsonl are sent (a) one
   `Client.search` each, (b) as one `Client.search_batch`, (c) as batches of 10. Each way runs
   `--rounds` times; the medians are reported, and the top result of every query is checked to
   be the same each way.
2. `GET /v1/documents` scrolls the payloads of the matching chunks on every page: the time of
   `VectorStore.documents` on an embedded store with 2,000 and 20,000 chunks (random vectors;
   only payloads are read), all documents and a prefix.

    .venv/bin/python bench/batch_search.py [--rounds 5] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_batches(rounds: int) -> dict[str, Any]:
    import uvicorn

    from ragctl.client import Client
    from ragctl.core.settings import load_settings
    from ragctl.ingest.loaders import Skipped, iter_documents
    from ragctl.retriever.app import create_app
    from ragctl.retriever.server import build_config

    queries = [
        json.loads(line)["text"]
        for line in (ROOT / "examples" / "queries.jsonl").read_text().splitlines()
        if line.strip()
    ]
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            data_dir=Path(tmp) / "data", retriever={"port": _free_port()}, search={"mode": "dense"}
        )
        server = uvicorn.Server(build_config(settings, app=create_app(settings), log_level="error"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{settings.retriever.port}"
        try:
            with Client(url, timeout_s=600) as client:
                documents = [
                    {"id": d.doc_id, "text": d.text, "metadata": d.metadata, "source": d.source}
                    for d in iter_documents([ROOT / "examples" / "corpus"], base_dir=ROOT)
                    if not isinstance(d, Skipped)
                ]
                written = client.upsert_documents(documents)
                client.search_batch(queries[:4], k=5)  # warm up

                def singles() -> list[str]:
                    return [client.search(q, k=5).results[0].chunk_id for q in queries]

                def one_batch() -> list[str]:
                    batch = client.search_batch(queries, k=5)
                    return [s.results[0].chunk_id for s in batch.searches]

                def batches_of_10() -> list[str]:
                    tops = []
                    for start in range(0, len(queries), 10):
                        batch = client.search_batch(queries[start : start + 10], k=5)
                        tops += [s.results[0].chunk_id for s in batch.searches]
                    return tops

                ways = {"one request per query": singles, "one batch of 40": one_batch,
                        "batches of 10": batches_of_10}  # fmt: skip
                times: dict[str, list[float]] = {name: [] for name in ways}
                tops: dict[str, list[str]] = {}
                for _ in range(rounds):
                    for name, run in ways.items():
                        started = time.perf_counter()
                        tops[name] = run()
                        times[name].append(time.perf_counter() - started)
        finally:
            server.should_exit = True
            thread.join(60)
    same_tops = len({tuple(t) for t in tops.values()}) == 1
    return {
        "queries": len(queries),
        "chunks": written.chunks_written,
        "rounds": rounds,
        "same_top_results": same_tops,
        "median_s": {name: round(statistics.median(t), 4) for name, t in times.items()},
        "queries_per_s": {
            name: round(len(queries) / statistics.median(t), 1) for name, t in times.items()
        },
    }


def documents_pages() -> list[dict[str, Any]]:
    import numpy as np

    from ragctl.core.encoder import Embeddings
    from ragctl.core.ids import chunk_id
    from ragctl.core.matryoshka import normalize, truncate
    from ragctl.core.records import Chunk
    from ragctl.core.store.base import CollectionSpec
    from ragctl.core.store.edge import EdgeStore

    found = []
    rng = np.random.default_rng(0)
    for n_docs in (200, 2000):
        with tempfile.TemporaryDirectory() as tmp:
            store = EdgeStore(Path(tmp))
            spec = CollectionSpec("t", 1, "m", 64, (16,))
            store.create_collection(spec)
            for start in range(0, n_docs, 200):
                chunks = [
                    Chunk(chunk_id(f"doc{d:05d}", i, "x"), f"doc{d:05d}", i, "some text " * 50,
                          0, 500, f"doc{d:05d}.md", {"year": 2000 + d % 25})
                    for d in range(start, start + 200)
                    for i in range(10)
                ]  # fmt: skip
                full = normalize(rng.normal(size=(len(chunks), 64)).astype(np.float32))
                store.upsert(spec.physical, chunks, Embeddings(full, {16: truncate(full, 16)}))
            for label, kwargs in (("all", {}), ("prefix doc0001", {"prefix": "doc0001"})):
                runs = []
                for _ in range(3):
                    started = time.perf_counter()
                    listed = store.documents(spec.physical, **kwargs)
                    runs.append(time.perf_counter() - started)
                found.append({"chunks": n_docs * 10, "documents": len(listed), "listing": label,
                              "median_ms": round(statistics.median(runs) * 1000, 1)})  # fmt: skip
            store.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs (shared)"
    result = {
        "bench": "batch_search",
        "machine": f"{machine}, Python {platform.python_version()}",
        "http": http_batches(args.rounds),
        "documents_page": documents_pages(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "batch_search.json").write_text(json.dumps(result, indent=2) + "\n")
    http = result["http"]
    lines = [
        "# Batch search vs one request per query; the cost of a documents page",
        "",
        f"`python bench/batch_search.py --rounds {args.rounds}` on {result['machine']}.",
        "",
        f"{http['queries']} queries (examples/queries.jsonl) over HTTP with `ragctl.client`, "
        f"dense search, k=5, {http['chunks']} chunks (examples/corpus), all-MiniLM-L6-v2 on "
        f"CPU; median of {http['rounds']} rounds. Same top result every way: "
        f"{http['same_top_results']}.",
        "",
        "| way | seconds for all queries | queries/s |",
        "|---|---|---|",
        *(
            f"| {name} | {secs} | {http['queries_per_s'][name]} |"
            for name, secs in http["median_s"].items()
        ),
        "",
        "`VectorStore.documents` (what each `GET /v1/documents` page reads: one payload scroll "
        "of the matching chunks), embedded Qdrant Edge, 10 chunks per document:",
        "",
        "| chunks | listing | documents | median ms |",
        "|---|---|---|---|",
        *(
            f"| {r['chunks']} | {r['listing']} | {r['documents']} | {r['median_ms']} |"
            for r in result["documents_page"]
        ),
        "",
    ]
    (args.out / "batch_search.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
