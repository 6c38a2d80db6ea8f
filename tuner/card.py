"""The model card of a trained version: README.md with front matter, plus card.json."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ragctl.evalkit.report import describe_fusion
from ragctl.tuner.pairs import TrainingPair


def data_fingerprint(pairs: Sequence[TrainingPair]) -> str:
    """SHA-256 over the training rows, so a card says exactly which data made the model."""
    digest = hashlib.sha256()
    for pair in pairs:
        for part in (pair.query, pair.positive, pair.negative or ""):
            digest.update(part.encode("utf-8"))
            digest.update(b"\x1f")
        digest.update(b"\x1e")
    return digest.hexdigest()


def write_card(model_dir: Path, card: Mapping[str, Any]) -> None:
    """Write `card.json` and a README.md that leads with ragctl's record of the run.

    `card` holds: version, base_model, parent, data (sizes, sha256, sources), training
    (hyperparameters, loss, steps, seconds), evaluation (metrics tables), gate (decision).
    """
    (model_dir / "card.json").write_text(
        json.dumps(card, indent=2, sort_keys=True, default=str) + "\n"
    )
    generated = model_dir / "README.md"
    previous = generated.read_text(encoding="utf-8") if generated.exists() else ""
    body = previous.split("\n---\n", 1)[1] if previous.startswith("---\n") else previous
    if body.lstrip().startswith("# ragctl model"):  # rewritten: keep only what was not ours
        body = body.split(_DETAILS, 1)[1] if _DETAILS in body else ""
    front = [
        "---",
        "library_name: sentence-transformers",
        "pipeline_tag: sentence-similarity",
        f"base_model: {_base_for_hub(str(card.get('base_model', '')))}",
        "tags: [sentence-transformers, matryoshka, ragctl, retrieval]",
        "---",
        "",
    ]
    lines = [
        f"# ragctl model v{card.get('version')}",
        "",
        f"Fine-tuned from `{card.get('base_model')}` (parent: v{card.get('parent')}) by "
        "`ragctl retune` with MultipleNegativesRankingLoss wrapped in MatryoshkaLoss.",
        "",
        "## Training data",
        "",
        _kv(card.get("data", {})),
        "",
        "## Hyperparameters",
        "",
        _kv(card.get("training", {})),
        "",
    ]
    evaluation = card.get("evaluation") or {}
    if evaluation.get("table"):
        lines += ["## Evaluation (held-out queries)", "", str(evaluation["table"]), ""]
    gate = card.get("gate") or {}
    if gate:
        verdict = "promote" if gate.get("promote") else "reject"
        lines += ["## Gate", "", f"Decision: **{verdict}**. {gate.get('reason', '')}", ""]
    int8 = gate.get("int8") or {}
    if int8:
        fusion = int8.get("fusion")
        fusion_text = f", fusion {describe_fusion(fusion)}" if fusion else ""
        measured_in = f"{int8.get('row')}{fusion_text}"
        lines += [
            "## Serving backend (ONNX int8 vs fp32)",
            "",
            f"ndcg@10 ({measured_in}, {int8.get('queries')} held-out queries): fp32 "
            f"{int8.get('fp32')}, int8 {int8.get('int8')}, tolerance {int8.get('tolerance')}: "
            f"**{'int8 serves' if int8.get('serve') else 'fp32 serves'}**.",
            "",
        ]
    text = "\n".join(front + lines)
    if body.strip():
        text += _DETAILS + body.lstrip()
    generated.write_text(text, encoding="utf-8")


_DETAILS = "\n## Details recorded by sentence-transformers\n\n"


def _kv(values: Mapping[str, Any]) -> str:
    return "\n".join(f"- {key}: {value}" for key, value in values.items()) or "- (none)"


def _base_for_hub(base: str) -> str:
    # The packaged default is a copy of this Hub model.
    return "sentence-transformers/all-MiniLM-L6-v2" if base in ("", "default") else base
