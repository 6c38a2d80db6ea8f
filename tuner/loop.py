"""`retune`: pairs -> split -> (hard negatives) -> train (best checkpoint on validation) ->
evaluate -> gate -> record -> (re-embed + switch).

Each phase is a function with a typed result that reads its inputs and changes none of them;
`retune` runs them in order. Every phase reports through `step`, so the CLI (or the
retriever's job runner) can show progress; the result carries every number for the table and
the registry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ragctl.core.collections import BoundCollection, bind_collection
from ragctl.core.encoder import Encoder, resolve_model
from ragctl.core.profile import default_profile, resolve_profile, settings_fusion, tuned_profile
from ragctl.core.registry import ModelRecord, ModelRegistry, resolve_ref
from ragctl.core.search import SearchMode
from ragctl.core.settings import Settings, TrainSettings, TunerSettings
from ragctl.core.store.base import CollectionSpec, VectorStore
from ragctl.evalkit.datasets import EvalDataset
from ragctl.evalkit.gate import GateDecision, decide
from ragctl.evalkit.results import HYBRID as HYBRID_ROW
from ragctl.evalkit.results import TWO_STAGE, EvalReport, save_report
from ragctl.evalkit.runs import EvalOptions, evaluate, fusion_grid, resolve_dims, run_config
from ragctl.tuner.beir_pairs import add_beir_pairs
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
from ragctl.tuner.profiles import choose_profile
from ragctl.tuner.promote import SyncReport, reembed, switch, version_encoder
from ragctl.tuner.search import install_chosen, run_search
from ragctl.tuner.split import (
    MIN_VALIDATION_QUERIES,
    drop_queries,
    split_heldout,
    split_validation,
)
from ragctl.tuner.train import TrainResult, train

logger = logging.getLogger(__name__)

Step = Callable[[str], None]


def _quiet(_message: str) -> None:
    """A `Step` that reports nothing."""


@dataclass(frozen=True)
class RetuneOptions:
    """One retune run's inputs beyond settings (`settings.tuner`: training, data, gate)."""

    collection: str
    feedback: Sequence[Mapping[str, Any]] = ()
    pair_files: Sequence[Path] = ()
    synthetic: Sequence[TrainingPair] = ()
    eval_set: Path | None = None
    # Of a BEIR folder in `pair_files`: the lowest qrels score that makes a positive pair.
    min_relevance: int = 1
    eval_corpus_limit: int = 20_000
    promote: bool = True
    dry_run: bool = False
    search: bool = False  # a recipe search (`tuner.search_grid`) chosen on validation
    show_progress: bool = True


@dataclass(frozen=True)
class Split:
    """Training pairs, the held-out pairs the gate measures on, and the validation pairs that
    pick the best checkpoint (no query on two sides; the gate's never seen before the gate)."""

    train: list[TrainingPair]
    heldout: list[TrainingPair]
    source: str  # where the held-out pairs come from
    validation: list[TrainingPair] = field(default_factory=list)

    @property
    def validation_queries(self) -> int:
        """Distinct validation queries (0: validation is off, the last step is kept)."""
        return len({normalize_query(p.query) for p in self.validation})

    @property
    def heldout_queries(self) -> int:
        """Distinct held-out queries."""
        return len({normalize_query(p.query) for p in self.heldout})


@dataclass(frozen=True)
class Candidate:
    """A trained model version, registered as a candidate."""

    record: ModelRecord
    training: TrainResult
    fingerprint: str  # SHA-256 of the training rows (`tuner.card.data_fingerprint`)

    @property
    def version(self) -> int:
        return self.record.version


@dataclass(frozen=True)
class Evaluation:
    """Both models on the held-out queries (and on the guard set, when one is configured),
    with the search profile each measured best there."""

    serving: EvalReport
    candidate: EvalReport
    serving_guard: EvalReport | None
    candidate_guard: EvalReport | None
    serving_profile: dict[str, Any] | None
    candidate_profile: dict[str, Any] | None


@dataclass(frozen=True)
class RetuneResult:
    """What a run did: each phase's result. Those after `split` stay None when the run stopped
    early (dry run); `sync` stays None unless the candidate was promoted."""

    serving: CollectionSpec
    counts: dict[str, int]
    split: Split
    mining: MiningReport | None = None
    candidate: Candidate | None = None
    evaluation: Evaluation | None = None
    decision: GateDecision | None = None
    sync: SyncReport | None = None

    @property
    def promoted(self) -> bool:
        return self.sync is not None


