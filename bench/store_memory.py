"""Memory and disk of the embedded store (Qdrant Edge) at N chunks, against the arithmetic.

docs/deploy.md sizes a deployment as N chunks x (64 + D) float32 x 4 bytes (+ HNSW links and
payload). This measures it: N chunks with a 384-d `full` and a 64-d `mrl_64` vector (random
unit vectors: fine for memory, meaningless for recall) and a short text payload are upserted
into an `EdgeStore` through its normal `upsert`; RSS and the bytes on disk are taken

  build    in the process that upserts (while open; peak = VmHWM),
  serve    in a fresh process that opens the store and runs two-stage queries, as `ragctl
           serve` would (RSS after imports is the baseline, so torch etc. are not counted),
  and, with --optimize, again after `optimize()` builds the HNSW indexes (~2.5 min at 100k
  points on 2 cores).

    .venv/bin/python bench/store_memory.py [--points 100000] [--optimize] [--out bench/results]

Writes store_memory.json and store_memory.md under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FULL_DIM, SHORT_DIM = 384, 64
NAME = "bench"
BATCH = 1000
MB = 1_000_000


def _proc_status() -> dict[str, int]:
    """VmRSS, RssAnon, RssFile, RssShmem and VmHWM of this process, in bytes."""
    wanted = {"VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM"}
    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            out[key] = int(value.split()[0]) * 1024
    return out


def _component(file: Path, root: Path) -> str:
    """`wal`, or the segment part a file belongs to (`vector_storage-full`, `payload_storage`,
    `vector_index-mrl_64`, ...), summed over segments."""
    parts = file.relative_to(root).parts
    if "wal" in parts:
        return "wal"
    if "segments" in parts:
        rest = parts[parts.index("segments") + 2 :]
        return rest[0] if len(rest) > 1 else "segment files"
    return "other"


def _rss_by_component(root: Path) -> dict[str, int]:
    """Resident bytes of this process's mappings of files under `root`, by component."""
    out: dict[str, int] = {}
    current: Path | None = None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and ":" in head[3]:
            current = Path(head[5]) if len(head) > 5 and head[5].startswith("/") else None
        elif line.startswith("Rss:") and current is not None and current.is_relative_to(root):
            key = _component(current, root)
            out[key] = out.get(key, 0) + int(head[1]) * 1024
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _disk_by_component(root: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for file in root.rglob("*"):
        if file.is_file():
            key = _component(file, root)
            out[key] = out.get(key, 0) + file.stat().st_blocks * 512
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _disk(path: Path) -> dict[str, Any]:
    """Allocated and apparent bytes of every file under `path`, and the WAL's share."""
    allocated = apparent = wal = 0
    for file in path.rglob("*"):
        if file.is_file():
            st = file.stat()
            allocated += st.st_blocks * 512
            apparent += st.st_size
            if "wal" in file.relative_to(path).parts[0:4]:
                wal += st.st_blocks * 512
    return {
        "allocated_bytes": allocated,
        "apparent_bytes": apparent,
        "wal_allocated_bytes": wal,
        "allocated_by_component": _disk_by_component(path),
    }


def _warm_up() -> None:
    """Import and exercise everything a phase uses before its baseline RSS is taken.

    A throwaway 100-point store is built, searched and dropped, so the engine's code pages
    and allocator pools are already resident: the growth measured after it is the data's.
    """
    import numpy as np

    from ragctl.core.ids import chunk_id
    from ragctl.core.records import Chunk
    from ragctl.core.search import SearchParams
    from ragctl.core.store.base import CollectionSpec
    from ragctl.core.store.edge import EdgeStore

    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory() as tmp, EdgeStore(Path(tmp)) as store:
        spec = CollectionSpec("warm", 1, "random", FULL_DIM, (SHORT_DIM,))
        store.create_collection(spec)
        chunks = [Chunk(chunk_id("w", i, "w"), "w", i, "w", 0, 1, "w", {}) for i in range(100)]
        vectors = _embeddings(rng, 100)
        store.upsert(spec.physical, chunks, vectors)
        store.search(
            spec.physical, vectors.embeddings_slice(slice(0, 1)), SearchParams(shortlist=50)
        )


def _embeddings(rng: Any, n: int) -> Any:
    import numpy as np

    from ragctl.core.encoder import Embeddings
    from ragctl.core.matryoshka import normalize, truncate

    full = normalize(rng.standard_normal((n, FULL_DIM), dtype=np.float32))
    return Embeddings(full, {SHORT_DIM: truncate(full, SHORT_DIM)})


def _phase_build(root: Path, points: int, text_chars: int) -> dict[str, Any]:
    import numpy as np

    from ragctl.core.ids import chunk_id
    from ragctl.core.records import Chunk
    from ragctl.core.store.base import CollectionSpec
    from ragctl.core.store.edge import EdgeStore

    rng = np.random.default_rng(0)
    _warm_up()
    baseline = _proc_status()
    store = EdgeStore(root)
    spec = CollectionSpec(NAME, 1, "random-unit-vectors", FULL_DIM, (SHORT_DIM,))
    store.create_collection(spec)
    store.set_alias(NAME, spec.physical)
    filler = ("lorem ipsum dolor sit amet " * (text_chars // 27 + 1))[:text_chars]
    started = time.perf_counter()
    for start in range(0, points, BATCH):
        n = min(BATCH, points - start)
        chunks = []
        for i in range(start, start + n):
            doc_id, text = f"doc-{i // 10}.md", f"{i} {filler}"[:text_chars]
            chunks.append(
                Chunk(
                    chunk_id(doc_id, i % 10, text),
                    doc_id,
                    i % 10,
                    text,
                    0,
                    len(text),
                    doc_id,
                    {"lang": "en"},
                )
            )
        store.upsert(spec.physical, chunks, _embeddings(rng, n))
    upsert_s = time.perf_counter() - started
    count = store.count(spec.physical)
    after = _proc_status()
    store.close()
    return {"baseline": baseline, "after": after, "upsert_s": upsert_s, "points": count}


def _phase_serve(root: Path, queries: int) -> dict[str, Any]:
    import numpy as np

    from ragctl.core.search import SearchParams
    from ragctl.core.store.edge import EdgeStore

    rng = np.random.default_rng(1)
    batch = _embeddings(rng, queries + 1)
    _warm_up()
    baseline = _proc_status()
    started = time.perf_counter()
    store = EdgeStore(root)
    physical = store.resolve(NAME)
    params = SearchParams(k=10, shortlist=100)
    store.search(physical, batch.embeddings_slice(slice(0, 1)), params)
    open_s = time.perf_counter() - started  # open + load the shard + first query
    started = time.perf_counter()
    for row in range(1, queries + 1):
        store.search(physical, batch.embeddings_slice(slice(row, row + 1)), params)
    query_ms = (time.perf_counter() - started) * 1000 / queries
    after = _proc_status()
    mapped = _rss_by_component(root.resolve())
    store.close()
    return {
        "baseline": baseline,
        "after": after,
        "open_s": open_s,
        "query_ms_mean": query_ms,
        "rss_file_by_component": mapped,
    }


def _phase_optimize(root: Path) -> dict[str, Any]:
    from ragctl.core.store.edge import EdgeStore

    _warm_up()
    baseline = _proc_status()
    store = EdgeStore(root)
    physical = store.resolve(NAME)
    started = time.perf_counter()
    store.optimize(physical)
    seconds = time.perf_counter() - started
    after = _proc_status()
    store.close()
    return {"optimize_s": seconds, "baseline": baseline, "after": after}


def _child(phase: str, root: Path, **kwargs: Any) -> dict[str, Any]:
    """Run one phase in a fresh interpreter, so each RSS starts from nothing."""
    command = [sys.executable, __file__, "--phase", phase, "--root", str(root)]
    for key, value in kwargs.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _delta(phase: dict[str, Any], key: str = "VmRSS") -> int:
    return int(phase["after"][key] - phase["baseline"][key])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--text-chars", type=int, default=200, help="payload text length")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--optimize", action="store_true", help="also build HNSW and re-measure")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    parser.add_argument("--phase", choices=["build", "serve", "optimize"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase == "build":
        print(json.dumps(_phase_build(args.root, args.points, args.text_chars)))
        return
    if args.phase == "serve":
        print(json.dumps(_phase_serve(args.root, args.queries)))
        return
    if args.phase == "optimize":
        print(json.dumps(_phase_optimize(args.root)))
        return

    vector_bytes = args.points * (FULL_DIM + SHORT_DIM) * 4
    result: dict[str, Any] = {
        "points": args.points,
        "dims": {"full": FULL_DIM, "shortlist": SHORT_DIM},
        "payload_text_chars": args.text_chars,
        "arithmetic": {
            "formula": "points x (64 + 384) floats x 4 bytes",
            "vector_bytes": vector_bytes,
            "full_bytes": args.points * FULL_DIM * 4,
            "shortlist_bytes": args.points * SHORT_DIM * 4,
        },
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    with tempfile.TemporaryDirectory(prefix="ragctl-store-memory-") as tmp:
        root = Path(tmp) / "qdrant"
        print(f"build: {args.points} points ...", flush=True)
        build = _child("build", root, points=args.points, text_chars=args.text_chars)
        result["build"] = {**build, "rss_delta_bytes": _delta(build), "disk": _disk(root)}
        print(f"  upsert {build['upsert_s']:.1f} s, RSS +{_delta(build) / MB:.0f} MB", flush=True)
        serve = _child("serve", root, queries=args.queries)
        result["serve"] = {
            **serve,
            "rss_delta_bytes": _delta(serve),
            "rss_anon_delta_bytes": _delta(serve, "RssAnon"),
            "rss_file_delta_bytes": _delta(serve, "RssFile"),
        }
        print(f"  serve: RSS +{_delta(serve) / MB:.0f} MB", flush=True)
        if args.optimize:
            print("optimize (HNSW) ...", flush=True)
            optimized = _child("optimize", root)
            served = _child("serve", root, queries=args.queries)
            result["optimized"] = {
                "optimize_s": optimized["optimize_s"],
                "optimize_peak_rss_bytes": optimized["after"]["VmHWM"],
                "disk": _disk(root),
                "serve": {
                    **served,
                    "rss_delta_bytes": _delta(served),
                    "rss_anon_delta_bytes": _delta(served, "RssAnon"),
                    "rss_file_delta_bytes": _delta(served, "RssFile"),
                },
            }
            print(
                f"  optimize {optimized['optimize_s']:.0f} s, serve RSS "
                f"+{_delta(served) / MB:.0f} MB",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "store_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "store_memory.md").write_text(_markdown(result))
    print((args.out / "store_memory.md").read_text())


def _markdown(result: dict[str, Any]) -> str:
    def mb(value: float) -> str:
        return f"{value / MB:,.1f} MB"

    n = result["points"]
    arith = result["arithmetic"]
    build, serve = result["build"], result["serve"]
    per_point = build["disk"]["allocated_bytes"] / n
    lines = [
        f"# Embedded store (Qdrant Edge): memory and disk at {n:,} chunks",
        "",
        f"`bench/store_memory.py --points {n}{' --optimize' if 'optimized' in result else ''}`"
        f" on {result['machine']['cpus']} CPUs, Python {result['machine']['python']}.",
        f"Vectors: `full` {result['dims']['full']}-d + `mrl_64` {result['dims']['shortlist']}-d"
        f" float32 (random unit vectors); payload text {result['payload_text_chars']} chars.",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| arithmetic: {n:,} x (64 + 384) x 4 B | {mb(arith['vector_bytes'])} |",
        f"| of which `full` / `mrl_64` | {mb(arith['full_bytes'])} / "
        f"{mb(arith['shortlist_bytes'])} |",
        f"| upsert time | {build['upsert_s']:.1f} s |",
        f"| disk after upsert (allocated) | {mb(build['disk']['allocated_bytes'])} "
        f"({per_point:,.0f} B/chunk; WAL {mb(build['disk']['wal_allocated_bytes'])}) |",
        f"| RSS growth while upserting (build process) | {mb(build['rss_delta_bytes'])} "
        f"(peak RSS {mb(build['after']['VmHWM'])}) |",
        f"| RSS growth of a fresh process: open + {serve['query_ms_mean']:.2f} ms/query "
        f"| {mb(serve['rss_delta_bytes'])} (anon {mb(serve['rss_anon_delta_bytes'])}, "
        f"file-backed {mb(serve['rss_file_delta_bytes'])}); "
        f"open + first query {serve['open_s']:.2f} s |",
    ]
    if "optimized" in result:
        opt = result["optimized"]
        served = opt["serve"]
        lines += [
            f"| optimize() (HNSW on both vectors) | {opt['optimize_s']:.0f} s, peak RSS "
            f"{mb(opt['optimize_peak_rss_bytes'])} |",
            f"| disk after optimize (allocated) | {mb(opt['disk']['allocated_bytes'])} "
            f"({opt['disk']['allocated_bytes'] / n:,.0f} B/chunk) |",
            f"| RSS growth of a fresh process after optimize | {mb(served['rss_delta_bytes'])} "
            f"(anon {mb(served['rss_anon_delta_bytes'])}, file-backed "
            f"{mb(served['rss_file_delta_bytes'])}); {served['query_ms_mean']:.2f} ms/query |",
        ]
    final_disk = result.get("optimized", result["build"])["disk"]["allocated_by_component"]
    final_rss = result.get("optimized", {}).get("serve", serve)["rss_file_by_component"]
    lines += [
        "",
        "By component (after optimize, if run): bytes on disk, and resident in a fresh serving",
        "process (file-backed mappings; `vector_storage-*` are the vectors, `vector_index-*` the",
        "HNSW graphs):",
        "",
        "| component | on disk | resident |",
        "|---|---|---|",
    ]
    for name in sorted(set(final_disk) | set(final_rss), key=lambda k: -final_disk.get(k, 0)):
        lines.append(f"| {name} | {mb(final_disk.get(name, 0))} | {mb(final_rss.get(name, 0))} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
