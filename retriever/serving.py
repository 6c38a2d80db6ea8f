"""What the retriever serves: per collection, one immutable (collection, encoder) pair,
swapped atomically.

A search takes one `Serving` snapshot from its collection's `ServingHolder` and uses it for
both encoding and searching, so an activation or rollback that swaps the pair mid-request
never mixes the query vectors of one model with the stored vectors of another.

`ServedCollections` holds one `ServedCollection` per collection (alias) the server was asked
about, loaded on first use; collections embedded by the same model share one encoder.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ragctl.core.collections import BoundCollection, encoder_for, open_or_create
from ragctl.core.profile import SearchProfile, resolve_profile, tuned_profile
from ragctl.ingest.pipeline import make_chunker
from ragctl.retriever.errors import NotFoundError

if TYPE_CHECKING:
    from ragctl.core.encoder import Encoder
    from ragctl.core.settings import Settings
    from ragctl.core.store.base import CollectionSpec, VectorStore
    from ragctl.ingest.chunker import Chunker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Serving(BoundCollection):
    """The served collection with its store and encoder, a chunker for that model, and the
    collection's default search mode and fusion."""

    chunker: Chunker
    profile: SearchProfile

    @property
    def model_version(self) -> int:
        """The collection's model version (N of `NAME__vN`)."""
        return self.spec.version


class ServingHolder:
    """Holds the current `Serving`; readers take a snapshot, writers swap it atomically."""

    def __init__(self, serving: Serving) -> None:
        self._serving = serving
        self._lock = threading.Lock()

    def current(self) -> Serving:
        """The pair to use for one whole request."""
        return self._serving  # one attribute read: atomic

    def swap(self, serving: Serving) -> Serving:
        """Serve `serving` from now on; returns the pair it replaced."""
        with self._lock:
            previous, self._serving = self._serving, serving
        logger.info(
            "serving %s (model %s, %s search)",
            serving.physical,
            serving.spec.model,
            serving.profile.mode,
        )
        return previous


def build_serving(
    store: VectorStore, spec: CollectionSpec, settings: Settings, *, encoder: Encoder | None = None
) -> Serving:
    """The serving pair of `spec`, reusing `encoder` when it is the model that embedded it."""
    if encoder is None or not _embedded_by(spec, encoder):
        encoder = encoder_for(spec, settings)
    chunker = make_chunker(encoder, settings.chunking.size_tokens, settings.chunking.overlap_tokens)
    profile = resolve_profile(settings, spec, tuned_profile(settings, spec))
    return Serving(store, spec, encoder, chunker, profile)


def _embedded_by(spec: CollectionSpec, encoder: Encoder) -> bool:
    return (
        encoder.model_ref == spec.model
        and encoder.query_prompt == spec.query_prompt
        and encoder.document_prompt == spec.document_prompt
    )


@dataclass(eq=False)
class ServedCollection:
    """One collection (alias) the server serves: its pair, and the locks of its writes.

    Attributes:
        name: The alias requests name (`docs`).
        holder: Its current `Serving`, swapped atomically by reload, activate and rollback.
        write_lock: One writer at a time in this collection (an upsert plans, then writes; an
            admin switch catches up under it).
        admin_lock: One admin operation (activate, rollback, reload) at a time on it here.
    """

    name: str
    holder: ServingHolder
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    admin_lock: threading.Lock = field(default_factory=threading.Lock)

    def current(self) -> Serving:
        """The pair to use for one whole request."""
        return self.holder.current()


