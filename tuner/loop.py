"""`retune`: pairs -> split -> (hard negatives) -> train -> gate -> (re-embed + switch).

Every step reports through `on_step`, so the CLI (or the retriever's job runner) can show
progress; the result carries every number for the table and the registry.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ragctl.core.collections import BoundCollection, encoder_for
from ragctl.core.encoder import Encoder, resolve_model
from ragctl.core.profile import resolve_profile, settings_fusion, tuned_profile
from ragctl.core.registry import ModelRecord, ModelRegistry, resolve_ref
from ragctl.core.search import SearchMode
from ragctl.core.settings import Settings
from ragctl.core.store.base import CollectionSpec, VectorStore
from ragctl.evalkit.datasets import EvalDataset
from ragctl.evalkit.gate import GateDecision, GateRule, decide
from ragctl.evalkit.results import HYBRID as HYBRID_ROW
from ragctl.evalkit.results import SPARSE as SPARSE_ROW
from ragctl.evalkit.results import TWO_STAGE, EvalReport
from ragctl.evalkit.runs import FUSION_GRID, EvalOptions, evaluate
from ragctl.tuner.card import data_fingerprint, write_card
from ragctl.tuner.errors import TunerError
from ragctl.tuner.negatives import MiningReport, mine_hard_negatives
from ragctl.tuner.pairs import (
    PairSet,
    TrainingPair,
    add_feedback,
    deduplicate,
    normalize_query,
    pin_doc_level,
    read_eval_set,
    read_pair_file,
    refresh_from_store,
)
from ragctl.tuner.promote import SyncReport, reembed, switch, version_encoder
from ragctl.tuner.split import drop_queries, split_heldout
from ragctl.tuner.train import TrainConfig, TrainResult, train

logger = logging.getLogger(__name__)

Step = Callable[[str], None]


@dataclass
class RetuneOptions:
    """One retune run's inputs beyond settings."""

    collection: str
    feedback: Iterable[Mapping[str, Any]] = ()
    pair_files: Sequence[Path] = ()
    synthetic: Sequence[TrainingPair] = ()
    eval_set: Path | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    hard_negatives: bool = False
    negatives_from: str = "dense"  # the ranker of the candidates: dense | sparse | hybrid
    negative_margin: float = 0.05
    heldout_fraction: float = 0.1
    eval_corpus_limit: int = 20_000
    promote: bool = True
    dry_run: bool = False
    show_progress: bool = True


@dataclass
class RetuneResult:
    """What a run did; fields after `split` stay None when the run stopped early."""

    serving: CollectionSpec
    counts: dict[str, int]
    train_pairs: int
    heldout_queries: int
    heldout_source: str
    mining: MiningReport | None = None
    version: int | None = None
    training: TrainResult | None = None
    serving_report: EvalReport | None = None
    candidate_report: EvalReport | None = None
    decision: GateDecision | None = None
    sync: SyncReport | None = None
    promoted: bool = False
    candidate_profile: dict[str, Any] | None = None  # best mode + fusion measured
    serving_profile: dict[str, Any] | None = None


def gate_rule(settings: Settings, serving_mode: SearchMode = SearchMode.DENSE) -> GateRule:
    """The gate of `settings`, requiring the gain in `serving_mode` (dense or hybrid)."""
    gate = settings.tuner.gate
    return GateRule(
        min_gain=gate.min_gain,
        max_regression=gate.max_regression,
        guard_tolerance=gate.guard_tolerance,
        serving_row=HYBRID_ROW if serving_mode is SearchMode.HYBRID else TWO_STAGE,
    )


