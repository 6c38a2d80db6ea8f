"""Screenshots of every console page at 1280 and 390 px wide, for docs/console.md.

Builds a demo data dir (the examples/ corpus ingested, the demo's feedback replayed into a
retune, the candidate served with --force so rollback has somewhere to go), serves it with a
write and an admin key, judges a few results through the API, and photographs each page in
headless Chromium (Debian's `chromium`, driven by Playwright). A few CPU minutes, offline.

    python docs/console/shoot.py                 # writes docs/console/*.png
    python docs/console/shoot.py --data-dir /tmp/demo --keep   # reuse a built data dir
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
WRITE, ADMIN = "write-key-screenshots-0123", "admin-key-screenshots-0123"
QUERY = "How often do the cutting discs inside our espresso mills need swapping out?"
PAGES = [
    ("search", "#/search"),
    ("documents", "#/documents"),
    ("document", "#/documents/examples%2Fcorpus%2Fbar%2Fgrinder-maintenance.md"),
    ("feedback", "#/feedback"),
    ("models", "#/models/2"),
    ("evaluation", "#/evaluation/registry/v2/candidate"),
]
HEIGHTS = {1280: 900, 390: 844}
MAX_HEIGHT = 1700  # px of a page kept in its screenshot (the rest is more of the same)


def ragctl(data_dir: Path, *args: str, env: dict[str, str]) -> None:
    command = [sys.executable, "-m", "ragctl", "--data-dir", str(data_dir), *args]
    print("$ ragctl", " ".join(args), flush=True)
    subprocess.run(command, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)


def build(data_dir: Path, env: dict[str, str]) -> None:
    ragctl(data_dir, "ingest", "examples/corpus", env=env)
    ragctl(data_dir, "retune", "--feedback", "examples/feedback.jsonl", "--eval-set",
           "examples/queries.jsonl", "--batch-size", "16", "--no-promote", env=env)  # fmt: skip
    ragctl(data_dir, "models", "activate", "2", "--force", env=env)


def serve(data_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragctl", "--data-dir", str(data_dir), "serve", "--port",
         str(port), "--log-level", "warning"],
        cwd=REPO, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/v1/ready", timeout=5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit("the server did not get ready")


def judge(url: str) -> None:
    headers = {"Authorization": f"Bearer {WRITE}"}
    for query, labels in (
        (QUERY, ["relevant", "not_relevant"]),
        ("Who signs off on a large refund?", ["relevant"]),
        ("R-14 Harbor drop temperature", ["relevant", "relevant", "not_relevant"]),
    ):
        answer = httpx.post(f"{url}/v1/search", json={"query": query, "k": 5}, timeout=60).json()
        for hit, label in zip(answer["results"], labels, strict=False):
            body = {"search_id": answer["search_id"], "chunk_id": hit["chunk_id"], "label": label}
            httpx.post(f"{url}/v1/feedback", json=body, headers=headers, timeout=30)


def shoot(url: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        for width, height in HEIGHTS.items():
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=ARGS,
                viewport={"width": width, "height": height},
            )  # fmt: skip
            page = context.new_page()
            page.goto(f"{url}/console/")
            page.fill("#apikey", ADMIN)
            page.press("#apikey", "Enter")
            page.wait_for_function(
                # A function, not an expression: the console's CSP forbids eval.
                "() => document.getElementById('role').textContent.startsWith('admin')"
            )
            for name, fragment in PAGES:
                page.goto(f"{url}/console/{fragment}")
                if name == "search":
                    page.fill("#q", QUERY)
                    page.press("#q", "Enter")
                    page.wait_for_selector(".hit")
                    page.locator(".hit").first.locator("button.judge-relevant").click()
                    page.wait_for_selector("button.judge-relevant[aria-pressed='true']")
                    page.wait_for_timeout(4500)  # the toast fades
                else:
                    page.wait_for_load_state("networkidle")
                    page.wait_for_timeout(800)
                path = OUT / f"{name}-{width}.png"
                tall = page.evaluate("() => document.documentElement.scrollHeight")
                clip = {"x": 0, "y": 0, "width": width, "height": min(tall, MAX_HEIGHT)}
                page.screenshot(path=str(path), full_page=True, clip=clip)
                written.append(path)
                print("wrote", path.relative_to(REPO), flush=True)
            context.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="Build (or reuse) the demo data dir here.")
    parser.add_argument("--keep", action="store_true", help="Keep the data dir afterwards.")
    options = parser.parse_args()
    data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="ragctl-shots-")) / "data"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RAGCTL_")},
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO),
        "RAGCTL_RETRIEVER__WRITE_API_KEY": WRITE,
        "RAGCTL_RETRIEVER__ADMIN_API_KEY": ADMIN,
    }
    if not (data_dir / "models" / "v2").is_dir():
        build(data_dir, env)
    proc, url = serve(data_dir, env)
    try:
        judge(url)
        shoot(url)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if not options.keep and options.data_dir is None:
            shutil.rmtree(data_dir.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
