"""Tuning-loop commands: retune, synth, models, rollback, push."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ragctl.cli.context import state, translate_errors
from ragctl.cli.output import emit_json, table
from ragctl.evalkit.gate_view import reason_lines
from ragctl.tuner.status import recording

if TYPE_CHECKING:
    from ragctl.core.collections import BoundCollection
    from ragctl.core.settings import Settings
    from ragctl.core.store.base import VectorStore
    from ragctl.tuner.loop import RetuneResult
    from ragctl.tuner.synth import SyntheticQuestion

_COLLECTION = click.option("--collection", "-c", help="Collection (alias) name; default `docs`.")


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise click.ClickException(
                        f"{path}:{number}: invalid JSON ({exc.msg})"
                    ) from exc


def _serving(settings: Settings, store: VectorStore) -> BoundCollection:
    """The serving collection of `settings.collection` with its model (loaded)."""
    from ragctl.core.collections import bind_collection

    return bind_collection(store, store.spec(store.resolve(settings.collection)), settings)


def _synthesize(
    settings: Settings,
    serving: BoundCollection,
    count: int,
    *,
    offline: bool,
    per_chunk: int,
) -> list[SyntheticQuestion]:
    """About `count` questions for random chunks, round-trip filtered with the serving model."""
    from ragctl.tuner.synth import LLMQuestionGenerator, offline_questions, round_trip_filter

    store, physical = serving.store, serving.physical
    chunks = [c for batch in store.scroll_chunks(physical, batch_size=1024) for c in batch]
    rng = random.Random(settings.tuner.seed)
    sample = rng.sample(chunks, min(len(chunks), max(1, -(-count // per_chunk))))
    if offline or not settings.tuner.llm.base_url:
        questions = offline_questions(sample, per_chunk=per_chunk, seed=settings.tuner.seed)
    else:
        generator = LLMQuestionGenerator(
            settings.tuner.llm, settings.data_dir / "synth-cache.sqlite"
        )
        try:
            questions = generator.generate(sample, per_chunk=per_chunk)
        finally:
            generator.close()
    kept = round_trip_filter(questions, serving, k=settings.tuner.round_trip_k)
    click.echo(
        f"synthetic questions: {len(questions)} generated, "
        f"{len(kept)} kept by the round-trip filter",
        err=True,
    )
    return kept[:count]


@click.command()
@_COLLECTION
@click.option(
    "--feedback",
    "feedback_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A feedback export (JSON lines from `ragctl feedback export`).",
)
@click.option("--from-log", is_flag=True, help="Read feedback straight from the retriever's log.")
@click.option(
    "--include-free-text",
    is_flag=True,
    help="With --from-log: also train on feedback posted without a search_id (a query the "
    "client wrote, not one the retriever answered); left out by default.",
)
@click.option(
    "--pairs",
    "pair_files",
    multiple=True,
    type=click.Path(exists=True, path_type=Path),
    help="Pair file(s): JSON lines/CSV/Parquet with anchor, positive[, negative]; or a BEIR "
    "folder (corpus.jsonl, queries.jsonl, qrels/train.tsv) whose train judgments are the "
    "pairs (see --min-relevance).",
)
@click.option(
    "--min-relevance",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="For a BEIR folder in --pairs: the lowest qrels score that makes a positive pair. "
    "With graded judgments (e.g. 0-4) docs scored between 0 and this are left out of the "
    "positives and never mined as negatives; score 0 marks a known negative.",
)
@click.option(
    "--synthetic",
    type=click.IntRange(min=0),
    default=0,
    help="Add about N synthetic questions for random chunks.",
)
@click.option(
    "--offline-synth",
    is_flag=True,
    help="Synthesize without an LLM (inverse cloze task) even if one is configured.",
)
@click.option(
    "--eval-set",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Golden held-out pairs for the gate (instead of holding out 10%).",
)
@click.option(
    "--epochs",
    type=float,
    help="Training epochs (default 1); with validation queries a maximum: training stops "
    "early once the validation score stops improving, and the best checkpoint is kept.",
)
@click.option("--batch-size", type=int, help="Batch size = in-batch negatives (default 32).")
@click.option("--lr", "learning_rate", type=float, help="Learning rate (default 2e-5).")
@click.option(
    "--max-minutes",
    type=float,
    help="Stop training after this many minutes (keeps the best model so far); with --search "
    "the budget of all trials together.",
)
@click.option(
    "--validation-fraction",
    type=float,
    help="Share of the training queries kept out of training to pick the best checkpoint "
    "(default 0.1, at most tuner.validation_max_queries); 0: no validation, the last step is "
    "kept.",
)
@click.option(
    "--evals-per-epoch",
    type=float,
    help="Validation evaluations (and checkpoints) per epoch (default 2); the last step is "
    "always evaluated.",
)
@click.option(
    "--patience",
    "early_stopping_patience",
    type=int,
    help="Stop after this many evaluations without a validation gain (default 2; 0: never).",
)
@click.option(
    "--search",
    is_flag=True,
    help="Train once per recipe of tuner.search_grid (default: learning rates 1e-5, 2e-5, "
    "5e-5) and keep the best on the validation queries; the gate then measures only that one.",
)
@click.option(
    "--hard-negatives/--no-hard-negatives",
    default=None,
    help="Mine a hard negative per pair from the collection (guarded against false "
    "negatives with the serving model).",
)
@click.option(
    "--negatives-from",
    type=click.Choice(["dense", "sparse", "hybrid"]),
    help="Who ranks the hard-negative candidates: the serving model (default), BM25, or both.",
)
@click.option(
    "--no-promote", is_flag=True, help="Train and gate, but do not switch the serving model."
)
@click.option("--dry-run", is_flag=True, help="Only collect and split the data; report the sizes.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
@translate_errors
def retune(
    ctx: click.Context,
    collection: str | None,
    feedback_file: Path | None,
    from_log: bool,
    include_free_text: bool,
    pair_files: tuple[Path, ...],
    min_relevance: int,
    synthetic: int,
    offline_synth: bool,
    eval_set: Path | None,
    epochs: float | None,
    batch_size: int | None,
    learning_rate: float | None,
    max_minutes: float | None,
    validation_fraction: float | None,
    evals_per_epoch: float | None,
    early_stopping_patience: int | None,
    search: bool,
    hard_negatives: bool | None,
    negatives_from: str | None,
    no_promote: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Fine-tune the serving model on logged feedback, pairs and synthetic questions.

    Holds out 10% of the queries (or --eval-set), trains with MultipleNegativesRankingLoss in
    MatryoshkaLoss, evaluates candidate vs serving at every dim and through the store in
    dense, sparse and hybrid mode (every fusion of the grid), and promotes only when the gate
    passes: at least 30 held-out queries, a gain of ndcg@10 at the full dim and in the serving
    mode that is significant (paired randomization test, p < 0.05), no column regressing. A
    promotion re-embeds the collection into NAME__vN and switches the alias; the previous
    collection is kept for `ragctl rollback`. A rejected or --no-promote run changes nothing
    that serves (the candidate's measured search profile is recorded with it).

    Three-way split: the gate's held-out queries are never trained on nor used to choose
    anything; of the rest, --validation-fraction of the queries validate. The candidate is
    scored on them --evals-per-epoch times an epoch (ndcg@10 at the full dim and at the
    shortlist dim, mixed by tuner.selection_shortlist_weight), the best checkpoint is the
    candidate, and training stops after --patience evaluations without a gain: --epochs is a
    maximum, bounded by --max-minutes. --search repeats that for each recipe of
    tuner.search_grid and keeps the best on validation; the trials are recorded in the model
    card, and a rerun reuses finished trials.
    """
    from ragctl.core.store import open_store
    from ragctl.tuner.loop import RetuneOptions
    from ragctl.tuner.loop import retune as run_retune

    settings = state(ctx).settings(
        collection=collection,
        tuner={
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "max_minutes": max_minutes,
            "validation_fraction": validation_fraction,
            "evals_per_epoch": evals_per_epoch,
            "early_stopping_patience": early_stopping_patience,
            "hard_negatives": hard_negatives,
            "negatives_from": negatives_from,
        },
    )
    if feedback_file and from_log:
        raise click.UsageError("give --feedback FILE or --from-log, not both")
    feedback: list[dict[str, Any]] = []
    if feedback_file:
        feedback = list(_read_jsonl(feedback_file))
    elif from_log:
        from ragctl.retriever.feedback_log import open_feedback_log

        with open_feedback_log(settings, create=False) as log:
            feedback = list(log.iter_feedback())
    if from_log and not include_free_text:  # a --feedback FILE is the operator's own choice
        from ragctl.tuner.pairs import is_free_text

        kept = [record for record in feedback if not is_free_text(record)]
        if len(kept) < len(feedback):
            click.echo(
                f"left out {len(feedback) - len(kept)} free-text feedback record(s) (no "
                "search_id: the query is the client's own); --include-free-text trains on them",
                err=True,
            )
        feedback = kept
    with open_store(settings) as store:
        serving = None
        synthetic_pairs = []
        if synthetic:  # the serving model, loaded here, is handed to the loop (loaded once)
            serving = _serving(settings, store)
            questions = _synthesize(
                settings, serving, synthetic, offline=offline_synth, per_chunk=1
            )
            synthetic_pairs = [q.as_pair() for q in questions]
        options = RetuneOptions(
            collection=settings.collection,
            feedback=feedback,
            pair_files=pair_files,
            min_relevance=min_relevance,
            synthetic=synthetic_pairs,
            eval_set=eval_set,
            promote=not no_promote,
            dry_run=dry_run,
            search=search,
        )
        asked = {
            "feedback": len(feedback),
            "pair_files": [str(f) for f in pair_files],
            "synthetic": synthetic,
            "eval_set": str(eval_set) if eval_set else None,
            "promote": not no_promote,
            "dry_run": dry_run,
        }
        with recording(settings.data_dir, settings.collection, asked) as status:

            def on_step(message: str) -> None:
                status.step(message)
                head, sep, reason = message.partition(" -- ")
                if not sep:  # "gate (...): reject -- reject: a; b" is shown one finding a line
                    click.echo(f"> {message}", err=True)
                    return
                click.echo(f"> {head}", err=True)
                for line in reason_lines(reason)[1:] or [reason]:
                    click.echo(f"    {line}", err=True)

            result = run_retune(
                settings,
                store,
                options,
                on_step=on_step,
                serving_encoder=None if serving is None else serving.encoder,
            )
            summary = _result_json(result)
            status.finish(
                {k: summary[k] for k in ("candidate_version", "promote", "reason", "promoted")}
            )
    if as_json:
        emit_json(summary)
        return
    split, evaluation, candidate = result.split, result.evaluation, result.candidate
    click.echo(
        "pairs: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.counts.items())
    )
    click.echo(
        f"training pairs {len(split.train)}, validation queries {split.validation_queries}, "
        f"held-out queries {split.heldout_queries} ({split.source})"
    )
    if result.mining is not None:
        click.echo(result.mining.describe())
    if evaluation and candidate and result.decision:
        click.echo(_before_after(evaluation.serving, evaluation.candidate))
        verdict = "PROMOTE" if result.decision.promote else "REJECT"
        click.echo(f"gate: {verdict} on {result.decision.queries} held-out queries")
        for comparison in result.decision.comparisons:
            if comparison.check != "regression" or not comparison.passed:
                mark = "ok  " if comparison.passed else "FAIL"
                click.echo(f"  {mark} {comparison.describe()}")
        for line in reason_lines(result.decision.reason):
            click.echo(f"  {line}")
        profile = evaluation.candidate_profile
        if profile:
            why = (
                f"significantly better than {profile['default']}"
                if profile["test"]
                else "the default: no mode or fusion was significantly better"
            )
            click.echo(
                f"v{candidate.version} search profile: {profile['mode']} ({profile['chosen']}, "
                f"{why}); ndcg@10 {profile['ndcg@10']}"
            )
        version = candidate.version
        if result.sync:
            click.echo(
                f"now serving v{version}: {settings.collection} -> "
                f"{settings.collection}__v{version} ({result.sync.points} chunks, "
                f"re-embedded in {result.sync.seconds:.0f} s)"
            )
        elif result.decision.promote:
            click.echo(
                f"v{version} passed the gate; serve it with `ragctl models activate {version}`"
            )
        else:
            click.echo(f"v{version} rejected; still serving v{result.serving.version}")


