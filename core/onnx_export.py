"""Export a sentence-transformers model's transformer to ONNX: fp32 and int8 (dynamic).

The only module of the ONNX path that needs torch. The fp32 graph comes from `torch.onnx.export`
(the TorchScript exporter with onnxruntime's transformer fusions, else the torch.export-based
exporter; see `_export_checked`); `onnxruntime.quantization.quantize_dynamic` derives the int8
graph from it (int8 weights per channel, activations quantized at run time, MatMul and fused
Attention only: embeddings and layer norms stay fp32, which measured closer to fp32 than
quantizing every supported op).

An export is checked before it is kept: `core.onnx_encoder.OnnxEncoder` on the fp32 graph must
reproduce sentence-transformers' embeddings of a set of probe texts (cosine >= 0.9999 for every
text, with and without prompts), else nothing is written. The int8 graph's agreement is
measured and recorded, not enforced here: whether int8 may serve is the gate's decision, on
ndcg@10.

Layout written into `out_dir` (by default `<model folder>/onnx/`, where sentence-transformers
itself keeps ONNX files): `model.onnx`, `model_int8.onnx`, `export.json` (what was exported,
with what, and the measured agreement). The folder is replaced as a whole, never half-written.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragctl.core.errors import ModelLoadError, RagctlError
from ragctl.core.onnx_encoder import (
    FP32_FILE,
    INT8_FILE,
    MANIFEST_FILE,
    MODEL_INPUTS,
    ONNX_SUBDIR,
    OUTPUT_NAME,
    OnnxEncoder,
)
from ragctl.core.st_config import read_config
from ragctl.core.store.files import write_json_atomic

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

MIN_FP32_COSINE = 0.9999
"""Every probe text's fp32 ONNX embedding must be this close to sentence-transformers'."""
OPSET = 18  # the torch.export-based exporter's
_TORCHSCRIPT_OPSET = 17
# Models above this many bytes of weights keep them in a side file (protobuf's 2 GB limit).
_EXTERNAL_DATA_BYTES = 1_500_000_000

PROBE_TEXTS: tuple[str, ...] = (
    "What is the notice period for terminating the lease?",
    "hi",
    "Plaintiff appeals the district court's grant of summary judgment.",
    "Grind 18 g of coffee for a 36 g espresso shot pulled in 25 to 30 seconds.",
    "ÉCOLE naïve façade — unicode, accents and dashes; emoji 🙂 too.",
    "1234 5678 90 %% && || <tag attr='x'>text</tag>",
    " ".join(["A long passage that runs past the model's sequence limit."] * 80),
    "Mitochondrial dysfunction in neurodegenerative disease: a review of recent findings.",
)
"""Texts of every kind the export is checked on: short, long (truncated), odd characters."""


class ExportError(RagctlError):
    """The model could not be exported, or the export does not reproduce the model."""


@dataclass(frozen=True)
class OnnxExport:
    """What `export_onnx` wrote and measured.

    Attributes:
        directory: The export folder.
        inputs: The graph's inputs.
        exporter: The route that made the fp32 graph (`torchscript+ort-fusion` or `dynamo`).
        fp32_min_cosine: Worst probe-text agreement of the fp32 graph with sentence-transformers.
        int8_min_cosine: The same for the int8 graph.
        int8_mean_cosine: Mean probe-text agreement of the int8 graph.
        seconds: Wall time of the export, checks included.
    """

    directory: Path
    inputs: tuple[str, ...]
    exporter: str
    fp32_min_cosine: float
    int8_min_cosine: float
    int8_mean_cosine: float
    seconds: float

    @property
    def fp32(self) -> Path:
        return self.directory / FP32_FILE

    @property
    def int8(self) -> Path:
        return self.directory / INT8_FILE


def export_onnx(
    model_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    probe_texts: Sequence[str] = PROBE_TEXTS,
) -> OnnxExport:
    """Export the sentence-transformers folder `model_dir` to fp32 and int8 ONNX in `out_dir`.

    Args:
        model_dir: A local sentence-transformers folder (Transformer -> Pooling [-> Normalize]).
        out_dir: The export folder (replaced if it exists); None = `<model_dir>/onnx`.
        probe_texts: Texts the export is checked on against sentence-transformers.

    Raises:
        ModelLoadError: Not a folder this exporter supports (the message says what is not).
        ExportError: No exporter produced a graph that reproduces the model.
    """
    started = time.perf_counter()
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelLoadError(f"ONNX export needs a local model folder; {model_dir} is not one")
    out_dir = Path(out_dir) if out_dir is not None else model_dir / ONNX_SUBDIR
    config = read_config(model_dir)  # refuses unsupported pipelines before any work
    if not (model_dir / "tokenizer.json").is_file():
        raise ModelLoadError(f"model {model_dir} has no tokenizer.json (a fast tokenizer's file)")
    model = _load_sentence_transformer(model_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a server running as another user reads it
    try:
        fp32 = staging / FP32_FILE
        inputs, exporter, large, fp32_cos = _export_checked(model, model_dir, fp32, probe_texts)
        _quantize_int8(fp32, staging / INT8_FILE, large=large)
        int8_cos = _agreement(model, model_dir, staging / INT8_FILE, probe_texts)
        export = OnnxExport(
            directory=out_dir,
            inputs=inputs,
            exporter=exporter,
            fp32_min_cosine=float(fp32_cos.min()),
            int8_min_cosine=float(int8_cos.min()),
            int8_mean_cosine=float(int8_cos.mean()),
            seconds=0.0,
        )
        manifest = _manifest(export, config.max_seq_length, len(probe_texts))
        write_json_atomic(staging / MANIFEST_FILE, manifest)
        (staging / MANIFEST_FILE).chmod(0o644)
        _replace_dir(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    seconds = time.perf_counter() - started
    logger.info(
        "exported %s to %s with %s in %.1f s (fp32 min cosine %.6f, int8 min %.4f)",
        model_dir,
        out_dir,
        exporter,
        seconds,
        export.fp32_min_cosine,
        export.int8_min_cosine,
    )
    return OnnxExport(**{**asdict(export), "seconds": seconds})


def _load_sentence_transformer(model_dir: Path) -> SentenceTransformer:
    try:
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(model_dir), device="cpu")
    except Exception as exc:  # the library raises OSError, ValueError, HF errors...
        raise ModelLoadError(f"cannot load model {model_dir} for export: {exc}") from exc


def _export_checked(
    model: SentenceTransformer, model_dir: Path, path: Path, probe_texts: Sequence[str]
) -> tuple[tuple[str, ...], str, bool, np.ndarray]:
    """Export the fp32 graph with the first route whose graph reproduces the model.

    Routes, fastest graph first: (1) eager attention through the TorchScript exporter, then
    onnxruntime's transformer optimizer fuses attention, embeddings and layer norms (what
    optimum's O2 does; ~1.4x faster batches here); (2) the torch.export-based exporter, unfused
    (its attention pattern is not one onnxruntime fuses). Returns the graph's inputs, the route,
    whether weights went to a side file, and the probe cosines.
    """
    failures = []
    for route, export in (("torchscript+ort-fusion", _export_fused), ("dynamo", _export_dynamo)):
        for leftover in path.parent.iterdir():
            leftover.unlink()
        try:
            inputs, large = export(model, path)
            cosines = _agreement(model, model_dir, path, probe_texts)
        except Exception as exc:  # exporters and optimizers raise many types; try the next
            logger.warning("ONNX export route %s failed: %s", route, exc)
            failures.append(f"{route}: {exc}")
            continue
        if float(cosines.min()) >= MIN_FP32_COSINE:
            return inputs, route, large, cosines
        worst = probe_texts[int(cosines.argmin()) % len(probe_texts)]
        failures.append(
            f"{route}: cosine {float(cosines.min()):.6f} < {MIN_FP32_COSINE} on {worst[:40]!r}"
        )
        logger.warning("ONNX export route %s does not reproduce the model", route)
    raise ExportError(f"no ONNX export of {model_dir} reproduces the model: {'; '.join(failures)}")


def _token_embeddings_module(transformer: Any) -> torch.nn.Module:
    """The module exported: the transformer's token vectors (`last_hidden_state`)."""
    import torch

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor | None = None,
        ) -> torch.Tensor:
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            out = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **extra
            )
            return out.last_hidden_state

    return TokenEmbeddings().eval()


