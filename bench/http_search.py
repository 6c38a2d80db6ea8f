"""Search latency and throughput over HTTP vs in-process, two-stage vs single-stage (scifact).

1. Ingests the scifact corpus into a reusable data dir (once; ~5 minutes on 2 CPU cores).
2. In-process: `encode_queries` + `store.search` (and the same plus the durable search-log
   write, which is what the service does), one query at a time.
3. Starts `ragctl serve` on 127.0.0.1 and drives it from a separate load-generating process
   (asyncio + httpx) at 1 and 8 concurrent clients, two-stage and single-stage; reports
   p50/p95/p99 latency, requests/s, and the server-side stage means from /metrics.

Every phase is bounded in requests and seconds; the server is killed on exit.

    .venv/bin/python bench/http_search.py --data-dir /tmp/ragctl-bench-scifact \\
        [--requests 400] [--max-seconds 60] [--out bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCIFACT = ROOT.parent / "shared/data/scifact"
COLLECTION = "scifact"
CONCURRENCY = (1, 8)
MODES = ("two_stage", "single_stage")
# Server variants: name -> retriever.query_batch_size.
VARIANTS = (("batched", 32), ("unbatched", 1))


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary_ms(latencies_s: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in latencies_s]
    return {
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "mean_ms": round(sum(ms) / len(ms), 2) if ms else float("nan"),
    }


def load_queries(path: Path, limit: int) -> list[str]:
    queries = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            queries.append(json.loads(line)["text"])
            if len(queries) >= limit:
                break
    return queries


# --- 1. ingest ---------------------------------------------------------------------------
def ensure_ingested(data_dir: Path, corpus: Path, max_seconds: float) -> dict[str, Any]:
    """Ingest the corpus unless the collection already holds it (re-runs are cheap)."""
    from ragctl.core.collections import open_or_create
    from ragctl.core.settings import load_settings
    from ragctl.core.store import open_store
    from ragctl.ingest.pipeline import ingest_paths, make_chunker

    settings = load_settings(data_dir=data_dir, collection=COLLECTION)
    marker = data_dir / f"{COLLECTION}.ingested.json"
    with open_store(settings) as store:
        if marker.is_file() and COLLECTION in store.aliases():
            info = json.loads(marker.read_text())
            info["points"] = store.count(store.resolve(COLLECTION))
            return info
        target = open_or_create(store, settings, COLLECTION)
        chunker = make_chunker(
            target.encoder, settings.chunking.size_tokens, settings.chunking.overlap_tokens
        )
        deadline = time.monotonic() + max_seconds

        def on_progress(report: Any) -> None:
            print(f"  ingest: {report.documents} docs, {report.chunks_written} chunks, "
                  f"{report.seconds:.0f} s", flush=True)  # fmt: skip
            if time.monotonic() > deadline:
                raise SystemExit(f"ingest took longer than {max_seconds:.0f} s; rerun to resume")

        report = ingest_paths([corpus], target, chunker, on_progress=on_progress)
        store.optimize(target.physical)
        info = {"documents": report.documents, "ingest_s": round(report.seconds, 1)}
        marker.write_text(json.dumps(info))
        info["points"] = store.count(target.physical)
        return info


# --- 2. in-process -----------------------------------------------------------------------
def in_process(data_dir: Path, queries: list[str], n: int) -> dict[str, Any]:
    """Sequential latency of encode + store search, and of the service's full search."""
    from ragctl.core.search import SearchParams
    from ragctl.core.settings import load_settings
    from ragctl.retriever.schemas import SearchRequest
    from ragctl.retriever.service import RetrieverService

    settings = load_settings(data_dir=data_dir, collection=COLLECTION)
    if settings.retriever.torch_threads:  # as `ragctl serve` does
        import torch

        torch.set_num_threads(settings.retriever.torch_threads)
    service = RetrieverService.open(settings)
    try:
        serving = service.current()
        for q in queries[:20]:  # warm-up
            service.search(SearchRequest(query=q))
        results: dict[str, Any] = {}
        for mode in MODES:
            single = mode == "single_stage"
            params = SearchParams(k=10, shortlist=100, single_stage=single)
            encode, store, total = [], [], []
            for q in queries[:n]:
                t0 = time.perf_counter()
                vectors = serving.encoder.encode_queries([q])
                t1 = time.perf_counter()
                service.store.search(serving.physical, vectors, params)
                t2 = time.perf_counter()
                encode.append(t1 - t0)
                store.append(t2 - t1)
                total.append(t2 - t0)
            with_log = []
            for q in queries[:n]:
                t0 = time.perf_counter()
                service.search(SearchRequest(query=q, single_stage=single))
                with_log.append(time.perf_counter() - t0)
            results[mode] = {
                "encode_plus_store": summary_ms(total),
                "encode": summary_ms(encode),
                "store": summary_ms(store),
                "service_search_with_log": summary_ms(with_log),
                "requests_per_s_sequential": round(len(total) / sum(total), 1),
                "n": len(total),
            }
        return results
    finally:
        service.close()


