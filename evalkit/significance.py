"""Paired significance of a per-query metric difference (pure numpy, no I/O).

Two models scored on the same queries give paired values; the question the gate asks is
whether the candidate's mean gain is real or noise of which queries happened to be held out.

- p-value: the paired randomization (sign-flip) test. Under "no difference", each query's
  difference is as likely to have the other sign, so the observed mean is compared with the
  means of randomly sign-flipped differences. Exact (every sign assignment) when there are at
  most `resamples` assignments, Monte Carlo with a fixed seed otherwise.
- confidence interval: the percentile bootstrap of the mean difference (queries resampled
  with replacement), also seeded, so the same inputs always give the same numbers.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

# Per-query differences smaller than this count as ties (float noise of equal rankings).
TIE_EPS = 1e-9
_CHUNK = 1_000  # resamples drawn at a time, to bound memory on large query sets


@dataclass(frozen=True)
class PairedTest:
    """A candidate-vs-baseline comparison on the same queries.

    Attributes:
        n: Queries compared.
        baseline: Mean of the baseline's values.
        candidate: Mean of the candidate's values.
        gain: candidate - baseline (mean of the per-query differences).
        ci_low: Lower end of the bootstrap confidence interval of `gain`.
        ci_high: Upper end.
        confidence: The interval's level (0.95).
        p_better: One-sided p-value of "the candidate is better" (small = a real gain).
        p_worse: One-sided p-value of "the candidate is worse" (small = a real loss).
        wins: Queries where the candidate scored higher.
        losses: Queries where it scored lower.
        ties: Queries where both scored the same.
        resamples: Sign flips / bootstrap draws used (0 when `n` is 0).
        exact: Whether the p-values enumerate every sign assignment.
    """

    n: int
    baseline: float
    candidate: float
    gain: float
    ci_low: float
    ci_high: float
    confidence: float
    p_better: float
    p_worse: float
    wins: int
    losses: int
    ties: int
    resamples: int
    exact: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (floats rounded for reading, not for deciding)."""
        data = asdict(self)
        for key in ("baseline", "candidate", "gain", "ci_low", "ci_high"):
            data[key] = round(data[key], 6)
        for key in ("p_better", "p_worse"):
            data[key] = round(data[key], 6)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PairedTest:
        """Inverse of `to_dict`."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def describe(self) -> str:
        """`+0.0123 [95% CI +0.0041, +0.0207], p=0.0021, 41 wins / 17 losses / 22 ties`."""
        return (
            f"{self.gain:+.4f} [{self.confidence:.0%} CI {self.ci_low:+.4f}, {self.ci_high:+.4f}]"
            f", p={self.p_better:.4f}, {self.wins} wins / {self.losses} losses / "
            f"{self.ties} ties (n={self.n})"
        )


def paired_test(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedTest:
    """Compare per-query values of two models on the same queries (same order).

    Raises:
        ValueError: The sequences differ in length, or an argument is out of range.
    """
    if len(baseline) != len(candidate):
        raise ValueError(
            f"paired values need the same queries: {len(baseline)} baseline vs "
            f"{len(candidate)} candidate values"
        )
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    base = np.asarray(baseline, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    diff = cand - base
    diff[np.abs(diff) < TIE_EPS] = 0.0
    n = int(diff.size)
    wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
    if n == 0:
        return PairedTest(0, 0.0, 0.0, 0.0, 0.0, 0.0, confidence, 1.0, 1.0, 0, 0, 0, 0, True)
    observed = float(diff.mean())
    rng = np.random.default_rng(seed)
    flipped, exact = _sign_flip_means(diff, resamples, rng)
    # Counting the observed assignment itself keeps a Monte Carlo p-value above 0.
    slack = 0 if exact else 1
    p_better = (slack + int((flipped >= observed - TIE_EPS).sum())) / (slack + flipped.size)
    p_worse = (slack + int((flipped <= observed + TIE_EPS).sum())) / (slack + flipped.size)
    boot = _bootstrap_means(diff, resamples, rng)
    tail = (1 - confidence) / 2
    low, high = np.quantile(boot, [tail, 1 - tail])
    return PairedTest(
        n=n,
        baseline=float(base.mean()),
        candidate=float(cand.mean()),
        gain=observed,
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        p_better=min(1.0, p_better),
        p_worse=min(1.0, p_worse),
        wins=wins,
        losses=losses,
        ties=n - wins - losses,
        resamples=resamples,
        exact=exact,
    )


def _sign_flip_means(
    diff: NDArray[np.float64], resamples: int, rng: np.random.Generator
) -> tuple[NDArray[np.float64], bool]:
    """Means of `diff` under sign assignments: all of them when few enough, else random."""
    nonzero = diff[diff != 0]  # a zero difference is the same under either sign
    if 2 ** len(nonzero) <= resamples:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(nonzero))))
        sums = signs @ nonzero if len(nonzero) else np.zeros(1)
        return sums / diff.size, True
    means = []
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        signs = rng.choice((-1.0, 1.0), size=(size, len(nonzero)))
        means.append(signs @ nonzero / diff.size)
    return np.concatenate(means), False


def _bootstrap_means(
    diff: NDArray[np.float64], resamples: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    means = []
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        rows = rng.integers(0, diff.size, size=(size, diff.size))
        means.append(diff[rows].mean(axis=1))
    return np.concatenate(means)