def _profile_line(who: str, profile: dict[str, Any]) -> str:
    """`candidate searches best in hybrid: dense 0.61, hybrid 0.66, sparse 0.52 (rrf k=60)`."""
    scores = ", ".join(f"{mode} {value:.4f}" for mode, value in profile["ndcg@10"].items())
    fusion = profile.get("fusion") or {}
    how = ""
    if fusion and profile["mode"] == "hybrid":
        how = f" ({fusion.get('method')}, dense {fusion.get('dense_weight')}, sparse " + (
            f"{fusion.get('sparse_weight')})"
        )
    return f"{who} searches best in {profile['mode']}{how}; ndcg@10 {scores}"


def _before_after(serving: Any, candidate: Any) -> str:
    """ndcg@10, mrr@10 and recall@10 per column: serving -> candidate (delta)."""
    metrics = ("ndcg@10", "mrr@10", "recall@10")
    rows = []
    for row in serving.rows:
        other = candidate.row(row.name)
        if other is None:
            continue
        cells: list[object] = [row.name]
        for metric in metrics:
            before, after = row.metrics.get(metric), other.metrics.get(metric)
            cells.append(
                "-" if before is None or after is None else f"{after:.4f} ({after - before:+.4f})"
            )
        rows.append(cells)
    headers = ["column", *(f"{m} (change)" for m in metrics)]
    return "candidate vs serving on the held-out queries:\n" + table(headers, rows)