class ServedCollections:
    """The collections of one server, each loaded on first use (its model loads then).

    Args:
        store: The open store.
        settings: `collection` names the default collection; models load per its settings.
        encoder: An already-loaded encoder, used for every collection it embedded.
    """

    def __init__(
        self, store: VectorStore, settings: Settings, *, encoder: Encoder | None = None
    ) -> None:
        self.store = store
        self.settings = settings
        self._given = encoder
        self._served: dict[str, ServedCollection] = {}
        self._loading: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.admin_lock = threading.Lock()  # creating a collection

    @property
    def default(self) -> str:
        """The collection of requests that name none."""
        return self.settings.collection

    def open_default(self) -> ServedCollection:
        """Load the default collection, creating `NAME__v1` if there is none (at startup)."""
        opened = open_or_create(self.store, self.settings, self.default, encoder=self._given)
        serving = build_serving(self.store, opened.spec, self.settings, encoder=opened.encoder)
        served = ServedCollection(self.default, ServingHolder(serving))
        with self._lock:
            self._served[self.default] = served
        return served

    def get(self, name: str | None = None) -> ServedCollection:
        """The collection `name` (None: the default), loading its model on first use.

        Raises:
            NotFoundError: 404 `collection_not_found`: no alias of that name in the store.
        """
        name = name or self.default
        served = self._served.get(name)
        if served is not None:
            return served
        with self._lock:
            loading = self._loading.setdefault(name, threading.Lock())
        with loading:  # one load per collection; other collections keep serving meanwhile
            served = self._served.get(name)
            if served is None:
                served = self._load(name)
                with self._lock:
                    self._served[name] = served
        return served

    def loaded(self) -> list[ServedCollection]:
        """The collections loaded so far, the default first."""
        with self._lock:
            served = list(self._served.values())
        return sorted(served, key=lambda s: (s.name != self.default, s.name))

    def loaded_one(self, name: str) -> ServedCollection | None:
        """The collection `name` if it is loaded, else None (nothing is loaded)."""
        return self._served.get(name)

    def target(self, name: str | None) -> str:
        """The physical collection requests for `name` use now, without loading a model: the
        served one when loaded, else the alias's target.

        Raises:
            NotFoundError: 404 `collection_not_found`.
        """
        name = name or self.default
        served = self._served.get(name)
        if served is not None:
            return served.current().physical
        target = self.store.aliases().get(name)
        if target is None:
            raise self.unknown(name)
        return target

    def unknown(self, name: str) -> NotFoundError:
        """The 404 for a collection name the store does not have, naming those it has."""
        known = sorted(self.store.aliases())
        shown = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
        return NotFoundError(
            "collection_not_found",
            f"no collection {name!r}; known collections: {shown or 'none'}",
            field="collection",
        )

    def encoder_for(self, spec: CollectionSpec) -> Encoder:
        """The encoder of the model that embedded `spec`: one already loaded for another
        collection (or given) when it is that model, else that model loaded."""
        shared = self.shared_encoder(spec)
        return shared if shared is not None else encoder_for(spec, self.settings)

    def shared_encoder(self, spec: CollectionSpec) -> Encoder | None:
        """An already-loaded encoder of the model (prompts, shortlist dims) of `spec`."""
        candidates = [s.current().encoder for s in self.loaded()]
        if self._given is not None:
            candidates.append(self._given)
        for encoder in candidates:
            if _embedded_by(spec, encoder) and tuple(encoder.shortlist_dims) == tuple(
                spec.shortlist_dims
            ):
                return encoder
        return None

    def shared_encoder_for_settings(self) -> Encoder | None:
        """For a new collection: the encoder given, else an already-loaded one of the
        configured model (`model.*`, `store.shortlist_dims`), else None (load it)."""
        if self._given is not None:
            return self._given
        model = self.settings.model
        for served in self.loaded():
            encoder = served.current().encoder
            if (
                encoder.model_ref == model.name_or_path
                and tuple(encoder.shortlist_dims) == tuple(self.settings.store.shortlist_dims)
                and model.query_prompt in (None, encoder.query_prompt)
                and model.document_prompt in (None, encoder.document_prompt)
            ):
                return encoder
        return None

    def build(self, spec: CollectionSpec, *, encoder: Encoder | None = None) -> Serving:
        """The serving pair of `spec`, with `encoder` or a shared (else loaded) one."""
        encoder = encoder or self.encoder_for(spec)
        return build_serving(self.store, spec, self.settings, encoder=encoder)

    def _load(self, name: str) -> ServedCollection:
        from ragctl.core.registry import ModelRegistry

        target = self.store.aliases().get(name)
        if target is None:
            raise self.unknown(name)
        spec = self.store.spec(target)
        ModelRegistry(self.settings.data_dir).reconcile(name, spec.version)  # alias = truth
        serving = self.build(spec)
        logger.info("loaded collection %s: %s (model %s)", name, spec.physical, spec.model)
        return ServedCollection(name, ServingHolder(serving))
