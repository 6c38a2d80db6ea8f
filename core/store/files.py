"""Small durable-file helpers for the embedded store: atomic JSON writes and a process lock."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

from ragctl.core.errors import StoreError, StoreLockedError


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that readers (and a crash) see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def read_json(path: Path, default: Any) -> Any:
    """Parsed JSON of `path`, or `default` when it does not exist."""
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return default


class ProcessLock:
    """An exclusive advisory lock on a file, recording who holds it.

    The embedded engine allows one opener per store; this lock fails fast with the holder's
    pid and command line instead of a low-level WAL error.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.path.open("a+", encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise StoreError(
                f"cannot open the embedded store at {self.path.parent}: {reason}"
                + (f" ({exc.filename})" if exc.filename else "")
                + "; check data_dir (--data-dir, RAGCTL_DATA_DIR)"
            ) from exc
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown process"
            handle.close()
            raise StoreLockedError(
                f"the embedded store at {self.path.parent} is in use by {holder}. Stop that "
                "process, or send the work to it (e.g. the retriever's HTTP API), or configure "
                "a Qdrant server (store.url) to share one store between processes."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} ({' '.join(sys.argv)[:200]})\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is None:
            return
        import fcntl

        self._handle.seek(0)
        self._handle.truncate()
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()
        self._handle = None
