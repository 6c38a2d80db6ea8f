"""HTTP search throughput per encoder backend and server setting, and where the time goes.

1. A data dir with the examples' corpus ingested (ONNX fp32) and the packaged model's export
   (--onnx-dir, linked where the data dir keeps it; exported first when not given).
2. Per server variant (backend x query micro-batching setting), `ragctl serve` alone on the
   machine, ready, warmed up; then dense searches from a separate load process (asyncio on raw
   keep-alive sockets: the lightest client we can write, since it shares the 2 cores) at 1, 8
   and 32 concurrent clients: requests/s, p50/p95 latency, and from the server's /metrics the
   mean time per search stage (queue for the encoder, encode, store, log), the rest of the
   request (HTTP, JSON, validation), the mean micro-batch size, and CPU seconds per request of
   the server and of the load process.
3. Rounds alternate the variants' order, so slow drift of the machine hits every variant alike.

    .venv/bin/python bench/serve_backends.py [--onnx-dir DIR] [--requests 400] [--rounds 2]
        [--variants default] [--out bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from http_search import wait_ready  # noqa: E402
from onnx_commands import machine_info  # noqa: E402

CLIENTS = (1, 8, 32)
# name -> environment of `ragctl serve` (settings as RAGCTL_* variables).
VARIANTS: dict[str, dict[str, str]] = {
    "torch": {"RAGCTL_MODEL__BACKEND": "torch"},
    "onnx": {"RAGCTL_MODEL__BACKEND": "onnx"},
    "onnx-int8": {"RAGCTL_MODEL__BACKEND": "onnx-int8"},
    # Tuning candidates for the fast encoder (retriever.* settings).
    "onnx 1 encoder thread": {
        "RAGCTL_MODEL__BACKEND": "onnx",
        "RAGCTL_RETRIEVER__QUERY_ENCODER_THREADS": "1",
    },
    "onnx 1 encoder thread x 2 intra-op": {
        "RAGCTL_MODEL__BACKEND": "onnx",
        "RAGCTL_RETRIEVER__QUERY_ENCODER_THREADS": "1",
        "RAGCTL_RETRIEVER__TORCH_THREADS": "2",
    },
    "onnx unbatched": {
        "RAGCTL_MODEL__BACKEND": "onnx",
        "RAGCTL_RETRIEVER__QUERY_BATCH_SIZE": "1",
    },
}
DEFAULT_VARIANTS = "torch,onnx,onnx-int8"
STAGES = ("queue", "encode", "store", "log")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCTL_")}
    env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", **extra)
    return env


def prepare(onnx_dir: Path | None, work: Path) -> tuple[Path, dict[str, Any]]:
    """The data dir (examples' corpus ingested on ONNX fp32) and how its export was made."""
    from ragctl.core.onnx_exports import export_dir

    data_dir = work / "data"
    target = export_dir("default", data_dir)
    assert target is not None
    target.parent.mkdir(parents=True)
    if onnx_dir is None:
        from ragctl.core.encoder import resolve_model
        from ragctl.core.onnx_export import export_onnx

        export = export_onnx(resolve_model("default"), target)
        made: dict[str, Any] = {"exported_s": round(export.seconds, 1)}
    else:
        target.symlink_to(onnx_dir.resolve(), target_is_directory=True)
        made = {"onnx_dir": str(onnx_dir)}
    subprocess.run(
        [sys.executable, "-m", "ragctl", "--data-dir", str(data_dir), "ingest",
         str(ROOT / "examples" / "corpus")],
        check=True, env=_env({"RAGCTL_MODEL__BACKEND": "onnx"}), capture_output=True,
    )  # fmt: skip
    return data_dir, made


# --- the load process ----------------------------------------------------------------------
async def _drive(port: int, queries: list[str], clients: int, total: int) -> dict[str, Any]:
    """`total` searches from `clients` keep-alive connections; latencies and errors."""
    latencies: list[float] = []
    errors = 0
    issued = 0

    def request(query: str) -> bytes:
        body = json.dumps({"query": query, "mode": "dense"}).encode()
        head = (
            f"POST /v1/search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, q: str) -> int:
        writer.write(request(q))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
        return status

    async def client() -> None:
        nonlocal issued, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await one(reader, writer, queries[0])  # connection warm (not counted)
        while issued < total:
            q = queries[issued % len(queries)]
            issued += 1
            started = time.perf_counter()
            status = await one(reader, writer, q)
            latencies.append(time.perf_counter() - started)
            errors += status != 200
        writer.close()

    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return {
        "latencies_s": latencies,
        "errors": errors,
        "wall_s": time.perf_counter() - started,
        "load_cpu_s": time.process_time() - cpu,
    }


def _load_main(port: int, queries: list[str], clients: int, total: int, out: Any) -> None:
    out.put(asyncio.run(_drive(port, queries, clients, total)))


def run_load(port: int, queries: list[str], clients: int, total: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=_load_main, args=(port, queries, clients, total, results))
    proc.start()
    try:
        return dict(results.get(timeout=900))
    finally:
        proc.join(timeout=30)


# --- the server ----------------------------------------------------------------------------
class Server:
    def __init__(self, name: str, data_dir: Path, log: Path) -> None:
        self.name = name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ragctl", "--data-dir", str(data_dir), "serve", "--port",
             str(self.port), "--log-level", "warning"],
            env=_env(VARIANTS[name]), stdout=log.open("ab"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    def wait_ready(self, timeout_s: float = 300) -> None:
        wait_ready(self.url, self.proc, timeout_s)

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def counters(self) -> dict[str, float]:
        """Sums and counts from /metrics: stages, search requests, batch sizes; and CPU."""
        import httpx

        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        found: dict[str, float] = {"cpu_s": self.cpu_s()}
        for kind, stage, value in re.findall(
            r'^ragctl_search_stage_seconds_(sum|count)\{collection="\w+",stage="(\w+)"\} (\S+)$',
            text,
            re.M,
        ):
            found[f"{stage}_{kind}"] = float(value)
        for kind, value in re.findall(
            r'^ragctl_http_request_duration_seconds_(sum|count)\{method="POST",'
            r'route="/v1/search"\} (\S+)$',
            text,
            re.M,
        ):
            found[f"request_{kind}"] = float(value)
        for kind, value in re.findall(
            r'^ragctl_query_encode_batch_size_(sum|count)\{collection="\w+"\} (\S+)$', text, re.M
        ):
            found[f"batch_{kind}"] = float(value)
        return found

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def measure(
    names: list[str], data_dir: Path, queries: list[str], requests: int, rounds: int, work: Path
) -> dict[str, dict[str, Any]]:
    """Each variant's server alone on the machine, clients levels in rounds."""
    raw: dict[str, dict[int, dict[str, Any]]] = {
        n: {c: {"lat": [], "wall": 0.0, "errors": 0, "load_cpu": 0.0, "delta": {}} for c in CLIENTS}
        for n in names
    }
    for rnd in range(rounds):
        order = names if rnd % 2 == 0 else list(reversed(names))
        for name in order:
            server = Server(name, data_dir, work / f"server-{len(raw)}.log")
            try:
                server.wait_ready()
                run_load(server.port, queries, 8, 64)  # warm-up: threads, caches, arenas
                for clients in CLIENTS:
                    before = server.counters()
                    r = run_load(server.port, queries, clients, max(requests // rounds, clients))
                    after = server.counters()
                    acc = raw[name][clients]
                    acc["lat"] += r["latencies_s"]
                    acc["wall"] += r["wall_s"]
                    acc["errors"] += r["errors"]
                    acc["load_cpu"] += r["load_cpu_s"]
                    for key, value in after.items():
                        acc["delta"][key] = acc["delta"].get(key, 0.0) + value - before.get(key, 0)
                    rate = len(r["latencies_s"]) / r["wall_s"]
                    print(f"  round {rnd + 1} {name} @{clients}: {rate:.1f} req/s", flush=True)
            finally:
                server.stop()
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        results[name] = {}
        for clients, acc in raw[name].items():
            d, n = acc["delta"], len(acc["lat"])
            count = max(d.get("request_count", 0), 1)
            stages = {
                s: 1000 * d.get(f"{s}_sum", 0) / max(d.get(f"{s}_count", 0), 1) for s in STAGES
            }
            request_ms = 1000 * d.get("request_sum", 0) / count
            results[name][str(clients)] = {
                "requests": n,
                "errors": acc["errors"],
                "req_per_s": round(n / acc["wall"], 1),
                "p50_ms": round(1000 * _percentile(acc["lat"], 50), 1),
                "p95_ms": round(1000 * _percentile(acc["lat"], 95), 1),
                "server_ms": {k: round(v, 2) for k, v in stages.items()}
                | {
                    "request": round(request_ms, 2),
                    "http_and_rest": round(request_ms - sum(stages.values()), 2),
                },
                "mean_batch": round(d.get("batch_sum", 0) / max(d.get("batch_count", 0), 1), 2),
                "server_cpu_ms_per_request": round(1000 * d["cpu_s"] / max(n, 1), 2),
                "load_cpu_ms_per_request": round(1000 * acc["load_cpu"] / max(n, 1), 2),
            }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx-dir", type=Path, help="an export of the packaged model")
    parser.add_argument("--requests", type=int, default=400, help="searches per client level")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--variants", default=DEFAULT_VARIANTS, help=f"comma-separated, of: {', '.join(VARIANTS)}"
    )
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    names = [n.strip() for n in args.variants.split(",")]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {list(VARIANTS)}")
    queries = [
        json.loads(line)["text"]
        for line in (ROOT / "examples" / "queries.jsonl").read_text().splitlines()
    ]
    load_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="serve-backends-"))
    try:
        data_dir, made = prepare(args.onnx_dir, work)
        results = measure(names, data_dir, queries, args.requests, args.rounds, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "command": "python bench/serve_backends.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_info(load_start),
        "export": made,
        "variants": {n: VARIANTS[n] for n in names},
        "results": results,
    }
    stem = "serve_backends" + (f"_{args.tag}" if args.tag else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    names = list(result["results"])
    base = names[0]
    lines = [
        "# HTTP search per encoder backend: throughput and where the time goes",
        "",
        f"Command: `{result['command']}` ({result['when']}). Machine: {m['cpus']} CPUs, "
        f"Python {m['python']}; load average at start {m['load_avg_start']}, at end "
        f"{m['load_avg_end']}. Collection: the examples' corpus (small: the store's share is "
        "what a small collection costs). Dense search, k=10, two-stage (64-d shortlist of 100).",
        "",
        "Variants (server environment): "
        + "; ".join(
            f"**{n}** `{' '.join(f'{k}={v}' for k, v in e.items())}`"
            for n, e in result["variants"].items()
        ),  # fmt: skip
        "",
        f"| variant | clients | req/s | vs {base} | p50 ms | p95 ms | mean batch "
        "| server ms: queue / encode / store / log / HTTP+rest | server CPU ms/req "
        "| load CPU ms/req |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for clients in (str(c) for c in CLIENTS):
        for name in names:
            r = result["results"][name][clients]
            s = r["server_ms"]
            ratio = r["req_per_s"] / result["results"][base][clients]["req_per_s"]
            lines.append(
                f"| {name} | {clients} | {r['req_per_s']} | {ratio:.2f}x | {r['p50_ms']} | "
                f"{r['p95_ms']} | {r['mean_batch']} | {s['queue']} / {s['encode']} / "
                f"{s['store']} / {s['log']} / {s['http_and_rest']} | "
                f"{r['server_cpu_ms_per_request']} | {r['load_cpu_ms_per_request']} |"
            )
    lines += [
        "",
        "Server ms are means per search from the server's own /metrics "
        "(`ragctl_search_stage_seconds`, `ragctl_http_request_duration_seconds`): queue is the "
        "wait for a free query-encoder thread, encode the model call (a whole micro-batch), "
        "HTTP+rest what the request spent outside the four stages (routing, validation, JSON, "
        "auth, middleware). The load process shares the 2 cores; its CPU per request is shown.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
