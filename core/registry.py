"""The model registry: versioned embedding models under `data_dir/models/`.

Layout:
  models/registry.json   every version's record plus, per collection, which version serves
                         and the order versions served in (for rollback); replaced atomically
  models/vN/             a sentence-transformers folder for each trained version (N >= 2)

Version 1 is the base model the first collection was embedded with (a Hub id, a local path or
`default`); it is recorded, never copied. Model version N embeds physical collection NAME__vN.
Registry model refs are stored relative to the data dir (`models/v2`) so it can be moved.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from ragctl.core.errors import RagctlError
from ragctl.core.store.files import read_json, write_json_atomic

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


class _RegistryFile(BaseModel):
    models: list[ModelRecord] = []
    serving: dict[str, int] = {}  # collection -> version
    history: dict[str, list[int]] = {}  # collection -> versions in the order they served


def resolve_ref(ref: str, data_dir: Path) -> str:
    """A model ref made loadable: registry refs become paths under `data_dir`."""
    if ref.startswith(REGISTRY_PREFIX):
        return str(data_dir / ref)
    return ref


class ModelRegistry:
    """Reads and atomically rewrites `models/registry.json`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "models"
        self._path = self.root / "registry.json"

    def _load(self) -> _RegistryFile:
        return _RegistryFile.model_validate(read_json(self._path, {}))

    def _save(self, data: _RegistryFile) -> None:
        write_json_atomic(self._path, data.model_dump(mode="json"))

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
        for record in self._load().models:
            if record.ref == ref:
                return record
        return self.add(ModelRecord(version=self.next_version(), ref=ref, base_model=ref))

    def next_version(self) -> int:
        """The version number a new model gets (never reused, even after a failed run)."""
        versions = [r.version for r in self._load().models]
        taken = [int(p.name[1:]) for p in self.root.glob("v*") if p.name[1:].isdigit()]
        return max(versions + taken, default=0) + 1

    def model_dir(self, version: int) -> Path:
        return self.root / f"v{version}"

    def add(self, record: ModelRecord) -> ModelRecord:
        """Register a new version."""
        data = self._load()
        if any(r.version == record.version for r in data.models):
            raise RegistryError(f"model version v{record.version} already exists")
        data.models.append(record)
        self._save(data)
        return record

    def update(self, version: int, **changes: Any) -> ModelRecord:
        """Change fields of one record (status, gate, evaluation, ...)."""
        data = self._load()
        for i, record in enumerate(data.models):
            if record.version == version:
                data.models[i] = record.model_copy(update=changes)
                self._save(data)
                return data.models[i]
        raise RegistryError(f"no model version v{version}")

    def serving(self, collection: str) -> int | None:
        """The version serving `collection`, if the registry knows it."""
        return self._load().serving.get(collection)

    def history(self, collection: str) -> list[int]:
        return list(self._load().history.get(collection, []))

    def mark_serving(self, collection: str, version: int) -> None:
        """Record that `version` now serves `collection`; the one before it is retired."""
        data = self._load()
        if not any(r.version == version for r in data.models):
            raise RegistryError(f"no model version v{version}")
        previous = data.serving.get(collection)
        data.serving[collection] = version
        data.history.setdefault(collection, []).append(version)
        for i, record in enumerate(data.models):
            if record.version == version:
                data.models[i] = record.model_copy(update={"status": "serving"})
            elif record.version == previous and previous != version:
                still_serving = previous in data.serving.values()
                if not still_serving:
                    data.models[i] = record.model_copy(update={"status": "retired"})
        self._save(data)

    def rollback_target(self, collection: str) -> int:
        """The version that served `collection` before the current one."""
        data = self._load()
        current = data.serving.get(collection)
        for version in reversed(data.history.get(collection, [])):
            if version != current:
                return version
        raise RegistryError(
            f"collection {collection!r} has no earlier model version to roll back to"
        )