def _result_json(result: RetuneResult) -> dict[str, Any]:
    decision, evaluation, candidate = result.decision, result.evaluation, result.candidate
    return {
        "serving_version": result.serving.version,
        "candidate_version": None if candidate is None else candidate.version,
        "counts": result.counts,
        "train_pairs": len(result.split.train),
        "validation_queries": result.split.validation_queries,
        "heldout_queries": result.split.heldout_queries,
        "hard_negatives": None if result.mining is None else result.mining.to_dict(),
        "promote": None if decision is None else decision.promote,
        "reason": None if decision is None else decision.reason,
        "gate": None if decision is None else decision.to_dict(),
        "reason_lines": [] if decision is None else reason_lines(decision.reason),
        "promoted": result.promoted,
        "serving_profile": None if evaluation is None else evaluation.serving_profile,
        "candidate_profile": None if evaluation is None else evaluation.candidate_profile,
        "serving_report": None if evaluation is None else evaluation.serving.to_dict(),
        "candidate_report": None if evaluation is None else evaluation.candidate.to_dict(),
        "training": None
        if candidate is None
        else {
            **candidate.training.config,
            "steps": candidate.training.steps,
            "seconds": candidate.training.seconds,
            "validation": candidate.training.validation,
            "search": (candidate.record.training or {}).get("search"),
        },
    }


