"""Which search mode (and fusion) a collection is served with, and why.

`settings.search.mode` = auto takes the profile that retune measured best for the serving
model version on held-out queries (recorded in the registry), else hybrid where the collection
has lexical vectors, else dense. An explicit mode in settings or in a request wins over auto;
the fusion weights are the tuned ones when there are any, else `settings.search`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ragctl.core.settings import Settings
from ragctl.core.store.base import DENSE, HYBRID, CollectionSpec, FusionParams

logger = logging.getLogger(__name__)

AUTO = "auto"


@dataclass(frozen=True)
class SearchProfile:
    """A collection's default search mode and fusion, and where they came from."""

    mode: str
    fusion: FusionParams
    source: str  # "tuned", "settings" or "default"

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "fusion": self.fusion.to_dict(), "source": self.source}


def settings_fusion(settings: Settings) -> FusionParams:
    """The fusion given by `settings.search`."""
    search = settings.search
    return FusionParams(
        method=search.fusion,
        rrf_k=search.rrf_k,
        dense_weight=search.dense_weight,
        sparse_weight=search.sparse_weight,
        candidates=search.hybrid_candidates,
    )


def resolve_profile(
    settings: Settings, spec: CollectionSpec, tuned: Mapping[str, Any] | None
) -> SearchProfile:
    """The profile `spec` is served with (see the module docstring)."""
    fusion = settings_fusion(settings)
    if tuned and tuned.get("fusion"):
        fusion = FusionParams.from_dict(
            {**fusion.to_dict(), **tuned["fusion"], "candidates": fusion.candidates}
        )
    wanted = settings.search.mode
    if wanted == AUTO:
        if tuned and tuned.get("mode"):
            mode, source = str(tuned["mode"]), "tuned"
        else:
            mode, source = (HYBRID if spec.lexical is not None else DENSE), "default"
    else:
        mode, source = wanted, "settings"
    if mode != DENSE and spec.lexical is None:
        logger.warning("%s has no lexical vectors; serving %s mode as dense", spec.physical, mode)
        mode, source = DENSE, f"{source} (dense: no lexical vectors)"
    return SearchProfile(mode, fusion, source)


def tuned_profile(settings: Settings, spec: CollectionSpec) -> Mapping[str, Any] | None:
    """The registry's tuned profile of the model version that embedded `spec`, if any."""
    from ragctl.core.registry import ModelRegistry, RegistryError

    try:
        return ModelRegistry(settings.data_dir).get(spec.version).search
    except RegistryError:
        return None
