"""The training loss: MultipleNegativesRankingLoss at every Matryoshka dim, with the shortlist
dim as a first-class target.

Two-stage search ranks a shortlist with the first D components and reranks it at the full dim,
so what matters at D is that the full dim's top results are in the shortlist. Two levers:

- the MatryoshkaLoss weight of each shortlist dim (`shortlist_loss_weight`);
- an alignment term (`shortlist_alignment`): KL divergence from the full dim's in-batch ranking
  distribution (the teacher, no gradient) to the shortlist dim's, so the small prefix learns to
  order candidates the way the full vector does, not only to find the positive.

Without alignment the loss is sentence-transformers' own `MatryoshkaLoss` (with the cached
variant of MNRL past `max_uncached_batch`, and on CPU past `cpu_mini_batch_size`); with it,
`ShortlistMatryoshkaLoss` computes the same weighted sum from one forward pass and adds the
term.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ragctl.core.settings import TrainSettings
from ragctl.tuner.errors import TunerError


@dataclass(frozen=True)
class LossPlan:
    """What the loss is, as recorded in the registry and the card."""

    dims: list[int]
    weights: list[float]
    mini_batch: int | None  # the cached variant's mini-batch; None: uncached
    alignment: float
    alignment_dims: list[int]
    alignment_temperature: float

    @property
    def base(self) -> str:
        """MultipleNegativesRankingLoss, or its cached variant with the mini-batch."""
        if self.mini_batch is None:
            return "MultipleNegativesRankingLoss"
        return f"CachedMultipleNegativesRankingLoss(mini_batch={self.mini_batch})"

    def describe(self) -> str:
        weights = "" if set(self.weights) == {1.0} else f", weights={self.weights}"
        text = f"MatryoshkaLoss({self.base}, dims={self.dims}{weights})"
        if self.alignment:
            text += (
                f" + {self.alignment} x KL(full || {self.alignment_dims}, "
                f"T={self.alignment_temperature})"
            )
        return text


# The MNRL default scale is 20 (temperature 0.05); the teacher distribution uses the same.
ALIGNMENT_TEMPERATURE = 0.05


def plan_loss(
    config: TrainSettings, dims: Sequence[int], shortlist_dims: Sequence[int], *, device: str
) -> LossPlan:
    """The loss of a run on `device`: Matryoshka dims with their weights, the base loss (and
    its mini-batch), the alignment."""
    mini_batch = _mini_batch(config, device)
    if mini_batch is not None and config.shortlist_alignment:
        raise TunerError(
            f"shortlist_alignment needs the uncached loss: batch size {config.batch_size} is "
            f"above max_uncached_batch ({config.max_uncached_batch}); lower the batch size or "
            "set shortlist_alignment to 0"
        )
    shortlist = set(shortlist_dims)
    weights = [config.shortlist_loss_weight if d in shortlist else 1.0 for d in dims]
    full = max(dims)
    return LossPlan(
        dims=list(dims),
        weights=weights,
        mini_batch=mini_batch,
        alignment=config.shortlist_alignment,
        alignment_dims=sorted((d for d in shortlist if d < full), reverse=True),
        alignment_temperature=ALIGNMENT_TEMPERATURE,
    )


def _mini_batch(config: TrainSettings, device: str) -> int | None:
    """The cached loss's mini-batch for `config` on `device`; None: the whole batch at once.

    On CPU, embedding small mini-batches is faster than the whole batch (less padding, less
    memory traffic) even with the cached loss's extra no-grad pass; on a GPU it is slower.
    """
    cpu_mini = config.cpu_mini_batch_size or config.batch_size  # None: nothing to split
    if device == "cpu" and not config.shortlist_alignment and config.batch_size > cpu_mini:
        return cpu_mini
    if config.batch_size > config.max_uncached_batch:
        return config.mini_batch_size
    return None


def build_loss(model: Any, plan: LossPlan) -> Any:
    """The torch loss module of `plan` for `model`."""
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )

    if plan.mini_batch is not None:
        base: Any = CachedMultipleNegativesRankingLoss(model, mini_batch_size=plan.mini_batch)
    else:
        base = MultipleNegativesRankingLoss(model)
    if not plan.alignment or not plan.alignment_dims:
        return MatryoshkaLoss(
            model, base, matryoshka_dims=plan.dims, matryoshka_weights=plan.weights
        )
    return shortlist_matryoshka_loss(model, base, plan)


def shortlist_matryoshka_loss(model: Any, base: Any, plan: LossPlan) -> Any:
    """A `ShortlistMatryoshkaLoss` (defined here so torch loads only when training)."""
    import torch
    import torch.nn.functional as F
    from sentence_transformers.base.losses.merged_forward import embed_columns
    from torch import nn

    def shrink(tensor: torch.Tensor, dim: int) -> torch.Tensor:
        return F.normalize(tensor[..., :dim], p=2, dim=-1)

    class ShortlistMatryoshkaLoss(nn.Module):  # type: ignore[misc]
        """Weighted MNRL at each Matryoshka dim from one forward pass, plus the KL term
        aligning each shortlist dim's in-batch ranking with the full dim's."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.loss = base

        def forward(self, sentence_features: Iterable[dict[str, Any]], labels: Any) -> Any:
            embeddings = embed_columns(self.model, sentence_features)
            total: Any = 0.0
            for dim, weight in zip(plan.dims, plan.weights, strict=True):
                shrunk = [shrink(e, dim) for e in embeddings]
                total = total + weight * self.loss.compute_loss_from_embeddings(shrunk, labels)
            queries, docs = embeddings[0], torch.cat(embeddings[1:], dim=0)
            full = max(plan.dims)
            with torch.no_grad():
                teacher = shrink(queries, full) @ shrink(docs, full).T
                target = F.softmax(teacher / plan.alignment_temperature, dim=-1)
            for dim in plan.alignment_dims:
                student = shrink(queries, dim) @ shrink(docs, dim).T
                log_probs = F.log_softmax(student / plan.alignment_temperature, dim=-1)
                kl = F.kl_div(log_probs, target, reduction="batchmean")
                total = total + plan.alignment * kl
            return total

        def get_config_dict(self) -> dict[str, Any]:
            return {
                "loss": type(base).__name__,
                "matryoshka_dims": plan.dims,
                "matryoshka_weights": plan.weights,
                "alignment": plan.alignment,
                "alignment_dims": plan.alignment_dims,
                "alignment_temperature": plan.alignment_temperature,
            }

    return ShortlistMatryoshkaLoss()