@click.command()
@_COLLECTION
@click.option(
    "--per-chunk",
    type=click.IntRange(1, 20),
    default=2,
    show_default=True,
    help="Questions per chunk.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="At most this many questions.",
)
@click.option(
    "--offline",
    is_flag=True,
    help="No LLM: inverse cloze task (a sentence of the chunk is the query).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write pairs here (JSON lines); default stdout.",
)
@click.pass_context
@translate_errors
def synth(
    ctx: click.Context,
    collection: str | None,
    per_chunk: int,
    limit: int,
    offline: bool,
    out: Path | None,
) -> None:
    """Generate synthetic questions for stored chunks (anchor/positive pairs).

    Uses the OpenAI-compatible endpoint in settings (tuner.llm.base_url, model, api_key;
    vLLM, Ollama and OpenAI work) with retries and an on-disk cache, or --offline. Only
    questions whose chunk the serving model ranks in its top k (tuner.round_trip_k) are kept.
    """
    from ragctl.core.store import open_store

    settings = state(ctx).settings(collection=collection)
    with open_store(settings) as store:
        questions = _synthesize(
            settings, _serving(settings, store), limit, offline=offline, per_chunk=per_chunk
        )
    lines = [
        json.dumps(
            {
                "anchor": q.question,
                "positive": q.positive,
                "chunk_id": q.chunk_id,
                "method": q.method,
            },
            ensure_ascii=False,
        )
        for q in questions
    ]
    if out:
        out.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
        click.echo(f"wrote {len(lines)} pairs to {out}")
    else:
        for line in lines:
            click.echo(line)


