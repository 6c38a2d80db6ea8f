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

from ragctl.core.search import FusionParams, SearchMode
from ragctl.core.settings import Settings
from ragctl.core.store.base import CollectionSpec

logger = logging.getLogger(__name__)

AUTO = "auto"


@dataclass(frozen=True)
class SearchProfile:
    """A collection's default search mode and fusion, and where they came from."""

    mode: SearchMode
    fusion: FusionParams
    source: str  # "tuned", "settings" or "default"


def settings_fusion(settings: Settings) -> FusionParams:
    """The fusion given by `settings.search`."""
    return FusionParams.model_validate(settings.search.model_dump())


def default_profile(settings: Settings, spec: CollectionSpec) -> SearchProfile:
    """The profile `spec` is served with when nothing was measured (no tuned profile)."""
    return resolve_profile(settings, spec, None)


def resolve_profile(
    settings: Settings, spec: CollectionSpec, tuned: Mapping[str, Any] | None
) -> SearchProfile:
    """The profile `spec` is served with (see the module docstring)."""
    fusion = settings_fusion(settings)
    if tuned and tuned.get("fusion"):
        fusion = FusionParams.model_validate(
            {**fusion.model_dump(), **tuned["fusion"], "candidates": fusion.candidates}
        )
    wanted = settings.search.mode
    if wanted == AUTO:
        if tuned and tuned.get("mode"):
            mode, source = SearchMode(tuned["mode"]), "tuned"
        else:
            mode = SearchMode.HYBRID if spec.lexical is not None else SearchMode.DENSE
            source = "default"
    else:
        mode, source = SearchMode(wanted), "settings"
    if mode is not SearchMode.DENSE and spec.lexical is None:
        logger.warning("%s has no lexical vectors; serving %s mode as dense", spec.physical, mode)
        mode, source = SearchMode.DENSE, f"{source} (dense: no lexical vectors)"
    return SearchProfile(mode, fusion, source)


def tuned_profile(settings: Settings, spec: CollectionSpec) -> Mapping[str, Any] | None:
    """The registry's tuned profile of the model version that embedded `spec`, if any."""
    from ragctl.core.registry import ModelRegistry, RegistryError

    try:
        return ModelRegistry(settings.data_dir).get(spec.version).search
    except RegistryError:
        return None
