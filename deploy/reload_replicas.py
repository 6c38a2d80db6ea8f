#!/usr/bin/env python3
"""Tell every retriever replica to serve what the collection alias points at now.

After a promotion (`ragctl retune`, `ragctl models activate`) or a `ragctl rollback` run by
another process, each replica keeps serving its old (collection, model) pair until it reloads.
This posts `POST /v1/admin/reload` to every address that each HOST resolves to: a Kubernetes
headless Service resolves to every ready pod, a compose service name to its containers.

    ragctl-reload-replicas ragctl-retriever-headless:8000 [HOST[:PORT] ...]

The admin key comes from RAGCTL_RETRIEVER__ADMIN_API_KEY. Prints one line per replica and
exits 1 if any replica could not be reloaded. Standard library only (it ships in the image as
/opt/ragctl/bin/ragctl-reload-replicas).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request

TIMEOUT_S = 300.0  # a reload loads the new model while the old one keeps serving
TRIES = 3


def addresses(target: str) -> list[tuple[str, int]]:
    """Every (address, port) that `HOST[:PORT]` resolves to (port 8000 by default)."""
    host, _, port = target.rpartition(":") if ":" in target else (target, "", "8000")
    infos = socket.getaddrinfo(host, int(port), proto=socket.IPPROTO_TCP)
    return sorted({(str(info[4][0]), int(port)) for info in infos})


def reload_one(address: str, port: int, api_key: str) -> str:
    """POST the reload to one replica; returns its answer as one line."""
    host = f"[{address}]" if ":" in address else address
    request = urllib.request.Request(
        f"http://{host}:{port}/v1/admin/reload",
        method="POST",
        data=b"",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        body = json.loads(response.read() or b"{}")
    state = "switched" if body.get("changed") else "unchanged"
    return f"{state}: {body.get('previous')} -> {body.get('current')}"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    api_key = os.environ.get("RAGCTL_RETRIEVER__ADMIN_API_KEY", "").strip()
    if not api_key:
        print("RAGCTL_RETRIEVER__ADMIN_API_KEY is not set", file=sys.stderr)
        return 2
    failed = 0
    for target in argv:
        try:
            replicas = addresses(target)
        except (OSError, ValueError) as exc:
            print(f"{target}: cannot resolve: {exc}", file=sys.stderr)
            failed += 1
            continue
        for address, port in replicas:
            for attempt in range(1, TRIES + 1):
                try:
                    print(f"{address}:{port} {reload_one(address, port, api_key)}", flush=True)
                    break
                except urllib.error.HTTPError as exc:  # an answer (401, 503 ...): no retry
                    detail = exc.read().decode("utf-8", "replace")[:300]
                    print(f"{address}:{port} failed: HTTP {exc.code} {detail}", file=sys.stderr)
                    failed += 1
                    break
                except (OSError, ValueError) as exc:
                    if attempt == TRIES:
                        print(f"{address}:{port} failed: {exc}", file=sys.stderr)
                        failed += 1
                    else:
                        time.sleep(2 * attempt)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
