"""What the retriever serves: one immutable (collection, encoder) pair, swapped atomically.

A search takes one `Serving` snapshot from the `ServingHolder` and uses it for both encoding
and searching, so an activation or rollback that swaps the pair mid-request never mixes the
query vectors of one model with the stored vectors of another.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragctl.core.collections import BoundCollection, encoder_for, open_or_create
from ragctl.core.profile import SearchProfile, resolve_profile, tuned_profile
from ragctl.ingest.pipeline import make_chunker

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


def load_serving(
    store: VectorStore, settings: Settings, *, encoder: Encoder | None = None
) -> Serving:
    """The pair behind the alias `settings.collection`, creating `NAME__v1` if there is none."""
    opened = open_or_create(store, settings, settings.collection, encoder=encoder)
    return build_serving(store, opened.spec, settings, encoder=opened.encoder)


def _embedded_by(spec: CollectionSpec, encoder: Encoder) -> bool:
    return (
        encoder.model_ref == spec.model
        and encoder.query_prompt == spec.query_prompt
        and encoder.document_prompt == spec.document_prompt
    )
