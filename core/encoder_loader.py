"""One place that turns model settings into an encoder: torch or the ONNX export.

Callers get a `core.encoder.Encoder` either way (`SentenceTransformerEncoder` on torch, or
`core.onnx_encoder.OnnxEncoder`), so they never branch on the backend. Choosing the ONNX path
imports neither torch nor sentence-transformers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ragctl.core.encoder import Encoder, SentenceTransformerEncoder, resolve_model
from ragctl.core.errors import ConfigError
from ragctl.core.onnx_encoder import FP32_FILE, INT8_FILE, ONNX_SUBDIR, OnnxEncoder
from ragctl.core.settings import ModelBackend, ModelSettings

logger = logging.getLogger(__name__)

_CPU_DEVICES = (None, "", "cpu")


def default_onnx_dir(name_or_path: str) -> Path | None:
    """`<model folder>/onnx` for a local model (`default` included); None for a Hub id."""
    path = Path(resolve_model(name_or_path))
    return path / ONNX_SUBDIR if path.is_dir() else None


def resolve_backend(
    requested: ModelBackend,
    onnx_dir: Path | None,
    *,
    device: str | None = None,
    int8_approved: bool = False,
) -> ModelBackend:
    """The backend that `requested` means for a model whose export (if any) is in `onnx_dir`.

    `auto` resolves to: `onnx-int8` when `int8_approved` (the gate measured int8 within its
    tolerance of fp32) and the int8 file exists; else `onnx` when the fp32 export exists; else
    `torch`. It also stays on torch when `device` names an accelerator (`cuda`, `mps`): the ONNX
    encoder runs on CPU. An explicit backend is returned as is (loading checks its files).
    """
    if requested is not ModelBackend.AUTO:
        return requested
    if device not in _CPU_DEVICES or onnx_dir is None:
        return ModelBackend.TORCH
    if int8_approved and (onnx_dir / INT8_FILE).is_file():
        return ModelBackend.ONNX_INT8
    if (onnx_dir / FP32_FILE).is_file():
        return ModelBackend.ONNX
    return ModelBackend.TORCH


def load_encoder(
    settings: ModelSettings,
    shortlist_dims: Sequence[int],
    *,
    onnx_dir: Path | None = None,
    int8_approved: bool = False,
    threads: int | None = None,
) -> Encoder:
    """The encoder `settings` ask for (`settings.backend`, resolved by `resolve_backend`).

    Args:
        settings: Model, prompts, batch size, device and backend.
        shortlist_dims: Matryoshka shortlist dims.
        onnx_dir: Where the model's export is; None = `<model folder>/onnx`.
        int8_approved: The gate's verdict that int8 holds the quality (lets `auto` pick int8).
        threads: onnxruntime intra-op threads (None = one per physical core); torch ignores it.

    Raises:
        ConfigError: An ONNX backend was asked for a model without a local folder.
        ModelLoadError: The model or its export cannot be loaded.
    """
    if onnx_dir is None:
        onnx_dir = default_onnx_dir(settings.name_or_path)
    backend = resolve_backend(
        settings.backend, onnx_dir, device=settings.device, int8_approved=int8_approved
    )
    logger.info("model %s: %s backend", settings.name_or_path, backend.value)
    if backend is ModelBackend.TORCH:
        return SentenceTransformerEncoder.load(settings, shortlist_dims)
    if onnx_dir is None:
        raise ConfigError(
            f"model.backend = {backend.value!r} needs a local model folder with an ONNX export; "
            f"{settings.name_or_path!r} is not a local folder (use 'torch' or 'auto')"
        )
    onnx_file = onnx_dir / (INT8_FILE if backend is ModelBackend.ONNX_INT8 else FP32_FILE)
    return OnnxEncoder.load(
        resolve_model(settings.name_or_path),
        onnx_file,
        model_ref=settings.name_or_path,
        shortlist_dims=shortlist_dims,
        query_prompt=settings.query_prompt,
        document_prompt=settings.document_prompt,
        batch_size=settings.batch_size,
        threads=threads,
        backend=backend.value,
    )