# --- 3. over HTTP --------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    data_dir: Path, port: int, log_path: Path, query_batch_size: int
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RAGCTL_COLLECTION": COLLECTION,
        "RAGCTL_RETRIEVER__QUERY_BATCH_SIZE": str(query_batch_size),
    }
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "ragctl", "--data-dir", str(data_dir), "serve", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}; see its log")
        try:
            if httpx.get(f"{url}/v1/ready", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"server not ready after {timeout_s:.0f} s")


async def _drive(
    url: str, queries: list[str], concurrency: int, total: int, max_s: float, single: bool
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors = 0
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        for q in queries[-2 * concurrency :]:  # warm-up: open connections (not counted)
            await client.post("/v1/search", json={"query": q, "single_stage": single})
        deadline = time.monotonic() + max_s

        async def worker() -> None:
            nonlocal issued, errors
            while issued < total and time.monotonic() < deadline:
                q = queries[issued % len(queries)]
                issued += 1
                t0 = time.perf_counter()
                response = await client.post(
                    "/v1/search", json={"query": q, "single_stage": single}
                )
                latencies.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"latencies_s": latencies, "errors": errors, "wall_s": wall}


def _load_process(url: str, queries: list[str], concurrency: int, total: int, max_s: float,
                  single: bool, out: Any) -> None:  # fmt: skip
    out.put(asyncio.run(_drive(url, queries, concurrency, total, max_s, single)))


def run_load(url: str, queries: list[str], concurrency: int, total: int, max_s: float,
             single: bool) -> dict[str, Any]:  # fmt: skip
    """Drive the server from a separate process (so the client does not share our GIL)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(
        target=_load_process, args=(url, queries, concurrency, total, max_s, single, queue)
    )
    proc.start()
    try:
        result = queue.get(timeout=max_s + 120)
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    return dict(result)


def stage_totals(url: str) -> dict[str, tuple[float, float]]:
    """Server-side (sum seconds, count) per search stage, from /metrics."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    found: dict[str, list[float]] = {}
    for kind in ("sum", "count"):
        for stage, value in re.findall(
            rf'^ragctl_search_stage_seconds_{kind}{{stage="(\w+)"}} ([0-9.e+-]+)$', text, re.M
        ):
            found.setdefault(stage, [0.0, 0.0])[0 if kind == "sum" else 1] = float(value)
    return {stage: (s, c) for stage, (s, c) in found.items()}


def _variant_dir(data_dir: Path, name: str) -> Path:
    """A copy of the ingested data dir per server (the embedded store is one process each)."""
    if name == VARIANTS[0][0]:
        return data_dir
    copy = data_dir.with_name(f"{data_dir.name}-{name}")
    marker = data_dir / f"{COLLECTION}.ingested.json"
    if not (copy / marker.name).is_file() or (copy / marker.name).read_text() != marker.read_text():
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns("LOCK", "feedback.db*"))
    return copy