def retune(
    settings: Settings,
    store: VectorStore,
    options: RetuneOptions,
    *,
    on_step: Step | None = None,
    serving_encoder: Encoder | None = None,
) -> RetuneResult:
    """Run the loop once, phase by phase. Returns what happened; raises TunerError on bad input.

    `serving_encoder` is used when it is the model of the serving collection (else it is loaded).
    """
    step = on_step or _quiet
    spec = store.spec(store.resolve(options.collection))
    serving = bind_collection(store, spec, settings, encoder=serving_encoder)
    pair_set = collect_pairs(options, serving, step)
    split = split_pairs(pair_set.pairs, serving, options.eval_set, settings.tuner, step)
    result = RetuneResult(serving.spec, dict(pair_set.counts), split)
    if options.dry_run:
        return result
    train_pairs, mining = add_hard_negatives(split.train, pair_set, serving, settings.tuner, step)
    validation = validation_dataset(split, serving, settings.tuner)
    candidate = train_candidate(
        settings,
        serving.spec,
        train_pairs,
        options.show_progress,
        step,
        validation=validation,
        search=options.search,
        mining=mining,
    )
    candidate_encoder = candidate_encoder_of(settings, serving.spec, candidate)
    evaluation = evaluate_models(settings, serving, candidate_encoder, split, options, step)
    decision = decide_promotion(settings, serving.spec, evaluation, step)
    record_outcome(
        settings, serving.spec, pair_set.counts, split, candidate, evaluation, decision, step
    )
    result = replace(
        result, mining=mining, candidate=candidate, evaluation=evaluation, decision=decision
    )
    if decision.promote and candidate_int8(
        settings, serving, candidate.version, split, options, step
    ):
        candidate_encoder = version_encoder(serving.spec, candidate.record, settings)  # on int8
    if not (decision.promote and options.promote):
        return result
    sync = promote_candidate(settings, serving, candidate.version, candidate_encoder, step)
    return replace(result, sync=sync)


def collect_pairs(options: RetuneOptions, serving: BoundCollection, step: Step = _quiet) -> PairSet:
    """Feedback (records naming only a document pinned to its best chunk), pair files, BEIR
    folders (their train qrels) and synthetic pairs, checked against the serving collection
    and deduplicated; one step line per source with what it gave."""
    step("collecting training pairs")
    pair_set = PairSet()
    if options.feedback:
        feedback = pin_doc_level(options.feedback, serving)
        add_feedback(pair_set, feedback)
        counts = pair_set.counts
        step(
            f"feedback: {len(options.feedback)} records -> "
            f"{counts.get('feedback_relevant', 0)} relevant, "
            f"{counts.get('feedback_not_relevant', 0)} not relevant, "
            f"{counts.get('feedback_invalid', 0)} unusable"
        )
    for path in options.pair_files:
        if path.is_dir():
            report = add_beir_pairs(pair_set, path, serving, min_relevance=options.min_relevance)
            step(report.describe())
            continue
        pairs = read_pair_file(path)
        pair_set.pairs.extend(pairs)
        pair_set.count("pair_file_rows", len(pairs))
        step(f"{path.name}: {len(pairs)} pairs")
    pair_set.pairs.extend(options.synthetic)
    pair_set.count("synthetic", len(options.synthetic))
    if options.synthetic:
        step(f"synthetic: {len(options.synthetic)} questions")
    refresh_from_store(pair_set, serving)
    before = len(pair_set.pairs)
    pair_set.pairs = deduplicate(pair_set.pairs)
    pair_set.count("duplicates_dropped", before - len(pair_set.pairs))
    pair_set.count("pairs", len(pair_set.pairs))
    if not pair_set.pairs:
        raise TunerError(
            "no training pairs: log feedback through the retriever (/v1/feedback), give "
            "--feedback FILE, --pairs FILE or BEIR folder, or --synthetic N"
        )
    gone = pair_set.counts.get("dropped_missing_chunk", 0)
    step(
        f"{len(pair_set.pairs)} pairs ({gone} dropped: their chunk is gone from "
        f"{serving.physical}; {before - len(pair_set.pairs)} duplicates dropped)"
    )
    return pair_set