def measured_profile(report: EvalReport, source: str) -> dict[str, Any] | None:
    """The search mode (and fusion) that scored best on `report`'s held-out queries.

    Ties go to dense, then hybrid, then sparse. None when the report has no pipeline rows.
    """
    scores: dict[str, float] = {}
    for mode, row_name in (
        (SearchMode.DENSE, TWO_STAGE),
        (SearchMode.HYBRID, HYBRID_ROW),
        (SearchMode.SPARSE, SPARSE_ROW),
    ):
        row = report.row(row_name)
        if row is not None and "ndcg@10" in row.metrics:
            scores[mode] = row.metrics["ndcg@10"]
    if not scores:
        return None
    best = max(scores, key=lambda mode: scores[mode])  # first (dense) wins ties
    hybrid = report.row(HYBRID_ROW)
    return {
        "mode": best,
        "fusion": hybrid.params.get("fusion") if hybrid is not None else None,
        "ndcg@10": {mode: round(value, 4) for mode, value in scores.items()},
        "measured_on": source,
        "queries": report.sizes.get("queries"),
    }


def guard_reports(
    settings: Settings, serving: Encoder, candidate: Encoder, options: EvalOptions, limit: int
) -> tuple[EvalReport, EvalReport] | tuple[None, None]:
    """Both models on `tuner.gate.guard_dataset` (a general-domain BEIR folder), if set."""
    path = settings.tuner.gate.guard_dataset
    if path is None:
        return None, None
    from ragctl.evalkit.datasets import load_eval_dataset

    guard = load_eval_dataset(path, "test").subset(max_corpus=limit)
    # Forgetting is a property of the dense model: no lexical rows on the guard set.
    dense_only = replace(options, lexical=None)
    return evaluate(guard, candidate, dense_only), evaluate(guard, serving, dense_only)


def collect_pairs(options: RetuneOptions, serving: BoundCollection) -> PairSet:
    """Feedback, pair files and synthetic pairs, checked against the store and deduplicated."""
    pair_set = PairSet()
    add_feedback(pair_set, options.feedback)
    for path in options.pair_files:
        pairs = read_pair_file(path)
        pair_set.pairs.extend(pairs)
        pair_set.count("pair_file_rows", len(pairs))
    pair_set.pairs.extend(options.synthetic)
    pair_set.count("synthetic", len(options.synthetic))
    refresh_from_store(pair_set, serving)
    before = len(pair_set.pairs)
    pair_set.pairs = deduplicate(pair_set.pairs)
    pair_set.count("duplicates_dropped", before - len(pair_set.pairs))
    pair_set.count("pairs", len(pair_set.pairs))
    if not pair_set.pairs:
        raise TunerError(
            "no training pairs: log feedback through the retriever (/v1/feedback), give "
            "--feedback FILE, --pairs FILE, or --synthetic N"
        )
    return pair_set


def heldout_dataset(
    heldout: Sequence[TrainingPair],
    serving: BoundCollection,
    *,
    name: str,
    corpus_limit: int,
    seed: int,
) -> EvalDataset:
    """Held-out queries against the collection's own chunks (sampled past `corpus_limit`).

    A positive that is not a stored chunk (pair files) is matched by text, else added.
    """
    corpus: dict[str, str] = {}
    by_text: dict[str, str] = {}
    for batch in serving.store.scroll_chunks(serving.physical, batch_size=1024):
        for chunk in batch:
            corpus[chunk.chunk_id] = chunk.text
            by_text.setdefault(chunk.text, chunk.chunk_id)
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    query_ids: dict[str, str] = {}
    for pair in heldout:
        key = normalize_query(pair.query)
        qid = query_ids.setdefault(key, f"q{len(query_ids)}")
        queries[qid] = pair.query
        doc = pair.positive_id if pair.positive_id in corpus else by_text.get(pair.positive)
        if doc is None:
            doc = f"extra-{len(corpus)}"
            corpus[doc] = pair.positive
            by_text[pair.positive] = doc
        qrels.setdefault(qid, {})[doc] = 1
    notes = []
    if len(corpus) > corpus_limit:
        relevant = {d for judged in qrels.values() for d in judged}
        others = sorted(set(corpus) - relevant)
        keep = relevant | set(
            random.Random(seed).sample(others, max(0, corpus_limit - len(relevant)))
        )
        notes.append(f"corpus sampled: {len(keep)} of {len(corpus)} chunks (all relevant kept)")
        corpus = {d: t for d, t in corpus.items() if d in keep}
    return EvalDataset(
        name=name, split="heldout", corpus=corpus, queries=queries, qrels=qrels, notes=notes
    )


