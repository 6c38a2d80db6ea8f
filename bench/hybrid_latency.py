"""Issue 7: latency of hybrid vs dense two-stage (and sparse) at 100k chunks, in-process and
over HTTP, on the embedded Qdrant Edge store with HNSW built.

1. Builds (once) a store of N chunks under --data-dir: texts are 40-word windows (stride 10)
   over the scifact corpus, cycled until N; lexical (BM25) vectors from those texts; dense
   vectors are random unit vectors (384 + mrl_64) -- embedding 100k texts takes ~40 min on
   this CPU, and random vectors are a harder case for HNSW than real ones, so dense latency
   here is, if anything, pessimistic. Then HNSW is built (`optimize`).
2. In-process, one query at a time over scifact test queries, the three modes interleaved per
   query in a rotating order (so machine drift and cold index pages hit them alike): the
   store query alone (query vectors encoded beforehand) and the whole search (encode + store).
3. Over HTTP: `ragctl serve` on 127.0.0.1, one client, the same queries, modes interleaved.

    .venv/bin/python bench/hybrid_latency.py --data-dir /tmp/ragctl-bench-100k [--points 100000]
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
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
SCIFACT = ROOT.parent / "shared/data/scifact"
COLLECTION = "hybrid100k"
MODES = ("dense", "sparse", "hybrid")


def rotated(i: int) -> tuple[str, ...]:
    """The modes in a different order for each query: the first query of a text pays the cold
    index pages, so no mode may always go first."""
    return MODES[i % 3 :] + MODES[: i % 3]


def windows(limit: int, width: int = 40, stride: int = 10) -> list[str]:
    docs = [json.loads(line) for line in (SCIFACT / "corpus.jsonl").open()]
    texts: list[str] = []
    while len(texts) < limit:
        for doc in docs:
            words = f"{doc.get('title', '')} {doc['text']}".split()
            for start in range(0, max(1, len(words) - width + 1), stride):
                texts.append(" ".join(words[start : start + width]) + f" [{len(texts)}]")
                if len(texts) == limit:
                    return texts
    return texts


def build(data_dir: Path, points: int) -> dict[str, Any]:
    import numpy as np

    from ragctl.core.encoder import Embeddings
    from ragctl.core.ids import chunk_id
    from ragctl.core.lexical import LexicalSpec
    from ragctl.core.matryoshka import truncate
    from ragctl.core.records import Chunk
    from ragctl.core.registry import ModelRegistry
    from ragctl.core.settings import load_settings
    from ragctl.core.store.base import CollectionSpec
    from ragctl.core.store.edge import EdgeStore

    settings = load_settings(data_dir=data_dir, collection=COLLECTION)
    marker = data_dir / "built.json"
    if marker.exists():
        return dict(json.loads(marker.read_text()))
    registry = ModelRegistry(data_dir)
    version = registry.ensure_base("default").version
    spec = CollectionSpec(COLLECTION, version, "default", 384, (64,), lexical=LexicalSpec())
    store = EdgeStore(settings.qdrant_path)
    store.create_collection(spec)
    rng = np.random.default_rng(0)
    texts = windows(points)
    started = time.perf_counter()
    for start in range(0, points, 1000):
        part = texts[start : start + 1000]
        full = rng.normal(size=(len(part), 384)).astype(np.float32)
        full /= np.linalg.norm(full, axis=1, keepdims=True)
        chunks = [
            Chunk(chunk_id(f"w{start + i}", 0, t), f"w{start + i}", 0, t, 0, len(t), "scifact", {})
            for i, t in enumerate(part)
        ]
        store.upsert(spec.physical, chunks, Embeddings(full, {64: truncate(full, 64)}))
    upsert_s = time.perf_counter() - started
    started = time.perf_counter()
    store.optimize(spec.physical)
    optimize_s = time.perf_counter() - started
    store.set_alias(COLLECTION, spec.physical)
    registry.mark_serving(COLLECTION, version)
    count = store.count(spec.physical)
    store.close()
    info = {"points": count, "upsert_s": round(upsert_s, 1), "optimize_s": round(optimize_s, 1)}
    marker.write_text(json.dumps(info))
    return info


def in_process(data_dir: Path, queries: list[str]) -> dict[str, Any]:
    from http_search import summary_ms

    from ragctl.core.collections import encoder_for
    from ragctl.core.profile import settings_fusion
    from ragctl.core.search import SearchParams
    from ragctl.core.settings import load_settings
    from ragctl.core.store.edge import EdgeStore

    settings = load_settings(data_dir=data_dir, collection=COLLECTION)
    store = EdgeStore(settings.qdrant_path)
    physical = store.resolve(COLLECTION)
    encoder = encoder_for(store.spec(physical), settings)
    fusion = settings_fusion(settings)
    params = {m: SearchParams(k=10, shortlist=100, mode=m, fusion=fusion) for m in MODES}
    vectors = encoder.encode_queries(queries)
    for i, text in enumerate(queries[:10]):  # warm-up
        row = vectors.embeddings_slice(slice(i, i + 1))
        for mode in MODES:
            store.search(physical, row, params[mode], text=text)
    store_s: dict[str, list[float]] = {mode: [] for mode in MODES}
    total_s: dict[str, list[float]] = {mode: [] for mode in MODES}
    for i, text in enumerate(queries):  # modes interleaved per query: drift hits all alike
        row = vectors.embeddings_slice(slice(i, i + 1))
        for mode in rotated(i):
            t0 = time.perf_counter()
            store.search(physical, row, params[mode], text=text)
            store_s[mode].append(time.perf_counter() - t0)
        for mode in rotated(i):
            t0 = time.perf_counter()
            fresh = None if mode == "sparse" else encoder.encode_queries([text])
            store.search(physical, fresh, params[mode], text=text)
            total_s[mode].append(time.perf_counter() - t0)
    result = {
        mode: {"store_query_ms": summary_ms(store_s[mode]), "search_ms": summary_ms(total_s[mode])}
        for mode in MODES
    }
    print(json.dumps(result), flush=True)
    store.close()
    return result


def over_http(data_dir: Path, queries: list[str], log: Path) -> dict[str, Any]:
    import httpx
    from http_search import _free_port, start_server, summary_ms, wait_ready

    os.environ["RAGCTL_COLLECTION"] = COLLECTION
    import http_search

    http_search.COLLECTION = COLLECTION
    port = _free_port()
    proc = start_server(data_dir, port, log, query_batch_size=32)
    url = f"http://127.0.0.1:{port}"
    result: dict[str, Any] = {}
    try:
        wait_ready(url, proc, 300)
        with httpx.Client(base_url=url, timeout=60) as client:
            for q in queries[:10]:  # warm-up
                for mode in MODES:
                    client.post("/v1/search", json={"query": q, "mode": mode})
            latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
            errors = dict.fromkeys(MODES, 0)
            for i, q in enumerate(queries):  # modes interleaved per query
                for mode in rotated(i):
                    t0 = time.perf_counter()
                    response = client.post("/v1/search", json={"query": q, "mode": mode})
                    latencies[mode].append(time.perf_counter() - t0)
                    ok = response.status_code == 200 and response.json()["mode"] == mode
                    errors[mode] += not ok
        result = {
            mode: {"http_ms": summary_ms(latencies[mode]), "errors": errors[mode]} for mode in MODES
        }
        print(json.dumps(result), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    args = parser.parse_args()
    if not SCIFACT.is_dir():
        sys.exit(f"dataset not found: {SCIFACT}")
    built = build(args.data_dir, args.points)
    print("store:", built, flush=True)
    queries = [json.loads(line)["text"] for line in (SCIFACT / "queries.jsonl").open()]
    queries = queries[: args.queries]
    local = in_process(args.data_dir, queries)
    http = over_http(args.data_dir, queries, args.data_dir / "server.log")
    out = {
        "command": "python bench/hybrid_latency.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "date": time.strftime("%Y-%m-%d"),
        "store": built,
        "queries": len(queries),
        "in_process": local,
        "http": http,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hybrid_latency.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        f"# Search latency by mode at {built['points']:,} chunks (Qdrant Edge, HNSW built)",
        "",
        f"`{out['command']}` on {out['machine']}, {out['date']}; {len(queries)} scifact test "
        "queries one at a time; k=10, shortlist 100, hybrid = the default fusion (DBSF, "
        "dense 1 : sparse 2, 100 candidates per branch). Dense vectors are random (see the "
        "script's docstring).",
        "",
        "| mode | store query p50 / p95 ms | encode + store p50 / p95 ms | HTTP p50 / p95 ms |",
        "|---|---|---|---|",
    ]
    for mode in MODES:
        s, t, h = local[mode]["store_query_ms"], local[mode]["search_ms"], http[mode]["http_ms"]
        lines.append(
            f"| {mode} | {s['p50_ms']:.2f} / {s['p95_ms']:.2f} | "
            f"{t['p50_ms']:.1f} / {t['p95_ms']:.1f} | {h['p50_ms']:.1f} / {h['p95_ms']:.1f} |"
        )
    dense_p50 = local["dense"]["store_query_ms"]["p50_ms"]
    ratio = local["hybrid"]["store_query_ms"]["p50_ms"] / dense_p50
    http_ratio = http["hybrid"]["http_ms"]["p50_ms"] / http["dense"]["http_ms"]["p50_ms"]
    lines += [
        "",
        f"Hybrid / dense, same run: store query p50 x{ratio:.2f}, HTTP p50 x{http_ratio:.2f}.",
        f"Store: upsert {built['upsert_s']} s, HNSW build {built['optimize_s']} s.",
    ]
    (args.out / "hybrid_latency.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
