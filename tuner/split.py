"""Hold out queries for the gate, grouped so a query never sits on both sides (pure)."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence

from ragctl.tuner.errors import TunerError
from ragctl.tuner.pairs import TrainingPair, normalize_query


def _bucket(query: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{normalize_query(query)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_heldout(
    pairs: Sequence[TrainingPair], fraction: float, *, seed: int = 42
) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """(train, held-out): about `fraction` of distinct queries go to held-out.

    The assignment hashes the normalized query, so it is stable across runs and every pair of
    a query lands on the same side.
    """
    if not 0 < fraction < 1:
        raise TunerError(f"held-out fraction must be in (0, 1), got {fraction}")
    train: list[TrainingPair] = []
    heldout: list[TrainingPair] = []
    for pair in pairs:
        (heldout if _bucket(pair.query, seed) < fraction else train).append(pair)
    if not heldout or not train:
        raise TunerError(
            f"{len(pairs)} pairs are too few to hold out {fraction:.0%} of their queries for the "
            "gate; log more feedback, add pairs, or give an eval set (--eval-set)"
        )
    return train, heldout


def drop_queries(pairs: Sequence[TrainingPair], queries: Collection[str]) -> list[TrainingPair]:
    """Pairs whose query is not among `queries` (to keep a golden eval set out of training)."""
    banned = {normalize_query(q) for q in queries}
    return [p for p in pairs if normalize_query(p.query) not in banned]
