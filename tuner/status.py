"""The state of a retune, in a small file others can read: `data_dir/retune/COLLECTION.json`.

`ragctl retune` writes it as the run goes (every step it reports, then how it ended); the
retriever answers it at `GET /v1/retune/status` and the console shows it. One file per
collection holds the latest run. The file is replaced atomically, so a reader never sees half
of it. A run that died without saying so (killed, machine restarted) still reads `running`
in the file: `read_status` reports it as `interrupted` when its process is gone.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ragctl.core.store.files import read_json, write_json_atomic

STATUS_DIR = "retune"
MAX_STEPS = 50
"""Steps kept in the file (the latest ones)."""

RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"
INTERRUPTED = "interrupted"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def status_path(data_dir: Path, collection: str) -> Path:
    """Where the retune status of `collection` lives."""
    return Path(data_dir) / STATUS_DIR / f"{collection}.json"


class RetuneStatus:
    """Writes one run's state: `start`, then `step` for each step, then `finish` or `fail`."""

    def __init__(self, data_dir: Path, collection: str) -> None:
        self.path = status_path(data_dir, collection)
        self._state: dict[str, Any] = {
            "collection": collection,
            "state": RUNNING,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": _now(),
            "updated_at": _now(),
            "finished_at": None,
            "step": None,
            "steps": [],
            "result": None,
            "error": None,
        }

    def start(self, options: Mapping[str, Any]) -> None:
        """Record that a run started, with what it was asked to do."""
        self._state["options"] = dict(options)
        self._write()

    def step(self, message: str) -> None:
        """Record the step the run is on now."""
        entry = {"at": _now(), "message": message}
        self._state["step"] = message
        self._state["steps"] = [*self._state["steps"], entry][-MAX_STEPS:]
        self._write()

    def finish(self, result: Mapping[str, Any]) -> None:
        """Record that the run ended, and what it decided."""
        self._state.update(state=FINISHED, result=dict(result), finished_at=_now())
        self._write()

    def fail(self, error: str) -> None:
        """Record that the run stopped on an error."""
        self._state.update(state=FAILED, error=error, finished_at=_now())
        self._write()

    def _write(self) -> None:
        self._state["updated_at"] = _now()
        write_json_atomic(self.path, self._state)


@contextmanager
def recording(
    data_dir: Path, collection: str, options: Mapping[str, Any]
) -> Iterator[RetuneStatus]:
    """A `RetuneStatus` that records a failure when the block raises (and re-raises)."""
    status = RetuneStatus(data_dir, collection)
    status.start(options)
    try:
        yield status
    except BaseException as exc:
        status.fail(" ".join(str(exc).split()) or type(exc).__name__)
        raise


def read_status(data_dir: Path, collection: str) -> dict[str, Any] | None:
    """The latest run's state, or None when no retune of `collection` ever ran here.

    A `running` run whose process is gone (same host) is reported as `interrupted`.
    """
    try:
        data = read_json(status_path(data_dir, collection), None)
    except (OSError, ValueError):  # unreadable or half-written by a foreign tool
        return None
    if not isinstance(data, dict):
        return None
    if data.get("state") == RUNNING and not _alive(data):
        data = {**data, "state": INTERRUPTED}
    return data


def _alive(data: Mapping[str, Any]) -> bool:
    """Whether the process that wrote `data` still runs (unknown on another host: assume so)."""
    if data.get("host") != socket.gethostname():
        return True
    pid = data.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