@click.group()
def models() -> None:
    """Model versions: list, show, activate."""


@models.command("list")
@_COLLECTION
@click.option("--json", "as_json", is_flag=True, help="Print only JSON (as GET /v1/models).")
@click.pass_context
@translate_errors
def models_list(ctx: click.Context, collection: str | None, as_json: bool) -> None:
    """Every model version with status, parent, gate decision and best search mode measured."""
    from ragctl.core.registry import ModelRegistry

    settings = state(ctx).settings(collection=collection)
    registry = ModelRegistry(settings.data_dir)
    records = registry.records()
    if as_json:
        emit_json(
            {
                "collection": settings.collection,
                "serving": registry.serving(settings.collection),
                "history": registry.history(settings.collection),
                "models": [r.model_dump(mode="json", exclude={"evaluation"}) for r in records],
            }
        )
        return
    if not records:
        click.echo("no models yet; the first ingest registers the base model as v1")
        return
    rows = [
        (
            f"v{r.version}",
            r.status,
            f"v{r.parent}" if r.parent else "-",
            r.created_at[:16].replace("T", " "),
            (r.search or {}).get("mode", "-"),
            "-" if r.gate is None else "passed" if r.gate.get("promote") else "rejected",
            r.ref,
        )
        for r in records
    ]
    headers = ["version", "status", "parent", "created (UTC)", "best mode", "gate", "model"]
    click.echo(table(headers, rows, wrap=["model"], drop=["created (UTC)"]))
    click.echo("(`ragctl models show VERSION` explains a gate decision)")


@models.command("show")
@click.argument("version", type=str)
@click.option(
    "--json", "as_json", is_flag=True, help="Print everything recorded, eval reports included."
)
@click.pass_context
@translate_errors
def models_show(ctx: click.Context, version: str, as_json: bool) -> None:
    """One version: status, lineage, training, the gate's decision line by line and the
    numbers it compared (--json: everything recorded, as GET /v1/models/VERSION)."""
    from ragctl.core.registry import ModelRegistry
    from ragctl.evalkit.gate_view import comparison_rows

    settings = state(ctx).settings()
    record = ModelRegistry(settings.data_dir).get(_version(version))
    evaluation = record.evaluation or {}
    comparisons = comparison_rows(
        evaluation.get("serving"), evaluation.get("candidate"), gate=record.gate
    )
    reasons = reason_lines((record.gate or {}).get("reason"))
    if as_json:
        emit_json(
            {
                **record.model_dump(mode="json"),
                "gate_reason_lines": reasons,
                "comparisons": comparisons,
            }
        )
        return
    click.echo(f"v{record.version}  {record.status}  {record.ref}")
    click.echo(f"parent: {f'v{record.parent}' if record.parent else '-'}; base model: "
               f"{record.base_model}; created {record.created_at[:19]}")  # fmt: skip
    if record.training:
        t = record.training
        click.echo(
            f"training: {t.get('pairs', '?')} pairs, {t.get('steps', '?')} steps, "
            f"{t.get('seconds', '?')} s on {t.get('device', '?')}"
        )
    if record.search:
        click.echo(_profile_line("it", record.search))
    if record.gate is None:
        click.echo("gate: none (a base model)" if record.parent is None else "gate: not recorded")
        return
    click.echo(f"gate: {'PASSED' if record.gate.get('promote') else 'REJECTED'}")
    for line in reasons[1:]:
        click.echo(f"  - {line}")
    if comparisons:
        rows = [
            (
                c["column"],
                c.get("serving"),
                c.get("candidate"),
                "-" if c.get("delta") is None else f"{c['delta']:+.4f}",
                "-" if not c.get("test") else
                f"{c['test']['ci_low']:+.4f} .. {c['test']['ci_high']:+.4f}",
            )
            for c in comparisons
        ]  # fmt: skip
        click.echo(f"{comparisons[0]['metric']}, serving vs candidate on the held-out queries:")
        click.echo(table(["column", "serving", "candidate", "change", "95% CI"], rows))


