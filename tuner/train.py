"""Fine-tuning: MultipleNegativesRankingLoss (cached variant past a memory budget) wrapped in
MatryoshkaLoss (`tuner/losses.py`), with the sentence-transformers Trainer.

Runs on CPU (fp32) or GPU (bf16 where supported, tf32), seeded, with checkpoints so an
interrupted run resumes, and an optional wall-clock budget. Given validation queries
(`tuner/validation.py`), the model is scored on them during training, the best checkpoint is
kept and training stops early when the score stops improving: `epochs` is then a maximum.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragctl.core.settings import TrainSettings
from ragctl.evalkit.datasets import EvalDataset
from ragctl.tuner.errors import TunerError
from ragctl.tuner.losses import build_loss, plan_loss
from ragctl.tuner.pairs import TrainingPair
from ragctl.tuner.validation import (
    SELECTION,
    ValidationPlan,
    evaluate_model,
    history_from_logs,
    make_evaluator,
)

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a finished (or budget-stopped) run produced."""

    model_dir: Path
    steps: int
    epochs_done: float
    seconds: float
    pairs: int
    loss: str
    matryoshka_dims: list[int]
    stopped_by_budget: bool
    device: str
    precision: str
    config: dict[str, Any] = field(default_factory=dict)
    # With validation queries: their size, the base model's score, every evaluation, the
    # step kept (the best), whether training stopped early, the seconds spent evaluating.
    validation: dict[str, Any] | None = None
    # The trained SentenceTransformer (the weights saved to `model_dir`), until `take_model`.
    model: Any = field(default=None, repr=False, compare=False)

    @property
    def pairs_per_s(self) -> float:
        return self.pairs * self.epochs_done / self.seconds if self.seconds else 0.0

    def take_model(self) -> Any:
        """The trained model, handed over once (so this result does not keep it alive);
        None once taken. Loading `model_dir` gives the same weights."""
        model, self.model = self.model, None
        return model


def matryoshka_dims(full_dim: int, shortlist_dims: Sequence[int]) -> list[int]:
    """The full dim, every power of two between it and the smallest shortlist dim, and each
    shortlist dim: 384 with [64] -> [384, 256, 128, 64]; 768 -> [768, 512, 256, 128, 64]."""
    smallest = min(shortlist_dims, default=full_dim)
    dims = {full_dim, *shortlist_dims}
    power = 1
    while power < full_dim:
        if power >= smallest:
            dims.add(power)
        power *= 2
    return sorted(dims, reverse=True)


