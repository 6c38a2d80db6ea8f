import uuid

import numpy as np
import pytest

from ragctl.core.ids import chunk_id, point_id
from ragctl.core.matryoshka import normalize, truncate


def test_chunk_id_stable_and_content_sensitive():
    assert chunk_id("a.md", 0, "hello") == chunk_id("a.md", 0, "hello")
    assert chunk_id("a.md", 0, "hello") != chunk_id("a.md", 0, "hello!")
    assert chunk_id("a.md", 0, "hello") != chunk_id("a.md", 1, "hello")
    assert chunk_id("a.md", 0, "hello") != chunk_id("b.md", 0, "hello")
    assert chunk_id("a.md", 3, "hello").startswith("a.md#3@")


def test_point_id_is_a_fixed_uuid():
    first = point_id("a.md#0@2cf24dba5fb0a30e")
    assert uuid.UUID(first).version == 5
    # Pinned: a change would orphan every stored point.
    assert first == point_id("a.md#0@2cf24dba5fb0a30e")
    assert first == "{}".format(
        uuid.uuid5(uuid.UUID("6f1c7a52-3d0e-4c8e-9a51-2b7f0d4e8c31"), "a.md#0@2cf24dba5fb0a30e")
    )


def test_chunk_id_rejects_negative_index():
    with pytest.raises(ValueError, match="index must be >= 0"):
        chunk_id("a", -1, "x")


def test_truncate_keeps_prefix_and_renormalizes():
    vectors = np.array([[3.0, 4.0, 12.0], [1.0, 0.0, 0.0]], dtype=np.float32)
    head = truncate(vectors, 2)
    np.testing.assert_allclose(head, [[0.6, 0.8], [1.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(normalize(vectors), axis=1), [1.0, 1.0], atol=1e-6)


@pytest.mark.parametrize("dim", [0, 4])
def test_truncate_rejects_bad_dim(dim):
    with pytest.raises(ValueError, match=r"dim must be in \[1, 3\]"):
        truncate(np.ones((1, 3), dtype=np.float32), dim)
