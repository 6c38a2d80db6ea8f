"""Pairing collections with the model that embedded them.

Query vectors and stored vectors must always come from the same model: a collection's spec
names its model, and `encoder_for` loads exactly that one.
"""

from __future__ import annotations

import logging

from core.encoder import Encoder
from core.settings import ModelSettings, Settings
from core.store.base import CollectionSpec, VectorStore, physical_name

logger = logging.getLogger(__name__)


def encoder_for(spec: CollectionSpec, model: ModelSettings) -> Encoder:
    """Load the model that embedded `spec`, with the prompts it was embedded with."""
    settings = model.model_copy(
        update={
            "name_or_path": spec.model,
            "query_prompt": spec.query_prompt,
            "document_prompt": spec.document_prompt,
        }
    )
    return Encoder.load(settings, spec.shortlist_dims)


def spec_for_new(name: str, version: int, encoder: Encoder) -> CollectionSpec:
    """The spec of a new physical collection embedded by `encoder`."""
    return CollectionSpec(
        name=name,
        version=version,
        model=encoder.model_ref,
        dim=encoder.dim,
        shortlist_dims=encoder.shortlist_dims,
        query_prompt=encoder.query_prompt,
        document_prompt=encoder.document_prompt,
    )


def open_or_create(
    store: VectorStore, settings: Settings, name: str, *, encoder: Encoder | None = None
) -> tuple[CollectionSpec, Encoder]:
    """The serving collection `name` and its encoder, creating `NAME__v1` if there is none.

    An existing collection keeps the model it was embedded with; a different model setting
    is reported and ignored (switching models is a re-embed, done by promotion).
    """
    target = store.aliases().get(name)
    if target is not None:
        spec = store.spec(target)
        if settings.model.name_or_path != spec.model:
            logger.warning(
                "collection %s is embedded with model %r (v%d); ignoring model setting %r",
                name,
                spec.model,
                spec.version,
                settings.model.name_or_path,
            )
        if encoder is None or encoder.model_ref != spec.model:
            encoder = encoder_for(spec, settings.model)
        return spec, encoder
    if encoder is None:
        encoder = Encoder.load(settings.model, settings.store.shortlist_dims)
    spec = spec_for_new(name, 1, encoder)
    if spec.physical in {s.physical for s in store.list_specs()}:
        # NAME__v1 exists without an alias (an interrupted first ingest): adopt it.
        spec = store.spec(physical_name(name, 1))
    else:
        store.create_collection(spec)
    store.set_alias(name, spec.physical)
    return spec, encoder