def _prepare(model: SentenceTransformer) -> tuple[Any, tuple[str, ...], tuple[Any, ...], bool]:
    """The fp32 transformer, its input names, sample inputs, and whether it is too big for
    one protobuf file."""
    import torch

    module: Any = model[0]
    transformer = module.auto_model.float().eval()
    sample = module.tokenizer(
        ["a short one", "a somewhat longer second example text"],
        padding=True,
        return_tensors="pt",
    )
    inputs = tuple(name for name in MODEL_INPUTS if name in sample)
    if "input_ids" not in inputs or "attention_mask" not in inputs:
        raise ExportError(f"the tokenizer gives {sorted(sample)}; need input_ids, attention_mask")
    args = tuple(sample[name].to(torch.int64) for name in inputs)
    size_bytes = sum(p.numel() * p.element_size() for p in transformer.parameters())
    return transformer, inputs, args, size_bytes > _EXTERNAL_DATA_BYTES


def _export_fused(model: SentenceTransformer, path: Path) -> tuple[tuple[str, ...], bool]:
    import torch
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    transformer, inputs, args, large = _prepare(model)
    previous = transformer.config._attn_implementation
    transformer.set_attn_implementation("eager")  # the attention pattern onnxruntime fuses
    try:
        axes = {name: {0: "batch", 1: "sequence"} for name in (*inputs, OUTPUT_NAME)}
        with torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter's deprecation and tracer notes.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _token_embeddings_module(transformer),
                args,
                str(path),
                dynamo=False,
                input_names=list(inputs),
                output_names=[OUTPUT_NAME],
                dynamic_axes=axes,
                opset_version=_TORCHSCRIPT_OPSET,
            )
    finally:
        transformer.set_attn_implementation(previous)
    options = FusionOptions("bert")
    options.use_raw_attention_mask(True)  # any padding side, not only right-padded lengths
    hf_config = transformer.config
    optimized = optimize_model(
        str(path),
        model_type="bert",
        num_heads=int(getattr(hf_config, "num_attention_heads", 0) or 0),
        hidden_size=int(getattr(hf_config, "hidden_size", 0) or 0),
        optimization_options=options,
    )
    optimized.save_model_to_file(str(path), use_external_data_format=large)
    return inputs, large


