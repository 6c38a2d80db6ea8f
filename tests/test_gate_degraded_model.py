"""The gate's statistics on a real model: a deliberately degraded copy of the packaged model
(its vectors blurred with seeded noise) scores lower on held-out questions of the notebook's
legal dataset, and the paired test says so -- the candidate is rejected with a significant
loss, and it would be rejected even with no minimum gain and no regression limit. The same
statistics promote the intact model over the degraded one, so the test can fail both ways."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from ragctl.core.settings import GateSettings
from ragctl.evalkit.datasets import EvalDataset
from ragctl.evalkit.gate import decide
from ragctl.evalkit.results import EvalReport
from ragctl.evalkit.runs import EvalOptions, evaluate
from ragctl.retriever.testing import EncoderWrapper

LEGAL = "legal-rag-positives-synthetic"
QUERIES, CORPUS = 60, 300


class BlurredEncoder(EncoderWrapper):
    """The wrapped encoder with seeded Gaussian noise added to every full vector (then
    normalized again): the same model, made worse on purpose."""

    def __init__(self, inner: Any, noise: float, seed: int = 0) -> None:
        super().__init__(inner)
        self._noise, self._seed = noise, seed

    def encode_full(
        self, texts: Sequence[str], prompt: str, *, show_progress: bool = False
    ) -> NDArray[np.float32]:
        full = super().encode_full(texts, prompt, show_progress=show_progress)
        rng = np.random.default_rng(self._seed + len(texts))
        blurred = full + rng.normal(0, self._noise, full.shape).astype(np.float32)
        return (blurred / np.linalg.norm(blurred, axis=1, keepdims=True)).astype(np.float32)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


@pytest.fixture(scope="module")
def legal_heldout(shared_data: Path) -> EvalDataset:
    raw = shared_data / LEGAL / "raw"
    if not (raw / "test_dataset.json").is_file():
        pytest.skip(f"the notebook's legal dataset is not at {raw}")
    rows = _rows(raw / "test_dataset.json") + _rows(raw / "train_dataset.json")
    chunks = {str(r["global_chunk_id"]): r["positive"] for r in rows}
    rng = random.Random(0)
    heldout = rng.sample(_rows(raw / "test_dataset.json"), QUERIES)
    corpus_ids = {str(r["global_chunk_id"]) for r in heldout}
    rest = sorted(set(chunks) - corpus_ids)
    rng.shuffle(rest)
    corpus_ids |= set(rest[: CORPUS - len(corpus_ids)])
    return EvalDataset(
        name="legal-heldout",
        split="test",
        corpus={i: chunks[i] for i in sorted(corpus_ids)},
        queries={f"q{n}": r["anchor"] for n, r in enumerate(heldout)},
        qrels={f"q{n}": {str(r["global_chunk_id"]): 1} for n, r in enumerate(heldout)},
    )


def _exact(dataset: EvalDataset, encoder: Any) -> EvalReport:
    return evaluate(dataset, encoder, EvalOptions(dims=(384, 64), pipeline=False))


def test_gate_rejects_a_degraded_model_on_its_statistics(legal_heldout, real_encoder) -> None:
    intact = _exact(legal_heldout, real_encoder)
    degraded = _exact(legal_heldout, BlurredEncoder(real_encoder, noise=0.05))

    decision = decide(degraded, intact, require_two_stage=False)
    assert not decision.promote
    gain = decision.comparisons[0]
    assert gain.check == "gain" and gain.test is not None
    assert gain.delta < 0 and gain.test.n == QUERIES
    # A real loss, not noise: significant, its whole confidence interval below zero.
    assert gain.test.p_worse < 0.05 and gain.test.ci_high < 0
    assert gain.test.losses > gain.test.wins
    assert gain.test.describe() in decision.reason  # gain, CI, p-value, wins/losses

    # No minimum gain, no regression limit: the statistics alone still refuse it.
    lenient = GateSettings(min_gain=0.0, max_regression=1.0)
    alone = decide(degraded, intact, lenient, require_two_stage=False)
    assert not alone.promote
    assert all(
        c.test is not None and c.test.p_better >= lenient.significance
        for c in alone.comparisons
        if c.check == "gain"
    )

    # The other way round the same test promotes: it can tell better from worse.
    assert decide(intact, degraded, require_two_stage=False).promote
