"""The model registry: versioned embedding models under `data_dir/models/`.

Layout:
  models/registry.json   every version's record plus, per collection, which version serves
                         and the stack of versions that served it (for rollback); replaced
                         atomically, every read-modify-write under `models/registry.lock`
  models/admin.lock      held for a whole admin operation (activate, rollback, promotion:
                         alias switch + registry), so processes never interleave them
  models/vN/             a sentence-transformers folder for each trained version (N >= 2)

Version 1 is the base model the first collection was embedded with (a Hub id, a local path or
`default`); it is recorded, never copied. Model version N embeds physical collection NAME__vN.
Registry model refs are stored relative to the data dir (`models/v2`) so it can be moved.

What serves is decided by the store's alias; the registry's `serving` entry follows it
(`reconcile` repairs it when a crash came between the two). A version's `status` is derived
on every write from the serving map, the history and the gate's decision, never set by hand.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, Field

from ragctl.core.errors import RagctlError
from ragctl.core.store.files import read_json, write_json_atomic

logger = logging.getLogger(__name__)

Status = Literal["candidate", "serving", "rejected", "retired"]
REGISTRY_PREFIX = "models/"


class RegistryError(RagctlError):
    """A version is unknown or a registry change is not allowed."""


class ModelRecord(BaseModel):
    """One model version and what is known about it."""

    version: int = Field(ge=1)
    ref: str  # "default", a Hub id, a path, or "models/vN" (relative to the data dir)
    parent: int | None = None
    status: Status = "candidate"
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    base_model: str = ""
    gate: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    evaluation: dict[str, Any] | None = None
    # The search mode (and fusion) measured best for this version on held-out queries.
    search: dict[str, Any] | None = None
    served_at: str | None = None  # when it first served a collection
    # Profiles replaced by `ragctl models profile --apply`, newest last (for --undo).
    search_history: list[dict[str, Any] | None] = []

    @property
    def gate_rejected(self) -> bool:
        """The gate decided against this version (it stays rejected even after a forced run)."""
        return self.gate is not None and not self.gate.get("promote", False)


class _RegistryFile(BaseModel):
    models: list[ModelRecord] = []
    serving: dict[str, int] = {}  # collection -> version
    # collection -> stack of the versions that served it, the serving one on top: activation
    # and promotion push, rollback pops (so it only ever goes back)
    history: dict[str, list[int]] = {}

    def restatus(self) -> None:
        """Derive every record's status from what serves, what served and the gate."""
        serving = set(self.serving.values())
        now = datetime.now(timezone.utc).isoformat()
        for i, record in enumerate(self.models):
            served_at = record.served_at
            if served_at is None and (
                record.version in serving or record.status in ("serving", "retired")
            ):  # registries written before served_at existed said it by status
                served_at = now
            if record.version in serving:
                status: Status = "serving"
            elif record.gate_rejected:
                status = "rejected"
            elif served_at is not None:
                status = "retired"
            else:
                status = "candidate"
            if (record.status, record.served_at) != (status, served_at):
                self.models[i] = record.model_copy(
                    update={"status": status, "served_at": served_at}
                )


def resolve_ref(ref: str, data_dir: Path) -> str:
    """A model ref made loadable: registry refs become paths under `data_dir`."""
    if ref.startswith(REGISTRY_PREFIX):
        return str(data_dir / ref)
    return ref


