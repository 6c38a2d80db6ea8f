"""Issue 13's probe, repeated: hostile clients against a real `ragctl serve`, a hostile folder
through a real `ragctl ingest`, and settings typos through the real command line.

Everything runs as child processes on 127.0.0.1 with the packaged model, and every wait has a
harness deadline, so a regression (a hang on a FIFO, a connection never cut off) fails the
test instead of hanging the suite. Nothing asserts on timings.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
WRITE_KEY = "probe-write-key-0123456789"
ADMIN_KEY = "probe-admin-key-0123456789"
HARNESS_S = 60


def _env(**settings):
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("RAGCTL_")}
    # torch, as the rest of the suite: no ONNX export (a minute) in each fresh data dir
    env.update(
        PYTHONPATH=str(REPO_ROOT), HF_HUB_OFFLINE="1", RAGCTL_MODEL__BACKEND="torch", **settings
    )
    return env


def _ragctl(*args, cwd, env=None, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "ragctl", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env or _env(),
    )  # fmt: skip


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`ragctl serve` with a write and an admin key, and deadlines of 2 s (head) and 3 s (body)."""
    folder = tmp_path_factory.mktemp("probe-server")
    port = _free_port()
    env = _env(
        RAGCTL_RETRIEVER__WRITE_API_KEY=WRITE_KEY,
        RAGCTL_RETRIEVER__ADMIN_API_KEY=ADMIN_KEY,
        RAGCTL_RETRIEVER__HEADER_TIMEOUT_S="2",
        RAGCTL_RETRIEVER__BODY_TIMEOUT_S="3",
    )
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ragctl", "--data-dir", str(folder / "data"), "serve", "--port",
         str(port), "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, (folder / "server.log").read_text()
            assert time.monotonic() < deadline, "server not ready"
            try:
                if httpx.get(f"{url}/v1/ready", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        yield url, port, folder
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=HARNESS_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert "Traceback" not in (folder / "server.log").read_text(errors="replace")


def test_probe_writes_without_a_key_are_refused(server):
    url, _, _ = server
    junk = {"documents": [{"id": "junk.md", "text": "buy cheap pills now " * 50}]}
    with httpx.Client(base_url=url, timeout=HARNESS_S) as anonymous:
        assert anonymous.post("/v1/documents", json=junk).status_code == 401
        assert anonymous.delete("/v1/documents/anything.md").status_code == 401
        feedback = {"query": "poison", "chunk_id": "x", "label": "relevant"}
        assert anonymous.post("/v1/feedback", json=feedback).status_code == 401
        assert anonymous.post("/v1/admin/rollback").status_code == 401
        assert anonymous.post("/v1/search", json={"query": "pills"}).status_code == 200
    auth = {"Authorization": f"Bearer {WRITE_KEY}"}
    with httpx.Client(base_url=url, timeout=HARNESS_S, headers=auth) as app:
        doc = {"id": "grinder.md", "text": "The grinder burrs are replaced every 800 kg."}
        assert app.post("/v1/documents", json={"documents": [doc]}).status_code == 200
        found = app.post("/v1/search", json={"query": "grinder burrs"}).json()
        assert [r["doc_id"] for r in found["results"]] == ["grinder.md"]  # no junk was stored
        judged = {"search_id": found["search_id"], "chunk_id": found["results"][0]["chunk_id"],
                  "label": "relevant"}  # fmt: skip
        retry = {"Idempotency-Key": "probe-1"}
        first = app.post("/v1/feedback", json=judged, headers=retry)
        again = app.post("/v1/feedback", json=judged, headers=retry)
        assert first.status_code == again.status_code == 201
        assert first.json()["feedback_id"] == again.json()["feedback_id"]
        typed = app.post("/v1/feedback", json={"query": "typed", "chunk_id": judged["chunk_id"],
                                               "label": "relevant"})  # fmt: skip
        assert typed.json()["free_text"] is True
        assert app.post("/v1/admin/rollback").status_code == 403  # a write key is not admin
        huge = {"documents": [{"id": f"big{i}", "text": "x" * 600_000} for i in range(4)]}
        assert app.post("/v1/documents", json=huge).status_code == 413
        assert app.delete("/v1/documents/" + "d" * 600).status_code == 422  # ids: 512 at most


def test_probe_slow_clients_are_cut_off(server):
    _, port, _ = server
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=HARNESS_S)
               for _ in range(100)]  # fmt: skip
    for sock in sockets:
        sock.sendall(b"POST /v1/search HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    for sock in sockets:
        answer = b""
        while chunk := sock.recv(4096):  # until the server closes it (harness timeout: fail)
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 ")
        sock.close()
    with socket.create_connection(("127.0.0.1", port), timeout=HARNESS_S) as sock:
        sock.sendall(b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 500\r\n\r\n")  # fmt: skip
        sock.settimeout(0.5)
        sent, closed = 0, False
        deadline = time.monotonic() + HARNESS_S
        while not closed and time.monotonic() < deadline:
            try:
                sock.sendall(b" ")  # one byte per half second
                sent += 1
                closed = sock.recv(4096) == b""
            except TimeoutError:
                continue
            except OSError:
                closed = True
        assert closed and sent < 500


def test_probe_delete_of_an_unknown_id_fails_through_the_api(server):
    url, _, folder = server
    env = _env(RAGCTL_RETRIEVER__WRITE_API_KEY=WRITE_KEY)
    done = _ragctl("delete", "--api", url, "never-ingested.md", cwd=folder, env=env)
    assert done.returncode == 1
    assert "no document 'never-ingested.md' in the served collection" in done.stderr


def test_probe_ingest_through_the_api_keeps_requests_under_the_limits(server, tmp_path):
    url, _, _ = server
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "huge.txt").write_text("Too much text for one request. " * 100_000)  # 3.1 MB
    for i in range(3):
        (folder / f"small{i}.md").write_text(f"Small document {i} about milk steaming. " * 50)
    env = _env(RAGCTL_RETRIEVER__WRITE_API_KEY=WRITE_KEY)
    done = _ragctl("ingest", "--api", url, "docs", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "skipped docs/huge.txt: 3100000 characters (3100000 bytes) of text" in done.stderr
    assert "3 documents (0 unchanged)" in done.stdout and "1 skipped" in done.stdout


def _hostile_folder(root):
    folder = root / "hostile"
    folder.mkdir()
    (folder / "good.md").write_text("# Espresso\n\nDial in the grinder every morning.")
    latin1 = "Crème brûlée et café: la carte du matin.".encode("latin-1")
    (folder / "latin1.txt").write_bytes(latin1)
    (folder / "wide.txt").write_bytes("Cold brew steeps for eighteen hours.".encode("utf-16"))
    os.mkfifo(folder / "fifo.txt")
    (folder / "zero.txt").symlink_to("/dev/zero")
    (folder / "passwd.txt").symlink_to("/etc/passwd")
    lines = [
        json.dumps({"id": "rec-ok", "text": "Descale the machine weekly."}),
        '{"id": "rec-nan", "text": "bad", "score": NaN}',
        '{"id": "rec-deep", "text": "bad", "m": ' + "[" * 5000 + "]" * 5000 + "}",
    ]
    (folder / "records.jsonl").write_text("\n".join(lines) + "\n")
    return folder


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_probe_hostile_folder_ingests_what_is_legitimate_and_nothing_else(tmp_path):
    from ragctl.core.store.edge import EdgeStore

    folder = _hostile_folder(tmp_path)
    done = _ragctl("--data-dir", str(tmp_path / "data"), "ingest", "hostile", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    skipped = [line for line in done.stderr.splitlines() if "skipped " in line]
    assert all(line.startswith("WARNING: skipped hostile/") for line in skipped), done.stderr
    assert sorted(line.split(": ", 2)[1] for line in skipped) == [
        "skipped hostile/fifo.txt",
        "skipped hostile/passwd.txt",
        "skipped hostile/records.jsonl",
        "skipped hostile/records.jsonl",
        "skipped hostile/zero.txt",
    ], done.stderr
    assert "Traceback" not in done.stderr
    assert "4 documents (0 unchanged), 4 chunks written, 0 deleted, 5 skipped" in done.stdout
    with EdgeStore(tmp_path / "data" / "qdrant") as store:
        stored = store.chunk_ids_of("docs__v1", [
            "hostile/good.md", "hostile/latin1.txt", "hostile/wide.txt", "rec-ok", "rec-nan",
            "rec-deep", "hostile/passwd.txt", "hostile/zero.txt", "hostile/fifo.txt"])  # fmt: skip
        assert sorted(stored) == [
            "hostile/good.md", "hostile/latin1.txt", "hostile/wide.txt", "rec-ok"
        ]  # fmt: skip
    assert (folder / "fifo.txt").exists()  # untouched


def test_probe_settings_typos_fail_naming_file_variable_and_flag(tmp_path):
    (tmp_path / "ragctl.toml").write_text("[search]\ntop_k = 3\n")
    typo = _ragctl("collections", cwd=tmp_path, timeout=120)
    assert typo.returncode == 1 and typo.stderr.count("\n") == 1
    assert "ragctl.toml: [search]: unknown key 'top_k' (did you mean 'k'?)" in typo.stderr
    (tmp_path / "ragctl.toml").write_text("[model]\nname = 'x'\n")
    assert "did you mean 'name_or_path'" in _ragctl("collections", cwd=tmp_path).stderr
    (tmp_path / "ragctl.toml").write_text("[search]\nk = \n")
    broken = _ragctl("collections", cwd=tmp_path)
    assert broken.stderr == "Error: ragctl.toml: invalid TOML at line 2, column 5: Invalid value\n"
    (tmp_path / "ragctl.toml").unlink()
    env = _env(RAGCTL_SERACH__K="5")
    assert "did you mean RAGCTL_SEARCH__K" in _ragctl("collections", cwd=tmp_path, env=env).stderr
    env = _env(RAGCTL_DATA_DIR="/proc/x")
    proc = _ragctl("collections", cwd=tmp_path, env=env)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "/proc/x" in proc.stderr
    flag = _ragctl("search", "milk", "-k", "0", cwd=tmp_path)
    assert flag.returncode == 2 and "Invalid value for '-k'" in flag.stderr