@models.command("profile")
@click.argument("version", type=str)
@click.option(
    "--eval-set",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Judged queries: a pair file (anchor, positive) or JSON lines {text, relevant}.",
)
@click.option("--apply", "apply_it", is_flag=True, help="Record the measured profile.")
@click.option("--undo", is_flag=True, help="Restore the profile before the last --apply.")
@_COLLECTION
@click.option("--json", "as_json", is_flag=True, help="Print only the outcome as JSON.")
@click.pass_context
@translate_errors
def models_profile(
    ctx: click.Context,
    version: str,
    eval_set: Path | None,
    apply_it: bool,
    undo: bool,
    collection: str | None,
    as_json: bool,
) -> None:
    """Measure VERSION's search mode and fusion on judged queries; change it only on evidence.

    Evaluates the version's collection (NAME__vN) in dense, sparse and hybrid mode (its current
    fusion, then every fusion of the grid) and proposes another profile only when it beats the
    current one with a significant paired gain (p < tuner.gate.significance) on at least
    tuner.gate.min_queries queries. Nothing changes without --apply; --undo restores the
    profile before the last --apply. A running retriever picks it up on its next reload
    (POST /v1/admin/reload).

    \b
    Examples:
      ragctl models profile v2 --eval-set golden.jsonl            # measure, change nothing
      ragctl models profile v2 --eval-set golden.jsonl --apply    # record it if it is better
      ragctl models profile v2 --undo
    """
    from ragctl.core.store import open_store
    from ragctl.tuner.reprofile import apply_profile, measure_profile, undo_profile

    settings = state(ctx).settings(collection=collection)
    number = _version(version)
    if undo:
        restored = undo_profile(settings, number)
        if as_json:
            emit_json({"version": number, "restored": restored})
            return
        click.echo(f"v{number} search profile restored: {_describe_profile(restored)}")
        return
    if eval_set is None:
        raise click.UsageError("give --eval-set FILE to measure, or --undo")
    with open_store(settings) as store:
        measurement = measure_profile(settings, store, settings.collection, number, eval_set)
    measured = measurement.measured
    if as_json:
        applied = measurement.changes and apply_it
        if applied:
            apply_profile(settings, measurement)
        emit_json(
            {
                "version": number,
                "collection": settings.collection,
                "current": measurement.current,
                "measured": measured,
                "changes": measurement.changes,
                "applied": applied,
            }
        )
        return
    click.echo(f"current:  {_describe_profile(measurement.current)}")
    click.echo(f"measured on {measured['queries']} queries: ndcg@10 {measured['ndcg@10']}")
    if not measurement.changes:
        click.echo(
            f"keep the current profile: nothing beat {measured['default']} significantly "
            f"(needs p < {settings.tuner.gate.significance:g} on >= "
            f"{settings.tuner.gate.min_queries} queries)"
        )
        return
    test = measured["test"]
    click.echo(
        f"proposed: {_describe_profile(measured)} -- {measured['chosen']} beats "
        f"{measured['default']} by {test['gain']:+.4f} "
        f"[{test['ci_low']:+.4f}, {test['ci_high']:+.4f}], p={test['p_better']:.4f}"
    )
    if apply_it:
        apply_profile(settings, measurement)
        click.echo(f"applied to v{number} (undo: ragctl models profile v{number} --undo)")
    else:
        click.echo("not applied: add --apply to record it")


def _describe_profile(profile: dict[str, Any] | None) -> str:
    if not profile:
        return "the default (settings: hybrid where lexical vectors exist, else dense)"
    fusion = profile.get("fusion") or {}
    weights = (
        f", fusion {fusion.get('method')} dense {fusion.get('dense_weight')} : "
        f"sparse {fusion.get('sparse_weight')}"
        if fusion and profile.get("mode") == "hybrid"
        else ""
    )
    return f"{profile.get('mode')} mode{weights}"


