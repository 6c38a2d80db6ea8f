"""Matryoshka truncation: a shortlist vector is the first D dims of the full one, renormalized."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def truncate(vectors: NDArray[np.float32], dim: int) -> NDArray[np.float32]:
    """First `dim` components of each row, L2-renormalized (Matryoshka).

    Args:
        vectors: Array of shape (n, full_dim) or (full_dim,).
        dim: Number of leading components to keep, 1 <= dim <= full_dim.
    """
    full_dim = vectors.shape[-1]
    if not 1 <= dim <= full_dim:
        raise ValueError(f"dim must be in [1, {full_dim}], got {dim}")
    head = np.asarray(vectors[..., :dim], dtype=np.float32)
    norms = np.linalg.norm(head, axis=-1, keepdims=True)
    return head / np.maximum(norms, np.float32(1e-12))


def normalize(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    """L2-normalize each row (the full vector, so cosine == dot product)."""
    return truncate(vectors, vectors.shape[-1])