def split_pairs(
    pairs: Sequence[TrainingPair],
    serving: BoundCollection,
    eval_set: Path | None,
    tuner: TunerSettings,
    step: Step = _quiet,
) -> Split:
    """Hold out the golden `eval_set` (its queries leave the training pairs), else
    `tuner.heldout_fraction` of the queries."""
    if eval_set is not None:
        heldout = read_eval_set(eval_set, serving)
        train_pairs = drop_queries(pairs, [p.query for p in heldout])
        split = Split(train_pairs, heldout, f"eval set {eval_set.name}")
    else:
        fraction = tuner.heldout_fraction
        train_pairs, heldout = split_heldout(pairs, fraction, seed=tuner.seed)
        split = Split(train_pairs, heldout, f"{fraction:.0%} of queries held out")
    train_pairs, validation = split_validation(
        split.train,
        tuner.validation_fraction,
        max_queries=tuner.validation_max_queries,
        seed=tuner.seed,
    )
    split = replace(split, train=train_pairs, validation=validation)
    validating = f"{split.validation_queries} validation queries, " if validation else ""
    step(
        f"{len(split.train)} training pairs, {validating}{split.heldout_queries} held-out "
        f"queries ({split.source})"
    )
    return split


def validation_dataset(
    split: Split, serving: BoundCollection, tuner: TunerSettings
) -> EvalDataset | None:
    """The validation queries against the collection's chunks (sampled past
    `tuner.validation_corpus_limit`), or None when validation is off."""
    if not split.validation:
        return None
    return heldout_dataset(
        split.validation,
        serving,
        name="validation",
        corpus_limit=tuner.validation_corpus_limit,
        seed=tuner.seed,
    )


def add_hard_negatives(
    pairs: Sequence[TrainingPair],
    pair_set: PairSet,
    serving: BoundCollection,
    tuner: TunerSettings,
    step: Step = _quiet,
) -> tuple[list[TrainingPair], MiningReport | None]:
    """With `tuner.hard_negatives`, every pair with a negative mined from the serving
    collection (never a chunk `pair_set` knows as relevant); else the pairs as they are."""
    if not tuner.hard_negatives:
        return list(pairs), None
    if tuner.negatives_from is not SearchMode.DENSE and serving.spec.lexical is None:
        raise TunerError(
            f"--negatives-from {tuner.negatives_from} needs lexical vectors, and "
            f"{serving.physical} has none; use dense"
        )
    step(f"mining hard negatives ({tuner.negatives_from} candidates)")
    mined, report = mine_hard_negatives(
        pairs,
        serving,
        relevant=pair_set.relevant,
        not_relevant=pair_set.not_relevant,
        margin=tuner.negative_margin,
        source=tuner.negatives_from,
    )
    step(report.describe())
    return mined, report