@models.command("activate")
@click.argument("version", type=str)
@_COLLECTION
@click.option("--force", is_flag=True, help="Serve a version the gate rejected.")
@click.pass_context
@translate_errors
def models_activate(ctx: click.Context, version: str, collection: str | None, force: bool) -> None:
    """Serve VERSION: re-embed the collection with it if needed, then switch the alias.

    With a retriever running on the embedded store, use its admin API instead
    (POST /v1/admin/models/{version}/activate): it holds the store.
    """
    from ragctl.core.registry import ModelRegistry
    from ragctl.core.store import open_store
    from ragctl.core.store.base import physical_name
    from ragctl.tuner.promote import check_servable, reembed, switch, version_encoder

    settings = state(ctx).settings(collection=collection)
    number = _version(version)
    registry = ModelRegistry(settings.data_dir)
    record = registry.get(number)
    check_servable(record, force=force)
    with open_store(settings) as store:
        serving = store.spec(store.resolve(settings.collection))
        encoder = version_encoder(serving, record, settings)
        report = reembed(store, collection=settings.collection, version=number, encoder=encoder)
        switch(store, registry, settings.collection, number)
    click.echo(
        f"now serving v{number}: {settings.collection} -> "
        f"{physical_name(settings.collection, number)} "
        f"({report.points} chunks, {report.embedded} embedded)"
    )


@click.command()
@_COLLECTION
@click.option("--force", is_flag=True, help="Roll back onto a version the gate rejected.")
@click.pass_context
@translate_errors
def rollback(ctx: click.Context, collection: str | None, force: bool) -> None:
    """Serve the version that served before the current one (no re-embedding).

    Rollback walks back through what served: a second rollback goes further back, never
    forward, and fails when nothing served earlier. Chunks written since are caught up first.
    With a retriever running on the embedded store, use POST /v1/admin/rollback instead.
    """
    from ragctl.core.collections import encoder_for
    from ragctl.core.registry import ModelRegistry
    from ragctl.core.store import open_store
    from ragctl.tuner.promote import rollback as run_rollback

    settings = state(ctx).settings(collection=collection)
    with open_store(settings) as store:
        report = run_rollback(
            store,
            ModelRegistry(settings.data_dir),
            settings.collection,
            load_encoder=lambda spec: encoder_for(spec, settings),
            force=force,
        )
    caught = f", caught up {report.caught_up.embedded} chunks" if report.caught_up else ""
    click.echo(
        f"rolled back {report.collection}: {report.from_physical} -> {report.to_physical} "
        f"(v{report.version}{caught})"
    )


@click.command()
@click.argument("version", type=str)
@click.option("--repo-id", required=True, help="Hub repository, ORG/NAME.")
@click.option("--private", is_flag=True, help="Create the repository as private.")
@click.option("--dry-run", is_flag=True, help="List what would be uploaded; upload nothing.")
@click.pass_context
@translate_errors
def push(ctx: click.Context, version: str, repo_id: str, private: bool, dry_run: bool) -> None:
    """Upload model VERSION (e.g. v2) and its model card to the Hugging Face Hub.

    The token comes from `huggingface-cli login` or HF_TOKEN.
    """
    from ragctl.core.registry import ModelRegistry
    from ragctl.tuner.publish import files_to_upload, push_model

    settings = state(ctx).settings()
    registry = ModelRegistry(settings.data_dir)
    number = _version(version)
    registry.get(number)
    model_dir = registry.model_dir(number)
    if dry_run:
        for name in files_to_upload(model_dir):
            click.echo(name)
        return
    url = push_model(model_dir, repo_id, private=private)
    click.echo(f"pushed v{number} to {url}")


def _version(text: str) -> int:
    digits = text[1:] if text.lower().startswith("v") else text
    if not digits.isdigit():
        raise click.BadParameter(f"{text!r} is not a version like v2 or 2", param_hint="VERSION")
    return int(digits)
