"""One place that turns model settings into an encoder: torch or the ONNX export.

Callers get a `core.encoder.Encoder` either way (`SentenceTransformerEncoder` on torch, or
`core.onnx_encoder.OnnxEncoder`), so they never branch on the backend. Choosing the ONNX path
imports neither torch nor sentence-transformers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ragctl.core.encoder import Encoder, SentenceTransformerEncoder, resolve_model
from ragctl.core.errors import ConfigError
from ragctl.core.onnx_encoder import FP32_FILE, INT8_FILE, ONNX_SUBDIR, OnnxEncoder
from ragctl.core.settings import ModelBackend, ModelSettings

logger = logging.getLogger(__name__)

_CPU_DEVICES = (None, "", "cpu")
_NVIDIA_DEVICE = Path("/dev/nvidia0")


def nvidia_gpu_visible() -> bool:
    """Whether this process can see an NVIDIA GPU, told without importing torch (its device
    node exists and CUDA_VISIBLE_DEVICES does not hide every device)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = visible is not None and visible.strip() in ("", "-1")
    return _NVIDIA_DEVICE.exists() and not hidden


# Intra-op threads for encoders this process loads without naming any (`set_threads`).
_process_threads: int | None = None


def set_threads(threads: int | None) -> None:
    """Intra-op threads of every encoder this process loads from now on without naming its
    own (`serve` sets `retriever.torch_threads`): torch's global setting when the torch
    backend loads, onnxruntime's per session otherwise. None: the libraries' defaults."""
    global _process_threads
    _process_threads = threads


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
    `torch`. It stays on torch when `device` names an accelerator (`cuda`, `mps`), or is unset
    on a machine with a visible NVIDIA GPU (torch would pick it): the ONNX encoder runs on CPU.
    An explicit backend is returned as is (loading checks its files).
    """
    if requested is not ModelBackend.AUTO:
        return requested
    if device not in _CPU_DEVICES or onnx_dir is None:
        return ModelBackend.TORCH
    if not device and nvidia_gpu_visible():
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
    model_ref: str | None = None,
) -> Encoder:
    """The encoder `settings` ask for (`settings.backend`, resolved by `resolve_backend`).

    Args:
        settings: Model, prompts, batch size, device and backend.
        shortlist_dims: Matryoshka shortlist dims.
        onnx_dir: Where the model's export is; None = `<model folder>/onnx`.
        int8_approved: The gate's verdict that int8 holds the quality (lets `auto` pick int8).
        threads: Intra-op threads (None = what `set_threads` set, else the library default:
            one per physical core).
        model_ref: How the encoder names its model (default: `settings.name_or_path`), e.g.
            the registry ref `models/vN` of a path.

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
    threads = _process_threads if threads is None else threads
    if backend is ModelBackend.TORCH:
        if threads:
            import torch

            torch.set_num_threads(threads)
        torch_encoder = SentenceTransformerEncoder.load(settings, shortlist_dims)
        if model_ref is not None:
            torch_encoder.model_ref = model_ref
        return torch_encoder
    if onnx_dir is None:
        raise ConfigError(
            f"model.backend = {backend.value!r} needs a local model folder with an ONNX export; "
            f"{settings.name_or_path!r} is not a local folder (use 'torch' or 'auto')"
        )
    onnx_file = onnx_dir / (INT8_FILE if backend is ModelBackend.ONNX_INT8 else FP32_FILE)
    return OnnxEncoder.load(
        resolve_model(settings.name_or_path),
        onnx_file,
        model_ref=settings.name_or_path if model_ref is None else model_ref,
        shortlist_dims=shortlist_dims,
        query_prompt=settings.query_prompt,
        document_prompt=settings.document_prompt,
        batch_size=settings.batch_size,
        threads=threads,
        backend=backend.value,
    )