def train(
    model_path: str,
    pairs: Sequence[TrainingPair],
    config: TrainSettings,
    *,
    output_dir: Path,
    checkpoint_dir: Path,
    shortlist_dims: Sequence[int],
    query_prompt: str = "",
    document_prompt: str = "",
    device: str | None = None,
    trust_remote_code: bool = False,
    show_progress: bool = True,
    validation: EvalDataset | None = None,
    shortlist: int = 100,
) -> TrainResult:
    """Fine-tune `model_path` on `pairs` and save the result to `output_dir`.

    With `validation` (queries never trained on, with a corpus), the model is scored on them
    `config.evals_per_epoch` times an epoch and at the end; the best checkpoint is what is
    saved, and training stops after `config.early_stopping_patience` evaluations without a
    gain. `shortlist` is the two-stage shortlist size the evaluations use.

    Resumes from the newest checkpoint in `checkpoint_dir` if one exists (same data and
    config assumed: the caller keys the directory by both).
    """
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import SentenceTransformerTrainer
    from transformers import EarlyStoppingCallback, TrainerCallback

    from ragctl.core.encoder import pick_device

    if len(pairs) < config.batch_size:
        raise TunerError(
            f"{len(pairs)} training pairs are fewer than one batch ({config.batch_size}); "
            "lower --batch-size or add pairs"
        )
    device = pick_device(device)
    model = SentenceTransformer(model_path, device=device, trust_remote_code=trust_remote_code)
    # The model card's widget examples draw their own unlabeled bar on every run: noise here.
    model.model_card_data.generate_widget_examples = False
    full_dim = int(model.get_embedding_dimension() or 0)
    dims = matryoshka_dims(full_dim, shortlist_dims)
    plan = plan_loss(config, dims, shortlist_dims, device=device)
    loss = build_loss(model, plan)

    columns: dict[str, list[str]] = {
        "anchor": [p.query for p in pairs],
        "positive": [p.positive for p in pairs],
    }
    if all(p.negative for p in pairs):
        columns["negative"] = [p.negative or "" for p in pairs]
    dataset = Dataset.from_dict(columns)
    prompts = None
    if query_prompt or document_prompt:
        prompts = {"anchor": query_prompt, "positive": document_prompt, "negative": document_prompt}
        prompts = {k: v for k, v in prompts.items() if k in columns}

    steps_per_epoch = max(1, len(pairs) // config.batch_size)
    validation_plan = None
    if validation is not None and validation.queries:
        validation_plan = ValidationPlan(
            dataset=validation,
            full_dim=full_dim,
            shortlist_dim=min(shortlist_dims, default=full_dim),
            shortlist=shortlist,
            shortlist_weight=config.selection_shortlist_weight,
            query_prompt=query_prompt,
            document_prompt=document_prompt,
        )
    eval_steps = (
        max(1, round(steps_per_epoch / config.evals_per_epoch)) if validation_plan else None
    )
    args = training_arguments(
        config,
        checkpoint_dir,
        device=device,
        show_progress=show_progress,
        prompts=prompts,
        eval_steps=eval_steps,
        mini_batched=plan.mini_batch is not None,
    )
    bf16, on_gpu = bool(args.bf16), device.startswith("cuda")

    budget = _Budget(config.max_minutes)
    validating = validation_plan is not None

    class _BudgetCallback(TrainerCallback):  # type: ignore[misc]
        """Stops in time; with validation, the last step is also evaluated (budget or not),
        so the step training ended on competes with the evaluated checkpoints."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if budget.exceeded():
                control.should_training_stop = True
                control.should_save = True
            if validating and (
                control.should_training_stop or state.global_step >= state.max_steps
            ):
                control.should_evaluate = True
                control.should_save = True
            return control

    callbacks: list[Any] = [_BudgetCallback()]
    base_score = None
    if validation_plan is not None:
        if config.early_stopping_patience:
            callbacks.append(EarlyStoppingCallback(config.early_stopping_patience))
        base_score = {k: round(v, 4) for k, v in evaluate_model(model, validation_plan).items()}
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=loss,
        evaluator=make_evaluator(validation_plan) if validation_plan else None,
        callbacks=callbacks,
    )
    _quiet_trainer(trainer, show_progress=show_progress)
    resume = _latest_checkpoint(checkpoint_dir)
    if resume:
        logger.info("resuming training from %s", resume)
    started = time.perf_counter()
    with warnings.catch_warnings():
        # sentence-transformers still calls transformers' deprecated checkpointing method:
        # library noise in every retune, nothing the operator can act on.
        warnings.filterwarnings("ignore", message=".*gradient_checkpointing_enable.*")
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    seconds = time.perf_counter() - started
    state = trainer.state
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(output_dir))
    record = None
    if validation_plan is not None:
        record = _validation_record(validation_plan, state, base_score, budget.hit)
    del trainer  # its optimizer state (two copies of the weights) goes with it
    model.zero_grad(set_to_none=True)
    release_freed_memory()
    return TrainResult(
        model_dir=output_dir,
        steps=int(state.global_step),
        epochs_done=round(state.global_step / steps_per_epoch, 4),
        seconds=seconds,
        pairs=len(pairs),
        loss=plan.describe(),
        matryoshka_dims=dims,
        stopped_by_budget=budget.hit,
        device=device,
        precision="bf16" if bf16 else "tf32" if on_gpu else "fp32",
        config=config.hyperparameters(),
        validation=record,
        model=model,
    )


def _validation_record(
    plan: ValidationPlan,
    state: Any,
    base_score: dict[str, float] | None,
    budget_hit: bool,
) -> dict[str, Any]:
    """What validation did in a run, for the registry and the card."""
    evals = history_from_logs(state.log_history)
    best_step = state.best_global_step
    best = next((e for e in evals if e["step"] == best_step), None)
    stopped_early = not budget_hit and state.global_step < int(state.max_steps)
    return {
        "queries": len(plan.dataset.queries),
        "corpus": len(plan.dataset.corpus),
        "score": f"{1 - plan.shortlist_weight:g} x ndcg@10 at {plan.full_dim} + "
        f"{plan.shortlist_weight:g} x ndcg@10 at {plan.shortlist_dim}",
        "base": base_score,
        "evaluations": evals,
        "kept_step": best_step,
        "kept": best,
        "last_step": int(state.global_step),
        "stopped_early": stopped_early,
        "seconds": round(
            sum(e["seconds"] for e in evals) + (base_score or {}).get("seconds", 0), 1
        ),
    }


def training_arguments(
    config: TrainSettings,
    checkpoint_dir: Path,
    *,
    device: str,
    show_progress: bool,
    prompts: dict[str, str] | None = None,
    eval_steps: int | None = None,
    mini_batched: bool = False,
) -> Any:
    """The Trainer arguments of a run: schedule, precision, sampler, checkpoints, logging.

    With `eval_steps`, the model is evaluated (and a checkpoint saved) every `eval_steps`
    steps and the best checkpoint by the validation score is loaded at the end.
    `mini_batched` (the cached loss): activation checkpointing is left off, since only one
    mini-batch's activations are held anyway and recomputing them costs time for little
    memory (bench/results/train_memory.md).
    """
    import torch
    from sentence_transformers.sentence_transformer import SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    on_gpu = device.startswith("cuda")
    bf16 = on_gpu and torch.cuda.is_bf16_supported()
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return SentenceTransformerTrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio in transformers v5
        weight_decay=config.weight_decay,
        lr_scheduler_type="cosine",
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        bf16=bf16,
        tf32=on_gpu or None,
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="steps",
        save_steps=eval_steps or config.checkpoint_steps,
        save_total_limit=2,  # with validation, the best checkpoint is kept besides
        eval_strategy="steps" if eval_steps else "no",
        eval_steps=eval_steps,
        load_best_model_at_end=eval_steps is not None,
        metric_for_best_model=f"eval_{SELECTION}" if eval_steps else None,
        greater_is_better=True if eval_steps else None,
        logging_steps=max(1, config.checkpoint_steps // 4),
        report_to="none",
        activation_checkpointing=config.activation_checkpointing and not mini_batched,
        disable_tqdm=True,  # one labeled bar instead (_quiet_trainer), on stderr
        prompts=prompts,
        use_cpu=device == "cpu",
    )


def _quiet_trainer(trainer: Any, *, show_progress: bool) -> None:
    """No log dicts printed to stdout (transformers' PrinterCallback), and, when progress is
    wanted, one labeled bar of training steps on stderr instead of the Trainer's bare one."""
    from transformers import PrinterCallback, ProgressCallback, TrainerCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if not show_progress:
        return

    class _StepBar(TrainerCallback):  # type: ignore[misc]
        bar: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            from tqdm import tqdm

            self.bar = tqdm(
                desc="training", total=state.max_steps, unit="step", leave=False, dynamic_ncols=True
            )

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            logs = kwargs.get("logs") or {}
            if self.bar is not None and "loss" in logs:
                self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}")

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.close()
                self.bar = None

    trainer.add_callback(_StepBar())


def release_freed_memory() -> None:
    """Collect garbage and hand the memory it freed back to the OS: glibc keeps freed heap
    memory for reuse, so without this a process keeps training's peak for the rest of its
    life (evaluation and re-embedding after training)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows): nothing to trim
        pass


class _Budget:
    def __init__(self, minutes: float | None) -> None:
        self.deadline = None if minutes is None else time.monotonic() + minutes * 60
        self.hit = False

    def exceeded(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.hit = True
        return self.hit


def _latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    if not checkpoint_dir.is_dir():
        return None
    found = [p for p in checkpoint_dir.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return max(found, key=lambda p: int(p.name.split("-")[-1]), default=None)
