"""Hold out queries for the gate and for checkpoint selection, grouped so a query never sits on
two sides (pure).

Three sides: the gate's held-out set (never seen by training or by selection), the validation
queries (never trained on; they pick the best checkpoint), and training. Each side is decided by
a seeded hash of the normalized query, so a query's side does not depend on the other data:
rerunning with more pairs moves no query from one side to another (except validation queries
returning to training when `max_queries` caps a growing set).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence

from ragctl.tuner.errors import TunerError
from ragctl.tuner.pairs import TrainingPair, normalize_query

# Fewer validation queries than this select nothing reliably: validation is then off.
MIN_VALIDATION_QUERIES = 10


def _bucket(query: str, seed: int, salt: str = "") -> float:
    """A stable number in [0, 1) for the normalized query (independent per `salt`)."""
    key = f"{seed}:{salt}:{normalize_query(query)}" if salt else f"{seed}:{normalize_query(query)}"
    digest = hashlib.sha256(key.encode()).digest()
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


def split_validation(
    pairs: Sequence[TrainingPair],
    fraction: float,
    *,
    max_queries: int,
    seed: int = 42,
    min_queries: int = MIN_VALIDATION_QUERIES,
) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """(train, validation) out of training pairs: about `fraction` of their distinct queries,
    about `max_queries` at most, validate; none when that leaves fewer than `min_queries` (or
    `fraction` is 0).

    The hash is salted apart from the gate's, so which training queries validate does not
    depend on the held-out fraction. With the cap the threshold shrinks as data grows: the
    validation set of more data is a subset of the one of less, never a new draw.
    """
    if not 0 <= fraction < 1:
        raise TunerError(f"validation fraction must be in [0, 1), got {fraction}")
    if max_queries < 1:
        raise TunerError(f"validation max queries must be >= 1, got {max_queries}")
    if fraction == 0:
        return list(pairs), []
    distinct = len({normalize_query(p.query) for p in pairs})
    threshold = min(fraction, max_queries / distinct) if distinct else fraction
    train: list[TrainingPair] = []
    validation: list[TrainingPair] = []
    for pair in pairs:
        side = validation if _bucket(pair.query, seed, "validation") < threshold else train
        side.append(pair)
    if len({normalize_query(p.query) for p in validation}) < min_queries or not train:
        return list(pairs), []
    return train, validation


def drop_queries(pairs: Sequence[TrainingPair], queries: Collection[str]) -> list[TrainingPair]:
    """Pairs whose query is not among `queries` (to keep a golden eval set out of training)."""
    banned = {normalize_query(q) for q in queries}
    return [p for p in pairs if normalize_query(p.query) not in banned]