def train_candidate(
    settings: Settings,
    serving: CollectionSpec,
    pairs: Sequence[TrainingPair],
    show_progress: bool = True,
    step: Step = _quiet,
    *,
    validation: EvalDataset | None = None,
    search: bool = False,
    mining: MiningReport | None = None,
) -> Candidate:
    """Fine-tune the serving model on `pairs` into the next version, and register it (with
    the hard-negative `mining` counts, if the pairs were mined).

    With `validation`, the checkpoint that scores best on it is the candidate (see
    `tuner.train.train`); with `search` too, one run per recipe of `tuner.search_grid` and
    the best on validation is the candidate (`tuner.search`). Checkpoints are keyed by the
    data and the hyperparameters, so the same run resumes.
    """
    registry = ModelRegistry(settings.data_dir)
    parent = registry.ensure_base(serving.model)
    version = registry.reserve_version()
    fingerprint = data_fingerprint(pairs)
    hyperparameters = json.dumps(settings.tuner.hyperparameters(), sort_keys=True)
    config_key = hashlib.sha256(hyperparameters.encode()).hexdigest()[:8]
    checkpoints = settings.data_dir / "checkpoints" / f"{fingerprint[:16]}-{config_key}"
    step(f"training v{version} from v{serving.version} ({serving.model}) on {len(pairs)} pairs")

    def run(config: TrainSettings, output_dir: Path, checkpoint_dir: Path) -> TrainResult:
        return train(
            resolve_model(resolve_ref(serving.model, settings.data_dir)),
            pairs,
            config,
            output_dir=output_dir,
            checkpoint_dir=checkpoint_dir,
            shortlist_dims=serving.shortlist_dims,
            query_prompt=serving.query_prompt,
            document_prompt=serving.document_prompt,
            device=settings.model.device,
            trust_remote_code=settings.model.trust_remote_code,
            show_progress=show_progress,
            validation=validation,
            shortlist=settings.search.shortlist,
        )

    searched = None
    if search:
        if validation is None:
            raise TunerError(
                "--search chooses on validation queries and this run has none (fewer than "
                f"{MIN_VALIDATION_QUERIES} or tuner.validation_fraction 0): give more queries "
                "or raise the fraction"
            )
        step(f"searching {len(settings.tuner.search_grid)} recipes on the validation queries")
        searched = run_search(
            settings.tuner,
            settings.tuner.search_grid,
            run,
            settings.data_dir / "search" / fingerprint[:16],
            on_trial=step,
        )
        training = install_chosen(searched, registry.model_dir(version))
        step(f"chosen on validation: {searched.trials[searched.chosen].recipe}")
    else:
        training = run(settings.tuner, registry.model_dir(version), checkpoints)
    if training.validation is not None:
        step(_describe_validation(training.validation))
    record = registry.add(
        ModelRecord(
            version=version,
            ref=f"models/v{version}",
            parent=serving.version,
            base_model=parent.base_model,
            training={
                **training.config,
                "loss": training.loss,
                "steps": training.steps,
                "seconds": round(training.seconds, 1),
                "device": training.device,
                "precision": training.precision,
                "pairs": len(pairs),
                "data_sha256": fingerprint,
                **({"validation": training.validation} if training.validation else {}),
                **({"search": searched.record()} if searched else {}),
                **({} if mining is None else {"hard_negatives": mining.to_dict()}),
            },
        )
    )
    return Candidate(record, training, fingerprint)


def candidate_encoder_of(
    settings: Settings, serving: CollectionSpec, candidate: Candidate
) -> Encoder:
    """The candidate's encoder, with the serving collection's dims and prompts: the model
    training left in memory (the weights it saved), else loaded from the candidate's folder."""
    model = candidate.training.take_model()
    if model is None:
        return version_encoder(serving, candidate.record, settings)
    from ragctl.core.encoder import SentenceTransformerEncoder

    return SentenceTransformerEncoder(
        model,
        model_ref=candidate.record.ref,
        shortlist_dims=serving.shortlist_dims,
        query_prompt=serving.query_prompt,
        document_prompt=serving.document_prompt,
        batch_size=settings.model.batch_size,
    )


def evaluate_models(
    settings: Settings,
    serving: BoundCollection,
    candidate: Encoder,
    split: Split,
    options: RetuneOptions,
    step: Step = _quiet,
) -> Evaluation:
    """Both models on the held-out queries against the collection's own chunks, at every dim
    and through the store in every mode the collection has, and on the guard set if set.

    With lexical vectors the sparse row and the hybrid row (best fusion of the grid, for each
    model) are measured too: the mode and fusion are learned on the held-out queries.
    """
    step("evaluating candidate vs serving on the held-out queries")
    dataset = heldout_dataset(
        split.heldout,
        serving,
        name=f"{options.collection}-heldout",
        corpus_limit=options.eval_corpus_limit,
        seed=settings.tuner.seed,
    )
    lexical = serving.spec.lexical
    eval_options = EvalOptions(
        shortlist=settings.search.shortlist,
        chunk_size_tokens=settings.chunking.size_tokens,
        chunk_overlap_tokens=settings.chunking.overlap_tokens,
        work_dir=settings.data_dir,
        # The evaluation's own encode and index bars are internal here: the steps say it.
        show_progress=False,
        lexical=lexical,
        fusions=(
            fusion_grid(settings_fusion(settings))
            if lexical is not None
            else (settings_fusion(settings),)
        ),
    )
    serving_report = evaluate_serving(settings, serving, dataset, eval_options, step=step)
    candidate_report = evaluate(dataset, candidate, eval_options)
    candidate_guard, serving_guard = guard_reports(
        settings, serving, candidate, eval_options, options.eval_corpus_limit
    )
    if candidate_guard is not None:
        step("evaluated both models on the guard set " + str(settings.tuner.gate.guard_dataset))
    default_mode = default_profile(settings, serving.spec).mode
    gate = settings.tuner.gate
    return Evaluation(
        serving=serving_report,
        candidate=candidate_report,
        serving_guard=serving_guard,
        candidate_guard=candidate_guard,
        serving_profile=choose_profile(serving_report, default_mode, gate, split.source),
        candidate_profile=choose_profile(candidate_report, default_mode, gate, split.source),
    )


