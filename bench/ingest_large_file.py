"""One large text file through `ragctl ingest`: wall time, peak RSS and whether progress moves.

Issue 13: a 50,000,000-byte text file ran 300 s at 763 MB RSS with no progress. This runs
`python -m ragctl ingest FILE` as a child process (the checkout given by --repo, so the same
script measures before and after a change), samples the child's RSS every 0.2 s, and records
when the progress line on stderr changes.

    .venv/bin/python bench/ingest_large_file.py --bytes 5000000 [--repo PATH] [--timeout-s 1800]
        [--label after] [--out bench/results]

The file is made of the demo corpus (examples/corpus) repeated, so its text is real prose.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_PROGRESS = re.compile(r"ingest: [^\r\n]*")


def make_text_file(path: Path, size: int) -> None:
    """`size` bytes of the demo corpus repeated, one numbered section per copy."""
    corpus = ROOT / "examples" / "corpus"
    parts = [p.read_text(encoding="utf-8") for p in sorted(corpus.rglob("*.md"))]
    parts += [p.read_text(encoding="utf-8") for p in sorted(corpus.rglob("*.txt"))]
    base = "\n\n".join(parts)
    with path.open("w", encoding="utf-8") as out:
        written = index = 0
        while written < size:
            block = f"\n\n== section {index} ==\n\n{base}"
            data = block.encode("utf-8")[: size - written].decode("utf-8", "ignore")
            out.write(data)
            written += len(data.encode("utf-8"))
            index += 1


def run(repo: Path, file: Path, data_dir: Path, timeout_s: float) -> dict[str, object]:
    """Ingest `file` with the checkout at `repo`; returns timings, peak RSS and progress."""
    import psutil

    env = {**os.environ, "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1"}
    env["COLUMNS"] = "200"
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragctl", "--data-dir", str(data_dir), "ingest", str(file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=file.parent,
    )
    peak = 0
    cpu_s = 0.0
    updates: list[tuple[float, str]] = []
    stdout_chunks: list[bytes] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        buffer = b""
        while chunk := proc.stderr.read1(4096):  # type: ignore[attr-defined]
            buffer += chunk
            *lines, buffer = re.split(rb"[\r\n]", buffer)
            # tqdm writes "\r" + line: a line is complete once its closing "]" is there.
            if buffer.rstrip().endswith(b"]"):
                lines.append(buffer)
                buffer = b""
            for raw in lines:
                text = raw.decode("utf-8", "replace").strip()
                match = _PROGRESS.search(text)
                if match and (not updates or _counts(updates[-1][1]) != _counts(match.group(0))):
                    updates.append((round(time.monotonic() - started, 1), match.group(0)))

    def read_stdout() -> None:
        assert proc.stdout is not None
        stdout_chunks.append(proc.stdout.read())

    threads = [threading.Thread(target=read_stderr), threading.Thread(target=read_stdout)]
    for thread in threads:
        thread.start()
    ps = psutil.Process(proc.pid)
    timed_out = False
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
            times = ps.cpu_times()
            cpu_s = times.user + times.system
        except psutil.NoSuchProcess:
            break
        if time.monotonic() - started > timeout_s:
            timed_out = True
            proc.kill()
            break
        time.sleep(0.2)
    proc.wait()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    summary = b"".join(stdout_chunks).decode("utf-8", "replace").strip()
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu_s, 1),  # the machine is shared: CPU time is the steadier number
        "peak_rss_mib": round(peak / 2**20),
        "exit_code": proc.returncode,
        "timed_out": timed_out,
        "progress_updates": len(updates),
        "first_progress_s": updates[0][0] if updates else None,
        "progress": updates[:5] + ([("...", "")] if len(updates) > 10 else []) + updates[-5:]
        if len(updates) > 10
        else updates,
        "summary": summary,
    }


def _counts(line: str) -> str:
    """The progress line without its elapsed-time and rate fields (what actually moved)."""
    return re.sub(r"\[[^\]]*?(,|\])", "[", line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bytes", type=int, default=5_000_000)
    parser.add_argument("--repo", type=Path, default=ROOT, help="checkout to run (PYTHONPATH)")
    parser.add_argument("--timeout-s", type=float, default=1800.0)
    parser.add_argument("--label", default="after")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "large.txt"
        make_text_file(file, args.bytes)
        result = run(args.repo.resolve(), file, Path(tmp) / "data", args.timeout_s)
    record = {
        "bench": "ingest_large_file",
        "label": args.label,
        "bytes": args.bytes,
        "repo": str(args.repo),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
        **result,
    }
    print(json.dumps(record, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"ingest_large_file_{args.label}_{args.bytes}.json"
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
