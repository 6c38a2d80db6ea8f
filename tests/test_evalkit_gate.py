"""evalkit.gate: promote only on a real ndcg@10 gain with no dim regressing, guard set kept."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from ragctl.core.settings import GateSettings
from ragctl.evalkit.errors import EvalError
from ragctl.evalkit.gate import decide
from ragctl.evalkit.results import EvalReport, RunRow


def _report(
    model: str,
    values: dict[str, float],
    *,
    dataset: str = "held-out",
    queries: int = 100,
    noise: float = 0.0,
    per_query: bool = True,
) -> EvalReport:
    """Rows with the given means; per query, mean + a spread shared by every model (so
    differences are exactly the mean difference) + this model's own zero-mean `noise`."""
    rows = []
    for name, value in values.items():
        kind = "exact" if name.isdigit() else name
        dim = int(name) if name.isdigit() else 384
        shared = _zero_mean(np.random.default_rng(len(name) * 7 + ord(name[0])), queries, 0.2)
        own = _zero_mean(np.random.default_rng(sum(map(ord, model))), queries, noise)
        rows.append(
            RunRow(
                name,
                kind,
                None if kind == "bm25" else dim,
                {"ndcg@10": value},
                per_query={f"q{i}": {"ndcg@10": value + shared[i] + own[i]} for i in range(queries)}
                if per_query
                else {},
            )
        )
    return EvalReport(
        model=model,
        dataset=dataset,
        split="test",
        full_dim=384,
        sizes={"queries": queries, "corpus": 1000},
        rows=rows,
    )


