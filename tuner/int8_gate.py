"""The gate's second question: may a promoted version serve on its int8 ONNX export?

int8 (dynamic quantization) encodes at a fraction of fp32's CPU but moves every vector a
little (cosine ~0.98-0.99 with fp32). What that costs in retrieval is measured, not assumed:
the version's fp32 and int8 exports are evaluated on the same held-out queries, through the
store in the profile the version will serve with (its own tuned mode and fusion, as
`core.profile` resolves them), and int8 may serve only when its ndcg@10 there is at most
`tuner.gate.int8_tolerance` (default 0.003) below fp32's. The verdict and both numbers go into
the version's gate record (`gate.int8` in the registry) and its model card;
`model.backend = auto` serves int8 only where the verdict says so (`core.collections`).

A run without ONNX (`model.backend = torch`, or a model the exporter cannot reproduce) records
nothing here: the version serves on torch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ragctl.core.collections import BoundCollection
from ragctl.core.encoder import Encoder
from ragctl.core.encoder_loader import load_encoder
from ragctl.core.onnx_encoder import INT8_FILE
from ragctl.core.onnx_exports import ensure_export
from ragctl.core.profile import SearchProfile, resolve_profile
from ragctl.core.registry import ModelRegistry, resolve_ref
from ragctl.core.search import SearchMode
from ragctl.core.settings import ModelBackend, Settings
from ragctl.evalkit.datasets import EvalDataset
from ragctl.evalkit.results import HYBRID, TWO_STAGE
from ragctl.evalkit.runs import EvalOptions, evaluate
from ragctl.tuner.card import write_card

logger = logging.getLogger(__name__)

NDCG = "ndcg@10"


@dataclass(frozen=True)
class Int8Verdict:
    """int8 against fp32 on the held-out queries, in the serving mode's row."""

    row: str  # "two-stage" (dense serving) or "hybrid"
    fusion: dict[str, Any] | None  # the hybrid row's fusion (the version's tuned one)
    fp32: float
    int8: float
    tolerance: float
    queries: int
    serve: bool  # int8 may serve

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delta": round(self.int8 - self.fp32, 6)}


def int8_may_serve(fp32: float, int8: float, tolerance: float) -> bool:
    """int8's ndcg@10 is at most `tolerance` below fp32's (rounding noise forgiven)."""
    return fp32 - int8 <= tolerance + 1e-9


def version_profile(settings: Settings, serving: BoundCollection, version: int) -> SearchProfile:
    """The profile version `version` will serve `serving`'s chunks with: its own tuned mode
    and fusion from the registry (a candidate's, recorded by the gate), under `settings`."""
    tuned = ModelRegistry(settings.data_dir).get(version).search
    return resolve_profile(settings, serving.spec, tuned)


def int8_verdict(
    settings: Settings,
    serving: BoundCollection,
    version: int,
    dataset: EvalDataset,
    *,
    profile: SearchProfile,
    show_progress: bool = False,
) -> Int8Verdict | None:
    """Evaluate version `version`'s fp32 and int8 exports on `dataset` (the held-out queries
    against the collection's chunks) in `profile` (hybrid: the hybrid row with the profile's
    fusion; dense or sparse: dense two-stage, what a dense request gets); None when the
    version has no ONNX export and cannot get one (the export is made now when missing)."""
    ref = f"models/v{version}"
    onnx_dir = ensure_export(ref, settings.data_dir, settings.model.backend)
    if onnx_dir is None or not (onnx_dir / INT8_FILE).is_file():
        return None
    hybrid = profile.mode is SearchMode.HYBRID and serving.spec.lexical is not None
    lexical = serving.spec.lexical if hybrid else None
    options = EvalOptions(
        dims=(serving.encoder.dim,),
        single_stage=False,
        shortlist=settings.search.shortlist,
        chunk_size_tokens=settings.chunking.size_tokens,
        chunk_overlap_tokens=settings.chunking.overlap_tokens,
        work_dir=settings.data_dir,
        show_progress=show_progress,
        lexical=lexical,
        fusions=(profile.fusion,),
    )
    row = HYBRID if hybrid else TWO_STAGE
    scores = {}
    for backend in (ModelBackend.ONNX, ModelBackend.ONNX_INT8):
        report = evaluate(dataset, _export_encoder(settings, serving, ref, backend), options)
        measured = report.row(row)
        if measured is None:
            raise RuntimeError(f"the held-out evaluation has no {row!r} row")
        scores[backend] = float(measured.metrics[NDCG])
    fp32, int8 = scores[ModelBackend.ONNX], scores[ModelBackend.ONNX_INT8]
    tolerance = settings.tuner.gate.int8_tolerance
    return Int8Verdict(
        row=row,
        fusion=profile.fusion.model_dump(mode="json") if hybrid else None,
        fp32=round(fp32, 6),
        int8=round(int8, 6),
        tolerance=tolerance,
        queries=len(dataset.queries),
        serve=int8_may_serve(fp32, int8, tolerance),
    )


def record_int8_verdict(settings: Settings, version: int, verdict: Int8Verdict) -> None:
    """The verdict into the version's gate record (`gate.int8`) and its model card."""
    registry = ModelRegistry(settings.data_dir)
    gate = {**(registry.get(version).gate or {}), "int8": verdict.to_dict()}
    registry.update(version, gate=gate)
    model_dir = registry.model_dir(version)
    card_file = model_dir / "card.json"
    if card_file.is_file():
        card = json.loads(card_file.read_text(encoding="utf-8"))
        write_card(model_dir, {**card, "gate": gate})


def check_int8(
    settings: Settings,
    serving: BoundCollection,
    version: int,
    dataset: EvalDataset,
    *,
    step: Callable[[str], None],
    profile: SearchProfile | None = None,
    show_progress: bool = False,
) -> Int8Verdict | None:
    """`int8_verdict` in `profile` (default: the one the version will serve with,
    `version_profile`), recorded and reported; None when there is nothing to decide."""
    step(f"evaluating v{version}'s int8 ONNX export beside fp32 on the held-out queries")
    profile = profile or version_profile(settings, serving, version)
    verdict = int8_verdict(
        settings, serving, version, dataset, profile=profile, show_progress=show_progress
    )
    if verdict is None:
        step(f"v{version} has no ONNX export: it serves on torch")
        return None
    record_int8_verdict(settings, version, verdict)
    step(
        f"int8 {verdict.row} ndcg@10 {verdict.int8:.4f} vs fp32 {verdict.fp32:.4f} "
        f"(tolerance {verdict.tolerance}): {'int8' if verdict.serve else 'fp32'} serves"
    )
    return verdict


def _export_encoder(
    settings: Settings, serving: BoundCollection, ref: str, backend: ModelBackend
) -> Encoder:
    """Version `ref`'s export on `backend`, with the serving collection's dims and prompts."""
    model = settings.model.model_copy(
        update={
            "name_or_path": resolve_ref(ref, settings.data_dir),
            "query_prompt": serving.spec.query_prompt,
            "document_prompt": serving.spec.document_prompt,
            "backend": backend,
        }
    )
    onnx_dir = ensure_export(ref, settings.data_dir, backend)
    return load_encoder(model, serving.spec.shortlist_dims, onnx_dir=onnx_dir, model_ref=ref)
