"""The commands on torch vs ONNX fp32 vs ONNX int8, measured side by side in one run.

1. A data dir with the examples' bar handbook ingested (on ONNX fp32), whose `default` model
   export is --onnx-dir (linked where the data dir keeps it; exported first when not given).
2. `ragctl search` (dense and hybrid) in a cold process per backend (`model.backend`), runs
   interleaved across backends: wall time from spawn to exit, the children's CPU time, and
   whether torch was imported.
3. `ragctl serve` per backend: seconds from spawn until it answers /v1/health (listening) and
   until /v1/ready is 200 (model loaded); then stopped. (HTTP throughput: serve_backends.py.)
4. `ragctl ingest --json` per backend of the first --ingest-docs scifact documents into a new
   collection: chunks/s of the ingest (load, chunk, embed, upsert).

    .venv/bin/python bench/onnx_commands.py [--onnx-dir DIR] [--runs 3] [--ingest-docs 300]
        [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BACKENDS = ("torch", "onnx", "onnx-int8")
QUERY = "how long must the beer rest before it is served"

_PROBE = """
import json, sys
from ragctl.cli.main import main
try:
    main(sys.argv[1:], prog_name="ragctl")
except SystemExit:
    pass
print(json.dumps({"torch": "torch" in sys.modules}))
"""


def _env(backend: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCTL_")}
    env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", RAGCTL_MODEL__BACKEND=backend)
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def prepare(onnx_dir: Path | None, work: Path) -> tuple[Path, dict[str, Any]]:
    """The data dir (bar handbook ingested on ONNX fp32) and how its export was made."""
    from ragctl.core.onnx_exports import export_dir

    data_dir = work / "data"
    target = export_dir("default", data_dir)
    assert target is not None
    target.parent.mkdir(parents=True)
    made: dict[str, Any] = {}
    if onnx_dir is None:
        from ragctl.core.encoder import resolve_model
        from ragctl.core.onnx_export import export_onnx

        export = export_onnx(resolve_model("default"), target)
        made = {"exported_s": round(export.seconds, 1), "exporter": export.exporter}
    else:
        target.symlink_to(onnx_dir.resolve(), target_is_directory=True)
        made = {"onnx_dir": str(onnx_dir)}
    subprocess.run(
        [sys.executable, "-m", "ragctl", "--data-dir", str(data_dir), "ingest",
         str(ROOT / "examples" / "corpus" / "bar")],
        check=True, env=_env("onnx"), capture_output=True,
    )  # fmt: skip
    return data_dir, made


def cold_search(data_dir: Path, backend: str, mode: str) -> dict[str, Any]:
    before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, "--data-dir", str(data_dir), "search", QUERY,
         "--mode", mode],
        env=_env(backend), capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "cpu_s": _children_cpu() - before, "torch": probe["torch"]}


def serve_times(data_dir: Path, backend: str, timeout_s: float = 600) -> dict[str, Any]:
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragctl", "--data-dir", str(data_dir), "serve", "--port",
         str(port), "--log-level", "warning"],
        env=_env(backend), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    listening = ready = None
    first_ready_status = None
    try:
        while time.perf_counter() - started < timeout_s and proc.poll() is None:
            try:
                if listening is None:
                    httpx.get(f"{url}/v1/health", timeout=5)
                    listening = time.perf_counter() - started
                status = httpx.get(f"{url}/v1/ready", timeout=5).status_code
                first_ready_status = first_ready_status or status
                if status == 200:
                    ready = time.perf_counter() - started
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {
        "listening_s": listening,
        "ready_s": ready,
        "first_ready_status": first_ready_status,
    }


def ingest_corpus(data_root: Path, docs: int, work: Path) -> Path:
    """The first `docs` records of scifact's corpus as one jsonl file (else the examples)."""
    source = data_root / "scifact" / "corpus.jsonl"
    if not source.is_file():
        return ROOT / "examples" / "corpus"
    target = work / "ingest" / "scifact-head.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    with source.open(encoding="utf-8") as src, target.open("w", encoding="utf-8") as out:
        for _, line in zip(range(docs), src, strict=False):
            out.write(line)
    return target


def ingest_time(data_dir: Path, backend: str, corpus: Path, run: int) -> dict[str, Any]:
    """`ragctl ingest --json` of `corpus` into a new collection: chunks, wall and encode s."""
    before = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "ragctl", "--data-dir", str(data_dir), "ingest", str(corpus),
         "--collection", f"ingest-{backend}-{run}", "--json"],
        env=_env(backend), capture_output=True, text=True, check=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    report = json.loads(done.stdout)
    return {
        "wall_s": wall,
        "cpu_s": _children_cpu() - before,
        "chunks": report["chunks_written"],
        "took_s": report["took_ms"] / 1000,
        "encode_s": report["encode_ms"] / 1000,
    }