def _zero_mean(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    values = rng.normal(0, scale, n) if scale else np.zeros(n)
    return values - values.mean()


SERVING = {"384": 0.60, "256": 0.59, "128": 0.57, "64": 0.50, "two-stage": 0.60, "bm25": 0.7}


def test_gate_promotes_a_real_gain() -> None:
    candidate = {
        "384": 0.62,
        "256": 0.61,
        "128": 0.58,
        "64": 0.495,
        "two-stage": 0.615,
        "bm25": 0.7,
    }
    decision = decide(_report("cand", candidate), _report("serving", SERVING))
    assert decision.promote, decision.reason
    assert decision.reason.startswith("promote: ndcg@10 gain 384 +0.0200 [95% CI +0.0200")
    assert "two-stage +0.0150" in decision.reason and "p < 0.05" in decision.reason
    checked = {(c.check, c.column) for c in decision.comparisons}
    assert ("gain", "384") in checked and ("gain", "two-stage") in checked
    assert {("regression", d) for d in ("384", "256", "128", "64", "two-stage")} <= checked
    assert not any(c.column == "bm25" for c in decision.comparisons)
    gain = decision.comparisons[0]
    assert (gain.candidate, gain.serving, gain.threshold) == (0.62, 0.60, 0.005)
    assert gain.test is not None and gain.test.p_better < 0.001 and gain.test.wins == 100
    recorded = decision.to_dict()
    assert recorded["queries"] == 100 and recorded["comparisons"][0]["test"]["ci_low"] > 0


def test_gate_rejects_a_gain_below_the_minimum() -> None:
    candidate = dict(SERVING, **{"384": 0.603, "two-stage": 0.62})
    decision = decide(_report("cand", candidate), _report("serving", SERVING))
    assert not decision.promote
    assert "ndcg@10 gain at 384 is +0.0030" in decision.reason
    assert "below +0.0050" in decision.reason
    assert [c.column for c in decision.failures()] == ["384"]


def test_gate_rejects_when_two_stage_does_not_gain() -> None:
    candidate = dict(SERVING, **{"384": 0.63, "two-stage": 0.601})
    decision = decide(_report("cand", candidate), _report("serving", SERVING))
    assert not decision.promote
    assert "gain at two-stage is +0.0010" in decision.reason


def test_gate_rejects_a_regressing_dim() -> None:
    candidate = dict(SERVING, **{"384": 0.63, "two-stage": 0.63, "64": 0.48})
    decision = decide(_report("cand", candidate), _report("serving", SERVING))
    assert not decision.promote
    assert decision.reason == "reject: ndcg@10 at 64 regressed by 0.0200 > 0.0100"


def test_gate_rejects_a_dropping_guard_set() -> None:
    candidate = dict(SERVING, **{"384": 0.63, "two-stage": 0.63})
    guard_serving = _report("serving", {"384": 0.80, "two-stage": 0.79}, dataset="guard")
    guard_candidate = _report("cand", {"384": 0.77, "two-stage": 0.785}, dataset="guard")
    decision = decide(
        _report("cand", candidate),
        _report("serving", SERVING),
        candidate_guard=guard_candidate,
        serving_guard=guard_serving,
    )
    assert not decision.promote
    assert decision.reason == "reject: guard set ndcg@10 at 384 dropped by 0.0300 > 0.0100"
    ok = decide(
        _report("cand", candidate),
        _report("serving", SERVING),
        GateSettings(guard_tolerance=0.05),
        candidate_guard=guard_candidate,
        serving_guard=guard_serving,
    )
    assert ok.promote and "guard set within 0.0500" in ok.reason


def test_gate_rejects_a_gain_that_is_not_significant() -> None:
    # The mean gain clears min_gain, but the candidate wins some queries and loses others
    # by much more: the paired test cannot tell it from noise, so it is rejected.
    candidate = dict(SERVING, **{"384": 0.615, "two-stage": 0.615})
    decision = decide(_report("cand", candidate, noise=0.25), _report("serving", SERVING))
    assert not decision.promote
    gain = decision.comparisons[0]
    assert gain.delta >= 0.005 and gain.test is not None and gain.test.p_better >= 0.05
    assert gain.test.wins > 20 and gain.test.losses > 20
    assert "not significant" in decision.reason and "below" not in decision.reason
    # The same mean gain on every query is significant.
    assert decide(_report("cand", candidate), _report("serving", SERVING)).promote


def test_gate_needs_enough_queries_and_per_query_values() -> None:
    candidate = dict(SERVING, **{"384": 0.65, "two-stage": 0.65})
    few = decide(_report("c", candidate, queries=20), _report("s", SERVING, queries=20))
    assert not few.promote and "only 20 held-out queries (needs >= 30" in few.reason
    assert "--eval-set" in few.reason and "--synthetic" in few.reason
    assert all(c.passed for c in few.comparisons)  # a real gain, but too few queries
    allowed = GateSettings(min_queries=20)
    assert decide(
        _report("c", candidate, queries=20), _report("s", SERVING, queries=20), allowed
    ).promote
    bare = decide(_report("c", candidate, per_query=False), _report("s", SERVING, per_query=False))
    assert not bare.promote and "no per-query values" in bare.reason


def test_gate_threshold_is_inclusive() -> None:
    candidate = dict(SERVING, **{"384": 0.605, "two-stage": 0.605, "64": 0.49})
    assert decide(_report("c", candidate), _report("s", SERVING)).promote


def test_gate_refuses_incomparable_reports() -> None:
    with pytest.raises(EvalError, match="evaluated on other"):
        decide(_report("c", SERVING, dataset="other"), _report("s", SERVING))
    with pytest.raises(EvalError, match="different queries counts"):
        decide(_report("c", SERVING, queries=99), _report("s", SERVING))
    with pytest.raises(EvalError, match="needs both the candidate's and the serving guard"):
        decide(_report("c", SERVING), _report("s", SERVING), candidate_guard=_report("c", SERVING))
    no_pipeline = {k: v for k, v in SERVING.items() if k != "two-stage"}
    with pytest.raises(EvalError, match="needs two-stage rows"):
        decide(_report("c", no_pipeline), _report("s", no_pipeline))
    decision = decide(
        _report("c", dict(no_pipeline, **{"384": 0.7})),
        _report("s", no_pipeline),
        require_two_stage=False,
    )
    assert decision.promote
    with pytest.raises(EvalError, match="has no such row"):
        decide(_report("c", {"256": 0.5, "two-stage": 0.5}), _report("s", SERVING))


def test_gate_validates_thresholds_and_the_serving_row() -> None:
    with pytest.raises(ValidationError, match="min_gain"):
        GateSettings(min_gain=-0.1)
    with pytest.raises(EvalError, match="serving_row must be two-stage or hybrid"):
        decide(_report("c", SERVING), _report("s", SERVING), serving_row="sparse")