class ModelRegistry:
    """Reads `models/registry.json` and rewrites it atomically under a file lock."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "models"
        self._path = self.root / "registry.json"

    def _load(self) -> _RegistryFile:
        return _RegistryFile.model_validate(read_json(self._path, {}))

    @contextmanager
    def _transaction(self) -> Iterator[_RegistryFile]:
        """Load, let the caller change, save: one read-modify-write no other writer splits."""
        with _file_lock(self.root / "registry.lock"):
            data = self._load()
            yield data
            data.restatus()
            write_json_atomic(self._path, data.model_dump(mode="json"))

    @contextmanager
    def admin_lock(self) -> Iterator[None]:
        """Hold for a whole admin operation (alias switch + registry), across processes."""
        with _file_lock(self.root / "admin.lock"):
            yield

    def records(self) -> list[ModelRecord]:
        """Every version, oldest first."""
        return sorted(self._load().models, key=lambda r: r.version)

    def get(self, version: int) -> ModelRecord:
        for record in self._load().models:
            if record.version == version:
                return record
        known = ", ".join(f"v{r.version}" for r in self.records()) or "none"
        raise RegistryError(f"no model version v{version} (known: {known})")

    def ensure_base(self, ref: str) -> ModelRecord:
        """The record of model `ref`, registering it as a base model if it is new.

        The first model a data dir sees becomes v1, so its first collection is NAME__v1.
        """
        with self._transaction() as data:
            for record in data.models:
                if record.ref == ref:
                    return record
            record = ModelRecord(version=self._next_version(data), ref=ref, base_model=ref)
            data.models.append(record)
        return self.get(record.version)

    def next_version(self) -> int:
        """The version number a new model gets (never reused, even after a failed run)."""
        return self._next_version(self._load())

    def reserve_version(self) -> int:
        """A new version number whose folder `models/vN` is created now, so two runs training
        at the same time never write into the same folder."""
        with _file_lock(self.root / "registry.lock"):
            version = self._next_version(self._load())
            self.model_dir(version).mkdir(parents=True)
        return version

    def _next_version(self, data: _RegistryFile) -> int:
        versions = [r.version for r in data.models]
        taken = [int(p.name[1:]) for p in self.root.glob("v*") if p.name[1:].isdigit()]
        return max(versions + taken, default=0) + 1

    def model_dir(self, version: int) -> Path:
        return self.root / f"v{version}"

    def add(self, record: ModelRecord) -> ModelRecord:
        """Register a new version."""
        with self._transaction() as data:
            if any(r.version == record.version for r in data.models):
                raise RegistryError(f"model version v{record.version} already exists")
            data.models.append(record)
        return self.get(record.version)

    def update(self, version: int, **changes: Any) -> ModelRecord:
        """Change fields of one record (gate, evaluation, search, ...); status is derived."""
        changes.pop("status", None)
        with self._transaction() as data:
            for i, record in enumerate(data.models):
                if record.version == version:
                    data.models[i] = record.model_copy(update=changes)
                    break
            else:
                raise RegistryError(f"no model version v{version}")
        return self.get(version)

    def serving(self, collection: str) -> int | None:
        """The version serving `collection`, if the registry knows it."""
        return self._load().serving.get(collection)

    def history(self, collection: str) -> list[int]:
        """The versions that served `collection`, oldest first, the serving one last."""
        return list(self._load().history.get(collection, []))

    def mark_serving(self, collection: str, version: int) -> None:
        """Record that `version` now serves `collection` (pushed onto its history)."""
        with self._transaction() as data:
            if not any(r.version == version for r in data.models):
                raise RegistryError(f"no model version v{version}")
            data.serving[collection] = version
            stack = data.history.setdefault(collection, [])
            if not stack or stack[-1] != version:
                stack.append(version)

    def rollback_target(self, collection: str) -> int:
        """The version that served `collection` before the current one (never a later one)."""
        stack = self.history(collection)
        if len(stack) < 2:
            raise RegistryError(
                f"collection {collection!r} has no earlier model version to roll back to"
                + (f" (only v{stack[-1]} has served it)" if stack else "")
            )
        return stack[-2]

    def mark_rolled_back(self, collection: str, *, from_version: int) -> int:
        """Pop `from_version` off the history; the version below it serves again.

        Raises:
            RegistryError: `from_version` is not what serves (another admin operation won
                the race), or nothing served before it.
        """
        with self._transaction() as data:
            stack = data.history.get(collection, [])
            if not stack or stack[-1] != from_version:
                raise RegistryError(
                    f"collection {collection!r} is not served by v{from_version} any more "
                    f"(history: {stack}); nothing rolled back"
                )
            if len(stack) < 2:
                raise RegistryError(
                    f"collection {collection!r} has no earlier model version to roll back to"
                )
            stack.pop()
            data.serving[collection] = stack[-1]
            return stack[-1]

    def reconcile(self, collection: str, alias_version: int) -> bool:
        """Make the registry agree with the alias (the truth); True when it had to change."""
        if self.serving(collection) == alias_version:
            return False
        if not any(r.version == alias_version for r in self.records()):
            logger.warning(
                "the alias of %s points at v%d, which the registry does not know",
                collection,
                alias_version,
            )
            return False
        logger.warning(
            "registry said v%s serves %s but its alias points at v%d; recording v%d",
            self.serving(collection),
            collection,
            alias_version,
            alias_version,
        )
        self.mark_serving(collection, alias_version)
        return True


# flock locks belong to an open file, so two opens in one process would block each other:
# threads of one process share one lock per path, taken under a thread lock.
_held: dict[Path, tuple[threading.RLock, list[int]]] = {}
_held_guard = threading.Lock()


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` across processes (and threads of this one); re-entrant."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = path.resolve()
    with _held_guard:
        thread_lock, depth = _held.setdefault(key, (threading.RLock(), [0]))
    with thread_lock:
        handle: IO[str] | None = None
        if depth[0] == 0:
            handle = path.open("a+", encoding="utf-8")
            _flock(handle)
        depth[0] += 1
        try:
            yield
        finally:
            depth[0] -= 1
            if handle is not None:
                handle.close()  # releases the flock


def _flock(handle: IO[str]) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: one process per data dir is the rule there
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
