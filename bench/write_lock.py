"""How long an admin rollback waits behind a large document upsert (issue 13).

A 300,000-character document is posted; two seconds later, while it is being chunked and
embedded, `POST /v1/admin/rollback` is sent. Recorded: the rollback's latency with the upsert
running, the rollback's latency alone (same setup, no upsert), and the upsert's latency. Run
it on a checkout before and after a change (`--repo`, put first on sys.path) to compare.

    .venv/bin/python bench/write_lock.py [--repo PATH] [--label after] [--chars 300000]
        [--out bench/results]

Setup (the real packaged model, the embedded store, the app through TestClient's threads):
v1 serves 16 short documents; v2 (the base model with perturbed token embeddings, registered
like a retune would) is activated, so a rollback to v1 is possible; the large document is
real prose (the demo corpus repeated).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
KEY = "bench-admin-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _prose(chars: int) -> str:
    corpus = ROOT / "examples" / "corpus"
    base = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(corpus.rglob("*.md")))
    text = ""
    while len(text) < chars:
        text += base + "\n\n"
    return text[:chars]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", type=Path, default=ROOT)
    parser.add_argument("--label", default="after")
    parser.add_argument("--chars", type=int, default=300_000)
    parser.add_argument("--delay-s", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results")
    args = parser.parse_args()
    sys.path.insert(0, str(args.repo.resolve()))

    import torch
    from fastapi.testclient import TestClient

    from ragctl.core.encoder import SentenceTransformerEncoder
    from ragctl.core.registry import ModelRecord, ModelRegistry
    from ragctl.core.settings import ModelSettings, load_settings
    from ragctl.retriever.app import create_app

    encoder = SentenceTransformerEncoder.load(ModelSettings(), (64,))
    big = {"id": "big.txt", "text": _prose(args.chars)}
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(data_dir=Path(tmp), retriever={"admin_api_key": KEY})
        registry = ModelRegistry(settings.data_dir)
        with TestClient(create_app(settings, encoder=encoder), headers=AUTH) as client:
            docs = [{"id": f"d{i}", "text": f"Short document number {i} about coffee."}
                    for i in range(16)]  # fmt: skip
            assert client.post("/v1/documents", json={"documents": docs}).status_code == 200
            model = encoder.model
            weights = model[0].auto_model.embeddings.word_embeddings.weight
            original = weights.detach().clone()
            with torch.no_grad():
                noise = torch.randn(weights.shape, generator=torch.Generator().manual_seed(0))
                weights.add_(noise * original.std() * 0.3)
                model.save_pretrained(str(registry.model_dir(2)))
                weights.copy_(original)
            registry.add(ModelRecord(version=2, ref="models/v2", parent=1, base_model="default"))

            def activate_then(call):  # serve v2, so that a rollback to v1 exists
                answer = client.post("/v1/admin/models/2/activate?force=true")
                assert answer.status_code == 200, answer.text
                return call()

            def timed(method, path, **kwargs):
                started = time.perf_counter()
                response = client.request(method, path, **kwargs)
                assert response.status_code == 200, response.text
                return time.perf_counter() - started, response.json()

            alone_s, _ = activate_then(lambda: timed("POST", "/v1/admin/rollback"))
            with ThreadPoolExecutor(max_workers=1) as pool:
                activate_then(lambda: None)
                started = time.perf_counter()
                upsert = pool.submit(timed, "POST", "/v1/documents", json={"documents": [big]})
                time.sleep(args.delay_s)
                rollback_s, rolled = timed("POST", "/v1/admin/rollback")
                rollback_done_s = time.perf_counter() - started
                upsert_s, written = upsert.result()
    record = {
        "bench": "write_lock",
        "label": args.label,
        "repo": str(args.repo),
        "document_chars": args.chars,
        "rollback_sent_after_s": args.delay_s,
        "rollback_alone_s": round(alone_s, 2),
        "rollback_during_upsert_s": round(rollback_s, 2),
        "rollback_waited_s": round(max(rollback_s - alone_s, 0.0), 2),
        "rollback_done_after_upsert_start_s": round(rollback_done_s, 2),
        "upsert_s": round(upsert_s, 2),
        "upsert_chunks_written": written["chunks_written"],
        "upsert_collection": written["collection"],
        "rolled_back_to": rolled["current"],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(record, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"write_lock_{args.label}.json"
    out.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