def over_http(data_dir: Path, queries: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Every config on every server variant, interleaved in rounds (same load conditions)."""
    variants = VARIANTS if args.compare_batching else VARIANTS[:1]
    servers: dict[str, tuple[str, subprocess.Popen[bytes]]] = {}
    results: dict[str, dict[str, Any]] = {name: {} for name, _ in variants}
    try:
        for name, batch in variants:
            vdir = _variant_dir(data_dir, name)
            port = _free_port()
            proc = start_server(vdir, port, vdir / "bench-server.log", batch)
            servers[name] = (f"http://127.0.0.1:{port}", proc)
        for url, proc in servers.values():
            wait_ready(url, proc, timeout_s=240)
        for mode in MODES:
            for concurrency in CONCURRENCY:
                total = args.requests if concurrency > 1 else max(args.requests // 2, 50)
                per_round = max(total // args.rounds, concurrency)
                key = f"{mode}@{concurrency}"
                print(f"  http: {key}, {args.rounds} rounds of {per_round} per variant", flush=True)
                acc = {name: {"lat": [], "wall": 0.0, "errors": 0, "before": {}}
                       for name in servers}  # fmt: skip
                for name, (url, _) in servers.items():
                    acc[name]["before"] = stage_totals(url)
                for rnd in range(args.rounds):
                    shift = (rnd * per_round) % len(queries)
                    rotated = queries[shift:] + queries[:shift]
                    order = list(servers) if rnd % 2 == 0 else list(reversed(servers))
                    budget_s = args.max_seconds / args.rounds
                    for name in order:
                        url = servers[name][0]
                        single = mode == "single_stage"
                        r = run_load(url, rotated, concurrency, per_round, budget_s, single)
                        acc[name]["lat"] += r["latencies_s"]
                        acc[name]["wall"] += r["wall_s"]
                        acc[name]["errors"] += r["errors"]
                for name, (url, _) in servers.items():
                    after, before = stage_totals(url), acc[name]["before"]
                    lat, wall = acc[name]["lat"], acc[name]["wall"]
                    results[name][key] = {
                        "requests": len(lat),
                        "errors": acc[name]["errors"],
                        "wall_s": round(wall, 2),
                        "requests_per_s": round(len(lat) / wall, 1) if wall else 0.0,
                        **summary_ms(lat),
                        "server_stage_mean_ms": {
                            stage: round(1000 * (after[stage][0] - before.get(stage, (0, 0))[0])
                                         / max(after[stage][1] - before.get(stage, (0, 0))[1], 1),
                                         2)
                            for stage in after
                        },
                    }  # fmt: skip
                    print(f"    {name}: {json.dumps(results[name][key])}", flush=True)
    finally:
        for _, proc in servers.values():
            proc.send_signal(signal.SIGTERM)
        for _, proc in servers.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return results


def write_results(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "http_search.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Search latency and throughput: HTTP vs in-process",
        "",
        f"`{result['command']}` on {result['machine']}, {result['date']}; {result['model']}; "
        f"corpus {result['corpus']} ({result['ingest']['points']} chunks); k=10, shortlist=100 "
        "(two-stage: 64-d shortlist, 384-d rerank). The load generator is a separate process "
        "(asyncio + httpx) on the same machine, so it competes for the same cores. "
        f"1-minute load average at start/end: {result['load_average_1m']['start']} / "
        f"{result['load_average_1m']['end']} (other work on the machine inflates the numbers).",
        "",
        "## Over HTTP (`ragctl serve`, 1 uvicorn worker, embedded Qdrant Edge, defaults: query "
        "micro-batching on (`retriever.query_batch_size = 32`, 2 encoder threads), "
        "`retriever.torch_threads = 1`)",
        "",
        "| mode | clients | requests | req/s | p50 ms | p95 ms | p99 ms | errors "
        "| server encode / store / log ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for key, r in result["http"].items():
        mode, clients = key.split("@")
        stages = r.get("server_stage_mean_ms", {})
        lines.append(
            f"| {mode} | {clients} | {r['requests']} | {r['requests_per_s']} | {r['p50_ms']} | "
            f"{r['p95_ms']} | {r['p99_ms']} | {r['errors']} | "
            f"{stages.get('encode', '-')} / {stages.get('store', '-')} / {stages.get('log', '-')} |"
        )
    if result.get("http_without_query_batching"):
        lines += [
            "",
            "Same, with query micro-batching off (`retriever.query_batch_size = 1`: every request "
            "encodes its query in its own thread). Measured interleaved with the table above: "
            "two servers on copies of the data dir, rounds alternating between them, so both "
            "see the same machine load:",
            "",
            "| mode | clients | requests | req/s | p50 ms | p95 ms | p99 ms | errors "
            "| server encode / store / log ms |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for key, r in result["http_without_query_batching"].items():
            mode, clients = key.split("@")
            stages = r.get("server_stage_mean_ms", {})
            lines.append(
                f"| {mode} | {clients} | {r['requests']} | {r['requests_per_s']} | "
                f"{r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | {r['errors']} | "
                f"{stages.get('encode', '-')} / {stages.get('store', '-')} / "
                f"{stages.get('log', '-')} |"
            )
    lines += [
        "",
        "## In-process (same process, one query at a time)",
        "",
        "| mode | encode+store p50 ms | p95 ms | encode p50 | store p50 "
        "| service.search (+ log) p50 | p95 | req/s |",
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for mode, r in result["in_process"].items():
        lines.append(
            f"| {mode} | {r['encode_plus_store']['p50_ms']} | {r['encode_plus_store']['p95_ms']} | "
            f"{r['encode']['p50_ms']} | {r['store']['p50_ms']} | "
            f"{r['service_search_with_log']['p50_ms']} | "
            f"{r['service_search_with_log']['p95_ms']} | {r['requests_per_s_sequential']} |"
        )
    # HTTP + framework + thread hand-off cost, from the same requests: client-side mean latency
    # minus the server-side stage means (encode + store + log) at 1 client.
    overhead: dict[str, float] = {}
    for name, table in (("batched", result["http"]), ("unbatched", result.get(
            "http_without_query_batching") or {})):  # fmt: skip
        for mode in MODES:
            r = table.get(f"{mode}@1")
            if r:
                stages = sum(r["server_stage_mean_ms"].values())
                overhead[f"{name}:{mode}"] = round(r["mean_ms"] - stages, 2)
    result["http_overhead_mean_ms_at_1_client"] = overhead
    lines += [
        "",
        "HTTP overhead at 1 client (client mean latency - server-side encode+store+log means, "
        "same requests): " + ", ".join(f"{k} {v} ms" for k, v in overhead.items()) + ". "
        "In-process and HTTP rows were measured minutes apart, so compare them loosely; the "
        "two HTTP tables were interleaved.",
        "",
    ]
    (out / "http_search.md").write_text("\n".join(lines))
    (out / "http_search.json").write_text(json.dumps(result, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/ragctl-bench-scifact"))
    parser.add_argument("--corpus", type=Path, default=SCIFACT / "corpus.jsonl")
    parser.add_argument("--queries", type=Path, default=SCIFACT / "queries.jsonl")
    parser.add_argument(
        "--requests", type=int, default=400, help="requests per HTTP config (8 clients)"
    )
    parser.add_argument("--in-process", type=int, default=200, help="queries per in-process mode")
    parser.add_argument(
        "--max-seconds", type=float, default=60, help="cap per HTTP config and server variant"
    )
    parser.add_argument(
        "--rounds", type=int, default=4, help="interleaved rounds per HTTP config (A/B fairness)"
    )
    parser.add_argument("--max-ingest-seconds", type=float, default=1200)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    parser.add_argument("--ingest-only", action="store_true", help="prepare the data dir and stop")
    parser.add_argument(
        "--compare-batching",
        action="store_true",
        help="also run the HTTP configs with query micro-batching off (query_batch_size=1)",
    )
    args = parser.parse_args()
    if not args.corpus.is_file():
        sys.exit(f"corpus not found: {args.corpus} (the shared datasets live next to the repo)")

    queries = load_queries(args.queries, 1000)
    load_start = round(os.getloadavg()[0], 2)
    print(f"ingest (reused when done) into {args.data_dir}", flush=True)
    ingest = ensure_ingested(args.data_dir, args.corpus, args.max_ingest_seconds)
    print(f"  {ingest}", flush=True)
    if args.ingest_only:
        return
    print("in-process", flush=True)
    local = in_process(args.data_dir, queries, args.in_process)
    print(json.dumps(local, indent=2), flush=True)
    print("over HTTP", flush=True)
    variants = over_http(args.data_dir, queries, args)
    http = variants["batched"]
    unbatched = variants.get("unbatched", {})
    result = {
        "corpus": "scifact (../shared/data/scifact/corpus.jsonl)",
        "ingest": ingest,
        "in_process": local,
        "http": http,
        "http_without_query_batching": unbatched,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "load_average_1m": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
        "model": "all-MiniLM-L6-v2 (packaged), CPU",
        "command": "python bench/http_search.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
    }
    write_results(result, args.out)
    print((args.out / "http_search.md").read_text())


if __name__ == "__main__":
    main()
