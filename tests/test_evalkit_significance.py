"""evalkit.significance: the paired randomization test and bootstrap interval of the gate."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ragctl.evalkit.significance import PairedTest, paired_test


def test_paired_test_of_identical_values_is_all_ties_and_never_significant() -> None:
    values = [0.2, 0.5, 1.0, 0.0]
    result = paired_test(values, values)
    assert (result.gain, result.wins, result.losses, result.ties) == (0.0, 0, 0, 4)
    assert result.p_better == 1.0 and result.p_worse == 1.0
    assert result.ci_low == result.ci_high == 0.0


def test_paired_test_enumerates_sign_flips_exactly_for_few_queries() -> None:
    # 8 sign assignments of (0.1, 0.2, 0.3); only the observed one has a mean >= 0.2.
    result = paired_test([0.0, 0.0, 0.0], [0.1, 0.2, 0.3])
    assert result.exact
    assert result.p_better == pytest.approx(1 / 8)
    assert result.p_worse == pytest.approx(1.0)
    assert result.wins == 3 and result.gain == pytest.approx(0.2)


def test_paired_test_p_value_equals_scipy_exact_permutation_test() -> None:
    rng = np.random.default_rng(7)
    base = rng.uniform(0, 1, 11)
    cand = base + rng.normal(0.05, 0.1, 11)
    ours = paired_test(base, cand)
    theirs = stats.permutation_test(
        (cand, base),
        lambda x, y: np.mean(x - y),
        permutation_type="samples",
        alternative="greater",
        n_resamples=np.inf,
    )
    assert ours.exact
    assert ours.p_better == pytest.approx(theirs.pvalue)


def test_paired_test_finds_a_consistent_gain_significant_and_not_a_loss() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.8, 80)
    cand = base + rng.normal(0.05, 0.03, 80)
    result = paired_test(base, cand)
    assert not result.exact and result.resamples == 10_000
    assert result.p_better < 0.001 and result.p_worse > 0.99
    assert 0 < result.ci_low < result.gain < result.ci_high


def test_paired_test_does_not_find_symmetric_noise_significant() -> None:
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, 60)
    cand = base + rng.normal(0.0, 0.2, 60)
    result = paired_test(base, cand)
    assert result.p_better > 0.05 and result.p_worse > 0.05
    assert result.ci_low < 0 < result.ci_high


def test_paired_test_is_reproducible_and_round_trips() -> None:
    rng = np.random.default_rng(5)
    base, cand = rng.uniform(0, 1, 40), rng.uniform(0, 1, 40)
    first, second = paired_test(base, cand, seed=9), paired_test(base, cand, seed=9)
    assert first == second
    again = PairedTest.from_dict(first.to_dict())
    assert again.n == 40 and again.p_better == pytest.approx(first.p_better, abs=1e-6)
    assert "wins" in first.describe() and "CI" in first.describe()


def test_paired_test_rejects_unpaired_values() -> None:
    with pytest.raises(ValueError, match="same queries: 2 baseline vs 3 candidate"):
        paired_test([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="resamples"):
        paired_test([0.1], [0.2], resamples=0)