def retune(
    settings: Settings,
    store: VectorStore,
    options: RetuneOptions,
    *,
    on_step: Step | None = None,
    serving_encoder: Encoder | None = None,
) -> RetuneResult:
    """Run the loop once. Returns what happened; raises TunerError on bad input."""
    step = on_step or (lambda _msg: None)
    registry = ModelRegistry(settings.data_dir)
    physical = store.resolve(options.collection)
    spec = store.spec(physical)
    if serving_encoder is None or serving_encoder.model_ref != spec.model:
        serving_encoder = encoder_for(spec, settings)
    parent = registry.ensure_base(spec.model)
    serving = BoundCollection(store, spec, serving_encoder)

    step("collecting training pairs")
    options.feedback = pin_doc_level(options.feedback, serving)
    pair_set = collect_pairs(options, serving)
    if options.eval_set is not None:
        heldout = read_eval_set(options.eval_set, serving)
        train_pairs = drop_queries(pair_set.pairs, [p.query for p in heldout])
        source = f"eval set {options.eval_set.name}"
    else:
        train_pairs, heldout = split_heldout(
            pair_set.pairs, options.heldout_fraction, seed=options.train.seed
        )
        source = f"{options.heldout_fraction:.0%} of queries held out"
    heldout_queries = len({normalize_query(p.query) for p in heldout})
    result = RetuneResult(
        serving=spec,
        counts=dict(pair_set.counts),
        train_pairs=len(train_pairs),
        heldout_queries=heldout_queries,
        heldout_source=source,
    )
    step(f"{len(train_pairs)} training pairs, {heldout_queries} held-out queries ({source})")
    if options.dry_run:
        return result

    if options.hard_negatives:
        if options.negatives_from != "dense" and spec.lexical is None:
            raise TunerError(
                f"--negatives-from {options.negatives_from} needs lexical vectors, and "
                f"{physical} has none; use dense"
            )
        step(f"mining hard negatives ({options.negatives_from} candidates)")
        train_pairs, result.mining = mine_hard_negatives(
            train_pairs,
            serving,
            relevant=pair_set.relevant,
            not_relevant=pair_set.not_relevant,
            margin=options.negative_margin,
            source=SearchMode(options.negatives_from),
        )

    version = registry.next_version()
    result.version = version
    model_dir = registry.model_dir(version)
    fingerprint = data_fingerprint(train_pairs)
    checkpoints = (
        settings.data_dir / "checkpoints" / f"{fingerprint[:16]}-{_config_key(options.train)}"
    )
    step(f"training v{version} from v{spec.version} ({spec.model}) on {len(train_pairs)} pairs")
    result.training = train(
        resolve_model(resolve_ref(spec.model, settings.data_dir)),
        train_pairs,
        options.train,
        output_dir=model_dir,
        checkpoint_dir=checkpoints,
        shortlist_dims=spec.shortlist_dims,
        query_prompt=spec.query_prompt,
        document_prompt=spec.document_prompt,
        device=settings.model.device,
        trust_remote_code=settings.model.trust_remote_code,
        show_progress=options.show_progress,
    )
    ref = f"models/v{version}"
    record = registry.add(
        ModelRecord(
            version=version,
            ref=ref,
            parent=spec.version,
            base_model=parent.base_model,
            training={
                **result.training.config,
                "loss": result.training.loss,
                "steps": result.training.steps,
                "seconds": round(result.training.seconds, 1),
                "device": result.training.device,
                "precision": result.training.precision,
                "pairs": len(train_pairs),
                "data_sha256": fingerprint,
            },
        )
    )

    step("evaluating candidate vs serving on the held-out queries")
    candidate_encoder = version_encoder(spec, record, settings)
    dataset = heldout_dataset(
        heldout,
        serving,
        name=f"{options.collection}-heldout",
        corpus_limit=options.eval_corpus_limit,
        seed=options.train.seed,
    )
    # With lexical vectors, the sparse row and the hybrid row (best fusion of the grid, for
    # each model) are measured too: the mode and fusion are learned on the held-out queries.
    eval_options = EvalOptions(
        shortlist=settings.search.shortlist,
        chunk_size_tokens=settings.chunking.size_tokens,
        chunk_overlap_tokens=settings.chunking.overlap_tokens,
        work_dir=settings.data_dir,
        show_progress=options.show_progress,
        lexical=spec.lexical,
        fusions=FUSION_GRID if spec.lexical is not None else (settings_fusion(settings),),
    )
    serving_mode = resolve_profile(settings, spec, tuned_profile(settings, spec)).mode
    result.serving_report = evaluate(dataset, serving_encoder, eval_options)
    result.candidate_report = evaluate(dataset, candidate_encoder, eval_options)
    candidate_guard, serving_guard = guard_reports(
        settings, serving_encoder, candidate_encoder, eval_options, options.eval_corpus_limit
    )
    if candidate_guard is not None:
        step("evaluated both models on the guard set " + str(settings.tuner.gate.guard_dataset))
    result.decision = decide(
        result.candidate_report,
        result.serving_report,
        gate_rule(settings, serving_mode),
        candidate_guard=candidate_guard,
        serving_guard=serving_guard,
    )
    decision = result.decision
    result.candidate_profile = measured_profile(result.candidate_report, source)
    result.serving_profile = measured_profile(result.serving_report, source)
    registry.update(
        version,
        status="candidate" if decision.promote else "rejected",
        gate={"promote": decision.promote, "reason": decision.reason},
        evaluation={
            "serving": result.serving_report.to_dict(),
            "candidate": result.candidate_report.to_dict(),
            **(
                {
                    "guard_serving": serving_guard.to_dict(),
                    "guard_candidate": candidate_guard.to_dict(),
                }
                if candidate_guard is not None and serving_guard is not None
                else {}
            ),
        },
        search=result.candidate_profile,
    )
    if result.serving_profile is not None:  # what serves best today, on the same queries
        registry.update(spec.version, search=result.serving_profile)
    write_card(
        model_dir,
        {
            "version": version,
            "parent": spec.version,
            "base_model": record.base_model,
            "data": {
                "training_pairs": len(train_pairs),
                "heldout_queries": heldout_queries,
                "heldout": source,
                "sha256": fingerprint,
                **{f"count_{k}": v for k, v in pair_set.counts.items()},
            },
            "training": record.training,
            "evaluation": {"table": _card_table(result.serving_report, result.candidate_report)},
            "gate": {"promote": decision.promote, "reason": decision.reason},
        },
    )
    verdict = "promote" if decision.promote else "reject"
    step(f"gate ({serving_mode} serving): {verdict} -- {decision.reason}")
    if result.candidate_profile is not None:
        chosen = result.candidate_profile
        step(f"v{version} measured best in {chosen['mode']} mode: {chosen['ndcg@10']}")
    if not (decision.promote and options.promote):
        return result

    step(f"re-embedding {physical} into {options.collection}__v{version}")
    result.sync = reembed(
        store, collection=options.collection, version=version, encoder=candidate_encoder
    )
    switch(store, registry, options.collection, version)
    result.promoted = True
    step(f"serving v{version} ({result.sync.points} chunks)")
    return result


def _config_key(config: TrainConfig) -> str:
    import hashlib

    return hashlib.sha256(repr(config).encode()).hexdigest()[:8]


def _card_table(serving: EvalReport, candidate: EvalReport) -> str:
    from ragctl.evalkit.compare import compare_reports, format_comparison_markdown

    return format_comparison_markdown(compare_reports(serving, candidate))