def machine_info(load_start: tuple[float, float, float]) -> dict[str, Any]:
    """The machine, and its load average when the run started and now."""
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_start": [round(x, 2) for x in load_start],
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
    }


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx-dir", type=Path, help="an export of the packaged model")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--ingest-docs", type=int, default=300, help="scifact documents ingested per backend"
    )
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    load_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="onnx-commands-"))
    try:
        data_dir, made = prepare(args.onnx_dir, work)
        searches: dict[str, dict[str, list[dict[str, Any]]]] = {
            mode: {b: [] for b in BACKENDS} for mode in ("dense", "hybrid")
        }
        serves: dict[str, list[dict[str, Any]]] = {b: [] for b in BACKENDS}
        ingests: dict[str, list[dict[str, Any]]] = {b: [] for b in BACKENDS}
        corpus = ingest_corpus(args.data_root, args.ingest_docs, work)
        for run in range(args.runs):
            for mode in searches:
                for backend in BACKENDS:
                    searches[mode][backend].append(cold_search(data_dir, backend, mode))
            for backend in BACKENDS:
                serves[backend].append(serve_times(data_dir, backend))
            for backend in BACKENDS:
                ingests[backend].append(ingest_time(data_dir, backend, corpus, run))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary: dict[str, Any] = {"search": {}, "serve": {}, "ingest": {}}
    for mode, per_backend in searches.items():
        torch_wall = _median([r["wall_s"] for r in per_backend["torch"]])
        summary["search"][mode] = {
            b: {
                "wall_s_median": _median([r["wall_s"] for r in runs]),
                "cpu_s_median": _median([r["cpu_s"] for r in runs]),
                "torch_imported": any(r["torch"] for r in runs),
                "wall_vs_torch": round(torch_wall / _median([r["wall_s"] for r in runs]), 2),
            }
            for b, runs in per_backend.items()
        }
    for backend, runs in serves.items():
        summary["serve"][backend] = {
            "listening_s_median": _median([r["listening_s"] or float("nan") for r in runs]),
            "ready_s_median": _median([r["ready_s"] or float("nan") for r in runs]),
            "first_ready_status": [r["first_ready_status"] for r in runs],
        }
    torch_rate = _median([r["chunks"] / r["took_s"] for r in ingests["torch"]])
    for backend, runs in ingests.items():
        rate = _median([r["chunks"] / r["took_s"] for r in runs])
        summary["ingest"][backend] = {
            "chunks": runs[0]["chunks"],
            "chunks_per_s_median": rate,
            "took_s_median": _median([r["took_s"] for r in runs]),
            "encode_s_median": _median([r["encode_s"] for r in runs]),
            "wall_s_median": _median([r["wall_s"] for r in runs]),
            "vs_torch": round(rate / torch_rate, 2),
        }
    result = {
        "command": "python bench/onnx_commands.py " + " ".join(sys.argv[1:]),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine_info(load_start),
        "runs": args.runs,
        "export": made,
        "summary": summary,
        "ingest_corpus": str(corpus),
        "raw": {"search": searches, "serve": serves, "ingest": ingests},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "onnx_commands.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "onnx_commands.md").write_text(_markdown(result))
    print(_markdown(result))


def _markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        "# Commands on torch vs ONNX fp32 vs ONNX int8",
        "",
        f"Command: `{result['command']}` ({result['when']}), {result['runs']} runs per cell, "
        "backends interleaved.",
        "",
        f"Machine: {m['cpus']} CPUs, Python {m['python']}. Load average at start "
        f"{m['load_avg_start']}, at end {m['load_avg_end']} (other jobs on the 2 cores inflate "
        "absolute seconds; read the ratios of this one run).",
        "",
        "## `ragctl search` in a cold process (examples' bar handbook, medians)",
        "",
        "| mode | backend | wall s | CPU s | wall: torch / this | torch imported |",
        "|---|---|---:|---:|---:|---|",
    ]
    for mode, per_backend in result["summary"]["search"].items():
        for backend, row in per_backend.items():
            lines.append(
                f"| {mode} | {backend} | {row['wall_s_median']} | {row['cpu_s_median']} | "
                f"{row['wall_vs_torch']}x | {row['torch_imported']} |"
            )
    lines += [
        "",
        "## `ragctl serve`: listening and ready (medians)",
        "",
        "| backend | listening s | ready s | first /v1/ready status per run |",
        "|---|---:|---:|---|",
    ]
    for backend, row in result["summary"]["serve"].items():
        lines.append(
            f"| {backend} | {row['listening_s_median']} | {row['ready_s_median']} | "
            f"{row['first_ready_status']} |"
        )
    lines += [
        "",
        f"## `ragctl ingest` of `{Path(result['ingest_corpus']).name}` into a new collection "
        "(medians)",
        "",
        "| backend | chunks | chunks/s | vs torch | ingest s | of it encoding s | process wall s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for backend, row in result["summary"]["ingest"].items():
        lines.append(
            f"| {backend} | {row['chunks']} | {row['chunks_per_s_median']} | {row['vs_torch']}x | "
            f"{row['took_s_median']} | {row['encode_s_median']} | {row['wall_s_median']} |"
        )
    lines += [
        "",
        "chunks/s counts the ingest itself (`took_ms` of `--json`: load, chunk, embed, upsert), "
        "not the interpreter start. A promotion's re-embed encodes stored chunk texts with the "
        "same `encode_documents` path. HTTP search per backend: `serve_backends.md`.",
    ]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