def _export_dynamo(model: SentenceTransformer, path: Path) -> tuple[tuple[str, ...], bool]:
    import torch

    transformer, inputs, args, large = _prepare(model)
    batch = torch.export.Dim("batch")
    limit = int(getattr(transformer.config, "max_position_embeddings", 0) or 0) or 8192
    sequence = torch.export.Dim("sequence", min=1, max=limit)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _token_embeddings_module(transformer),
            args,
            str(path),
            dynamo=True,
            input_names=list(inputs),
            output_names=[OUTPUT_NAME],
            dynamic_shapes={name: {0: batch, 1: sequence} for name in inputs},
            opset_version=OPSET,
            external_data=large,
            verbose=False,
        )
    return inputs, large


def _quantize_int8(source: Path, target: Path, *, large: bool) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # quantize_dynamic logs a pre-processing hint through the root logger; it does not apply
    # to dynamic quantization of a transformer.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        quantize_dynamic(
            source,
            target,
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            use_external_data_format=large,
            # Fused (com.microsoft) ops have no ONNX shape inference; their outputs are float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    except Exception as exc:  # onnxruntime raises its own and onnx's error types
        raise ExportError(f"int8 quantization of {source} failed: {exc}") from exc
    finally:
        root.setLevel(level)


def _agreement(
    model: SentenceTransformer, model_dir: Path, onnx_file: Path, texts: Sequence[str]
) -> np.ndarray:
    """Cosine of each probe text's ONNX embedding with sentence-transformers', without a
    prompt and with the model's own query/document prompts (or a made-up one)."""
    encoder = OnnxEncoder.load(model_dir, onnx_file, model_ref=str(model_dir), shortlist_dims=())
    prompts = {"", *encoder.config.prompts.values()}
    if len(prompts) == 1:
        prompts.add("query: ")
    cosines = []
    for prompt in sorted(prompts):
        ours = encoder.encode_full(list(texts), prompt)
        theirs = model.encode(
            list(texts),
            prompt=prompt or None,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        cosines.append(np.sum(ours * theirs, axis=1))
    return np.concatenate(cosines)


def _manifest(export: OnnxExport, max_seq_length: int, probes: int) -> dict[str, Any]:
    import onnxruntime
    import torch

    return {
        "format": 1,
        "files": {"fp32": FP32_FILE, "int8": INT8_FILE},
        "inputs": list(export.inputs),
        "output": OUTPUT_NAME,
        "opset": OPSET if export.exporter == "dynamo" else _TORCHSCRIPT_OPSET,
        "exporter": export.exporter,
        "int8": "dynamic quantization, int8 weights per channel, MatMul and Attention",
        "max_seq_length": max_seq_length,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "agreement": {
            "probe_texts": probes,
            "fp32_min_cosine": export.fp32_min_cosine,
            "int8_min_cosine": export.int8_min_cosine,
            "int8_mean_cosine": export.int8_mean_cosine,
        },
    }


def _replace_dir(staging: Path, target: Path) -> None:
    """Put `staging` at `target`, replacing what was there (old one removed after the swap)."""
    if not target.exists():
        os.replace(staging, target)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