def decide_promotion(
    settings: Settings, serving: CollectionSpec, evaluation: Evaluation, step: Step = _quiet
) -> GateDecision:
    """The gate of `settings.tuner.gate`, requiring the gain in the mode the collection is
    served in (hybrid: the hybrid row; dense or sparse: two-stage)."""
    mode = resolve_profile(settings, serving, tuned_profile(settings, serving)).mode
    decision = decide(
        evaluation.candidate,
        evaluation.serving,
        settings.tuner.gate,
        serving_row=HYBRID_ROW if mode is SearchMode.HYBRID else TWO_STAGE,
        candidate_guard=evaluation.candidate_guard,
        serving_guard=evaluation.serving_guard,
    )
    verdict = "promote" if decision.promote else "reject"
    step(f"gate ({mode} serving): {verdict} -- {decision.reason}")
    return decision


def record_outcome(
    settings: Settings,
    serving: CollectionSpec,
    counts: Mapping[str, int],
    split: Split,
    candidate: Candidate,
    evaluation: Evaluation,
    decision: GateDecision,
    step: Step = _quiet,
) -> None:
    """The candidate's gate decision (every compared number with its paired test), its
    measured search profile and both evaluations into the registry, the full reports (with
    per-query values) into `models/vN/eval/`, and the model card into the candidate's folder.

    Nothing about the serving version changes: what it measured on the same queries is kept
    with the candidate's record, not applied (a rejected run changes nothing that serves).
    """
    registry = ModelRegistry(settings.data_dir)
    reports = {"serving": evaluation.serving, "candidate": evaluation.candidate}
    if evaluation.serving_guard is not None and evaluation.candidate_guard is not None:
        reports |= {
            "guard_serving": evaluation.serving_guard,
            "guard_candidate": evaluation.candidate_guard,
        }
    eval_dir = registry.model_dir(candidate.version) / "eval"
    for name, report in reports.items():
        save_report(report, eval_dir / f"{name}.json")
    gate = decision.to_dict()
    registry.update(
        candidate.version,
        gate=gate,
        evaluation={
            **{name: report.summary().to_dict() for name, report in reports.items()},
            "files": {name: f"models/v{candidate.version}/eval/{name}.json" for name in reports},
            "serving_version": serving.version,
            "serving_profile": evaluation.serving_profile,
        },
        search=evaluation.candidate_profile,
    )
    record = candidate.record
    write_card(
        registry.model_dir(candidate.version),
        {
            "version": candidate.version,
            "parent": serving.version,
            "base_model": record.base_model,
            "data": {
                "training_pairs": candidate.training.pairs,
                "heldout_queries": split.heldout_queries,
                **({"validation_queries": split.validation_queries} if split.validation else {}),
                "heldout": split.source,
                "sha256": candidate.fingerprint,
                **{f"count_{k}": v for k, v in counts.items()},
            },
            "training": record.training,
            "evaluation": {"table": _card_table(evaluation.serving, evaluation.candidate)},
            "gate": gate,
            "search": evaluation.candidate_profile,
        },
    )
    if evaluation.candidate_profile is not None:
        chosen = evaluation.candidate_profile
        why = "significantly better than" if chosen["test"] else "the default; nothing beat"
        scores = ", ".join(f"{row} {value:.4f}" for row, value in chosen["ndcg@10"].items())
        step(
            f"v{candidate.version} would serve in {chosen['mode']} mode ({chosen['chosen']}: "
            f"{why} {chosen['default']} on {chosen['queries']} queries); ndcg@10 {scores}"
        )


def promote_candidate(
    settings: Settings,
    serving: BoundCollection,
    version: int,
    encoder: Encoder,
    step: Step = _quiet,
) -> SyncReport:
    """Re-embed the serving collection into `NAME__v{version}` with `encoder`, then switch the
    alias to it (the previous collection is kept for rollback)."""
    name = serving.spec.name
    step(f"re-embedding {serving.physical} into {name}__v{version}")
    sync = reembed(serving.store, collection=name, version=version, encoder=encoder)
    switch(serving.store, ModelRegistry(settings.data_dir), name, version)
    step(f"serving v{version} ({sync.points} chunks)")
    return sync


