"""Pairing collections with the model that embedded them.

Query vectors and stored vectors must always come from the same model: a collection's spec
names its model, `encoder_for` loads exactly that one, and a `BoundCollection` carries the
two together with the store that holds the collection.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ragctl.core.encoder import Encoder
from ragctl.core.lexical import LexicalSpec
from ragctl.core.registry import ModelRegistry, RegistryError, resolve_ref
from ragctl.core.settings import ModelBackend, ModelSettings, Settings
from ragctl.core.store.base import CollectionSpec, VectorStore, physical_name

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BoundCollection:
    """A physical collection, the store holding it, and the encoder of the model that embedded
    it: what reading, searching and writing the collection take."""

    store: VectorStore
    spec: CollectionSpec
    encoder: Encoder

    @property
    def physical(self) -> str:
        """The physical collection (`NAME__vN`)."""
        return self.spec.physical


def encoder_for(spec: CollectionSpec, settings: Settings) -> Encoder:
    """Load the model that embedded `spec`, with the prompts it was embedded with.

    Registry refs (`models/vN`) resolve under `settings.data_dir`; device, batch size and
    trust_remote_code come from `settings.model`, and so does the backend (`load_model`).
    """
    model = settings.model.model_copy(
        update={
            "name_or_path": resolve_ref(spec.model, settings.data_dir),
            "query_prompt": spec.query_prompt,
            "document_prompt": spec.document_prompt,
        }
    )
    # the encoder reports the registry ref, not the resolved path
    return load_model(model, spec.shortlist_dims, settings, ref=spec.model, version=spec.version)


def load_model(
    model: ModelSettings,
    shortlist_dims: Sequence[int],
    settings: Settings,
    *,
    ref: str | None = None,
    version: int | None = None,
) -> Encoder:
    """The encoder of `model` on the backend `model.backend` resolves to (see docs/onnx.md).

    `ref` is the model as the registry names it (default: `model.name_or_path`; the encoder
    reports it as its `model_ref`), whose export
    lives under `settings.data_dir` (made now, once, when the backend wants one and it is
    missing); `version` is its registry version, whose gate decides whether int8 may serve.
    """
    from ragctl.core.encoder_loader import load_encoder
    from ragctl.core.onnx_exports import ensure_export

    ref = model.name_or_path if ref is None else ref
    backend = model.backend
    if model.device not in (None, "", "cpu") and backend is ModelBackend.AUTO:
        backend = ModelBackend.TORCH  # the ONNX encoder runs on CPU only
    onnx_dir = ensure_export(ref, settings.data_dir, backend)
    if onnx_dir is None:
        backend = ModelBackend.TORCH
    return load_encoder(
        model.model_copy(update={"backend": backend}),
        shortlist_dims,
        onnx_dir=onnx_dir,
        int8_approved=version is not None and int8_approved(settings.data_dir, version),
        model_ref=ref,
    )


def int8_approved(data_dir: Path, version: int) -> bool:
    """Whether the gate let the int8 export of model `version` serve (see tuner.int8_gate)."""
    try:
        gate = ModelRegistry(data_dir).get(version).gate or {}
    except RegistryError:
        return False
    return bool((gate.get("int8") or {}).get("serve", False))


def bind_collection(
    store: VectorStore, spec: CollectionSpec, settings: Settings, *, encoder: Encoder | None = None
) -> BoundCollection:
    """`spec` in `store` with the model that embedded it: `encoder` if it is that model, else
    that model loaded."""
    if encoder is None or encoder.model_ref != spec.model:
        encoder = encoder_for(spec, settings)
    return BoundCollection(store, spec, encoder)


def spec_for_new(
    name: str, version: int, encoder: Encoder, lexical: LexicalSpec | None = None
) -> CollectionSpec:
    """The spec of a new physical collection embedded by `encoder` (with lexical vectors
    made to `lexical`, if given)."""
    return CollectionSpec(
        name=name,
        version=version,
        model=encoder.model_ref,
        dim=encoder.dim,
        shortlist_dims=encoder.shortlist_dims,
        query_prompt=encoder.query_prompt,
        document_prompt=encoder.document_prompt,
        lexical=lexical,
    )


def open_or_create(
    store: VectorStore, settings: Settings, name: str, *, encoder: Encoder | None = None
) -> BoundCollection:
    """The serving collection `name` with its encoder, creating `NAME__v1` if there is none.

    An existing collection keeps the model it was embedded with; a different model setting
    is reported and ignored (switching models is a re-embed, done by promotion).
    """
    target = store.aliases().get(name)
    if target is not None:
        spec = store.spec(target)
        ModelRegistry(settings.data_dir).reconcile(name, spec.version)  # the alias is the truth
        if settings.model.name_or_path != spec.model:
            logger.warning(
                "collection %s is embedded with model %r (v%d); ignoring model setting %r",
                name,
                spec.model,
                spec.version,
                settings.model.name_or_path,
            )
        return bind_collection(store, spec, settings, encoder=encoder)
    if encoder is None:
        encoder = load_model(settings.model, settings.store.shortlist_dims, settings)
    registry = ModelRegistry(settings.data_dir)
    version = registry.ensure_base(encoder.model_ref).version
    physical = physical_name(name, version)
    if physical in {s.physical for s in store.list_specs()}:
        # Created but never aliased (an interrupted first ingest): adopt it.
        spec = store.spec(physical)
    else:
        spec = spec_for_new(name, version, encoder, settings.lexical.spec())
        store.create_collection(spec)
    store.set_alias(name, spec.physical)
    registry.mark_serving(name, version)
    return BoundCollection(store, spec, encoder)
