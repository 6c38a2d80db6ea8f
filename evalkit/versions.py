"""Evaluating a registry version as it is served: its model with the collection's dims and
prompts, searched with the profile (mode and fusion) recorded for it.

`ragctl eval --model v2` (or `2`) resolves here instead of asking the Hugging Face Hub.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ragctl.core.errors import CollectionNotFoundError, StoreLockedError
from ragctl.core.lexical import LexicalSpec
from ragctl.core.profile import SearchProfile, resolve_profile
from ragctl.core.search import SearchMode
from ragctl.core.settings import Settings
from ragctl.core.store.base import CollectionSpec
from ragctl.evalkit.results import HYBRID, HYBRID_DEFAULT, SPARSE, TWO_STAGE

if TYPE_CHECKING:
    from ragctl.core.encoder import Encoder

logger = logging.getLogger(__name__)

_VERSION = re.compile(r"^[vV]?([1-9][0-9]*)$")


def parse_version(text: str) -> int | None:
    """`v2` or `2` -> 2; anything else (a Hub id, a folder, `default`) -> None."""
    match = _VERSION.match(text.strip())
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class ServedVersion:
    """A registry version ready to evaluate as served.

    Attributes:
        version: The model version.
        spec: The collection layout it is evaluated with (its model, the serving collection's
            dims, prompts and lexical recipe; from settings when no collection could be read).
        profile: The search profile it is served with (recorded for it, else the default).
        layout_from: Where `spec`'s dims and prompts came from (a collection, or settings).
        from_collection: Whether they came from a collection (else settings; the model's own
            prompts apply unless settings name some).
    """

    version: int
    spec: CollectionSpec
    profile: SearchProfile
    layout_from: str
    from_collection: bool = True

    @property
    def lexical(self) -> LexicalSpec | None:
        return self.spec.lexical

    def served_row(self, *, tuned_fusion_grid: bool = False) -> str:
        """The report row that measures what users of this version get."""
        if self.profile.mode is SearchMode.DENSE:
            return TWO_STAGE
        if self.profile.mode is SearchMode.SPARSE:
            return SPARSE
        # With the whole grid, `hybrid` is the grid's best; the served fusion is tried first.
        return HYBRID_DEFAULT if tuned_fusion_grid else HYBRID

    def config(self, *, tuned_fusion_grid: bool = False) -> dict[str, Any]:
        """What the report records about the profile it evaluated."""
        return {
            "version": self.version,
            "model": self.spec.model,
            "mode": self.profile.mode.value,
            "fusion": self.profile.fusion.model_dump(mode="json"),
            "source": self.profile.source,
            "row": self.served_row(tuned_fusion_grid=tuned_fusion_grid),
            "layout_from": self.layout_from,
        }


def served_version(settings: Settings, version: int) -> ServedVersion:
    """Version `version` of the registry under `settings.data_dir`, laid out like the serving
    collection `settings.collection` (its dims, prompts, lexical recipe), with its profile.

    The store is only read; when it cannot be opened (another process holds the embedded
    store) or holds no such collection, the layout comes from settings.

    Raises:
        RegistryError: The registry has no such version.
    """
    from ragctl.core.registry import ModelRegistry
    from ragctl.core.store import open_store

    record = ModelRegistry(settings.data_dir).get(version)
    layout: CollectionSpec | None = None
    layout_from = "settings (no serving collection)"
    try:
        with open_store(settings) as store:
            layout = store.spec(store.resolve(settings.collection))
            layout_from = f"collection {layout.physical}"
    except StoreLockedError:
        layout_from = "settings (the store is held by another process)"
        logger.warning("the store is in use; laying v%d out from settings", version)
    except CollectionNotFoundError:
        pass
    if layout is None:
        layout = CollectionSpec(
            name=settings.collection,
            version=version,
            model=record.ref,
            dim=0,
            shortlist_dims=tuple(settings.store.shortlist_dims),
            query_prompt=settings.model.query_prompt or "",
            document_prompt=settings.model.document_prompt or "",
            lexical=settings.lexical.spec(),
        )
    from_collection = layout_from.startswith("collection")
    spec = replace(layout, version=version, model=record.ref)
    profile = resolve_profile(settings, spec, record.search)
    return ServedVersion(version, spec, profile, layout_from, from_collection)


def load_version_encoder(settings: Settings, served: ServedVersion) -> Encoder:
    """The encoder of `served`'s model with its layout's dims and prompts."""
    from ragctl.core.collections import encoder_for
    from ragctl.core.encoder import SentenceTransformerEncoder
    from ragctl.core.registry import resolve_ref

    if served.from_collection:
        return encoder_for(served.spec, settings)
    model = settings.model.model_copy(
        update={"name_or_path": resolve_ref(served.spec.model, settings.data_dir)}
    )
    encoder = SentenceTransformerEncoder.load(model, served.spec.shortlist_dims)
    encoder.model_ref = served.spec.model
    return encoder