def candidate_int8(
    settings: Settings,
    serving: BoundCollection,
    version: int,
    split: Split,
    options: RetuneOptions,
    step: Step = _quiet,
) -> bool:
    """The promoted candidate's int8 ONNX export beside its fp32 one on the same held-out
    queries, in the profile the candidate will serve with (its tuned mode and fusion, just
    recorded; `tuner.int8_gate`); True when int8 may serve it."""
    from ragctl.tuner.int8_gate import check_int8

    dataset = heldout_dataset(
        split.heldout,
        serving,
        name=f"{options.collection}-heldout",
        corpus_limit=options.eval_corpus_limit,
        seed=settings.tuner.seed,
    )
    verdict = check_int8(
        settings, serving, version, dataset, step=step, show_progress=options.show_progress
    )
    return verdict is not None and verdict.serve


def evaluate_serving(
    settings: Settings,
    serving: BoundCollection,
    dataset: EvalDataset,
    options: EvalOptions,
    *,
    stored_vectors: bool = True,
    step: Step = _quiet,
) -> EvalReport:
    """The serving model on `dataset`, evaluated once per (serving collection, dataset,
    options): a later retune against the same version on the same held-out set reads the
    report back from `data_dir/cache/serving-eval/`.

    With `stored_vectors`, docs that are chunks of the serving collection take the `full`
    vectors stored with them (what this model gave them at ingest) instead of being encoded
    again; only the queries and any doc the collection does not hold are encoded.
    """
    from ragctl.evalkit.cache import ReportCache, dataset_fingerprint

    cache = ReportCache(settings.data_dir / "cache" / "serving-eval")
    dims = resolve_dims(options.dims, serving.encoder.dim)
    key = cache.key(
        collection=serving.physical,
        created_at=serving.spec.created_at,
        model=serving.spec.model,
        # The backend's numbers differ a little (int8 most): each has its own entry.
        backend=getattr(serving.encoder, "backend", "torch"),
        dataset=dataset_fingerprint(dataset),
        config=run_config(serving.encoder, options, dims),
    )
    cached = cache.get(key)
    if cached is not None:
        step(
            f"serving v{serving.spec.version} on {dataset.name}: evaluated before on the same "
            f"queries and chunks (cache {key[:12]}), not again"
        )
        cached.notes.append(f"read from the evaluation cache ({key[:12]}, {cached.created_at})")
        return cached
    vectors = (
        serving.store.get_vectors(serving.physical, list(dataset.corpus))
        if stored_vectors
        else None
    )
    report = evaluate(dataset, serving.encoder, options, corpus_vectors=vectors)
    cache.put(key, report)
    return report


def guard_reports(
    settings: Settings,
    serving: BoundCollection,
    candidate: Encoder,
    options: EvalOptions,
    limit: int,
) -> tuple[EvalReport, EvalReport] | tuple[None, None]:
    """Both models on `tuner.gate.guard_dataset` (a general-domain BEIR folder), if set; the
    serving model's report is cached like its held-out one."""
    path = settings.tuner.gate.guard_dataset
    if path is None:
        return None, None
    from ragctl.evalkit.datasets import load_eval_dataset

    guard = load_eval_dataset(path, "test").subset(max_corpus=limit)
    # Forgetting is a property of the dense model: no lexical rows on the guard set.
    dense_only = replace(options, lexical=None)
    serving_guard = evaluate_serving(settings, serving, guard, dense_only, stored_vectors=False)
    return evaluate(guard, candidate, dense_only), serving_guard


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


def _card_table(serving: EvalReport, candidate: EvalReport) -> str:
    from ragctl.evalkit.compare import compare_reports, format_comparison_markdown

    return format_comparison_markdown(compare_reports(serving, candidate))


def _describe_validation(record: Mapping[str, Any]) -> str:
    kept, base = record.get("kept") or {}, record.get("base") or {}
    how = "stopped early" if record.get("stopped_early") else f"ran to step {record['last_step']}"
    return (
        f"validation ({record['queries']} queries, {len(record['evaluations'])} evaluations, "
        f"{how}): kept step {record['kept_step']}, score {kept.get('selection')} "
        f"(base model {base.get('selection')})"
    )
