"""Promotion and rollback: re-embed into NAME__vN, verify, switch the alias, mark the registry.

Re-embedding is a sync: it makes the target collection hold exactly the source's chunk ids,
embedding only the missing ones with the target's model. That makes it resumable (a killed
run continues where it stopped) and lets a rollback catch up with documents that changed
while the newer model served, without re-embedding everything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ragctl.core.collections import BoundCollection, encoder_for, spec_for_new
from ragctl.core.encoder import Encoder
from ragctl.core.errors import CollectionNotFoundError
from ragctl.core.registry import ModelRecord, ModelRegistry
from ragctl.core.settings import Settings
from ragctl.core.store.base import CollectionSpec, VectorStore, physical_name
from ragctl.tuner.errors import RejectedModelError, TunerError

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total)


@dataclass(frozen=True)
class SyncReport:
    source: str
    target: str
    points: int
    embedded: int
    deleted: int
    seconds: float


def sync_collection(
    target: BoundCollection,
    source: str,
    *,
    batch_size: int = 256,
    on_progress: Progress | None = None,
    verify: bool = True,
) -> SyncReport:
    """Make `target` hold exactly the chunks of the physical collection `source` (in the same
    store), embedded by the target's encoder.

    Chunks already in `target` (same chunk id = same text) are kept as they are. With
    `verify`, equal point counts are required at the end (pass False for a first pass while
    the source may still be written to; a final pass under a write lock then verifies).
    """
    started = time.perf_counter()
    store, encoder = target.store, target.encoder
    have = store.all_chunk_ids(target.physical)
    want: set[str] = set()
    total = store.count(source)
    embedded = done = 0
    for batch in store.scroll_chunks(source, batch_size=batch_size):
        want.update(c.chunk_id for c in batch)
        missing = [c for c in batch if c.chunk_id not in have]
        if missing:
            vectors = encoder.encode_documents([c.text for c in missing])
            store.upsert(target.physical, missing, vectors)
            embedded += len(missing)
        done += len(batch)
        if on_progress is not None:
            on_progress(done, total)
    extra = sorted(have - want)
    store.delete_chunks(target.physical, extra)
    source_count, target_count = store.count(source), store.count(target.physical)
    if verify and source_count != target_count:
        raise TunerError(
            f"re-embedding left {target.physical} with {target_count} points but {source} has "
            f"{source_count}; was the collection written to meanwhile? Run it again to catch up"
        )
    return SyncReport(
        source, target.physical, target_count, embedded, len(extra), time.perf_counter() - started
    )


def reembed(
    store: VectorStore,
    *,
    collection: str,
    version: int,
    encoder: Encoder,
    batch_size: int = 256,
    on_progress: Progress | None = None,
    verify: bool = True,
) -> SyncReport:
    """Build (or finish building) `NAME__v{version}` from the serving collection's chunks."""
    source = store.resolve(collection)
    physical = physical_name(collection, version)
    if physical not in {s.physical for s in store.list_specs()}:
        # The lexical vectors do not depend on the model: the same recipe, recomputed.
        lexical = store.spec(source).lexical
        store.create_collection(spec_for_new(collection, version, encoder, lexical))
    spec = store.spec(physical)
    if spec.model != encoder.model_ref:
        raise TunerError(f"{physical} exists but was embedded by {spec.model!r}")
    target = BoundCollection(store, spec, encoder)
    report = sync_collection(
        target, source, batch_size=batch_size, on_progress=on_progress, verify=verify
    )
    logger.info("re-embedded %s -> %s: %s", source, physical, report)
    return report


def version_encoder(serving: CollectionSpec, record: ModelRecord, settings: Settings) -> Encoder:
    """The encoder of model `record`, with the serving collection's dims and prompts."""
    return encoder_for(replace(serving, version=record.version, model=record.ref), settings)


def check_servable(record: ModelRecord, *, force: bool) -> None:
    """Refuse a version the gate rejected unless `force` is set."""
    if record.gate_rejected and not force:
        reason = (record.gate or {}).get("reason", "")
        raise RejectedModelError(
            f"v{record.version} was rejected by the gate ({reason[:200]}); "
            "force it to serve it anyway"
        )


def switch(store: VectorStore, registry: ModelRegistry, collection: str, version: int) -> str:
    """Point the alias at `NAME__v{version}` (atomic) and record it in the registry."""
    target = physical_name(collection, version)
    store.spec(target)  # must exist
    with registry.admin_lock():
        store.set_alias(collection, target)
        registry.mark_serving(collection, version)
    return target


def kept_versions(store: VectorStore, collection: str) -> Sequence[int]:
    """Versions of `collection` whose physical collection still exists."""
    return [s.version for s in store.list_specs() if s.name == collection]


@dataclass(frozen=True)
class RollbackReport:
    collection: str
    from_physical: str
    to_physical: str
    version: int
    caught_up: SyncReport | None


def rollback(
    store: VectorStore,
    registry: ModelRegistry,
    collection: str,
    *,
    load_encoder: Callable[[CollectionSpec], Encoder],
    force: bool = False,
) -> RollbackReport:
    """Serve the version that served before the current one again (history only goes back).

    Its collection was kept, so nothing is re-embedded; only chunks added, changed or deleted
    since then are caught up (embedded with that version's own model) before the switch.
    Rolling back onto a version the gate rejected (it served because it was forced) needs
    `force` again.

    Raises:
        RegistryError: Nothing served before the current version.
        RejectedModelError: The earlier version was rejected by the gate and `force` is unset.
    """
    with registry.admin_lock():
        return _rollback(store, registry, collection, load_encoder=load_encoder, force=force)


def _rollback(
    store: VectorStore,
    registry: ModelRegistry,
    collection: str,
    *,
    load_encoder: Callable[[CollectionSpec], Encoder],
    force: bool,
) -> RollbackReport:
    current = store.resolve(collection)
    version = registry.rollback_target(collection)
    check_servable(registry.get(version), force=force)
    target = physical_name(collection, version)
    try:
        spec = store.spec(target)
    except CollectionNotFoundError as exc:
        raise TunerError(
            f"cannot roll back to v{version}: its collection {target} was dropped"
        ) from exc
    caught_up = None
    if store.all_chunk_ids(current) != store.all_chunk_ids(target):
        caught_up = sync_collection(BoundCollection(store, spec, load_encoder(spec)), current)
    store.set_alias(collection, target)
    registry.mark_rolled_back(collection, from_version=store.spec(current).version)
    return RollbackReport(collection, current, target, version, caught_up)
