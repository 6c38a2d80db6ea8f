"""evalkit.gate: promote only on a real ndcg@10 gain with no dim regressing, guard set kept."""

from __future__ import annotations

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
) -> EvalReport:
    rows = []
    for name, value in values.items():
        kind = "exact" if name.isdigit() else name
        dim = int(name) if name.isdigit() else 384
        rows.append(RunRow(name, kind, None if kind == "bm25" else dim, {"ndcg@10": value}))
    return EvalReport(
        model=model,
        dataset=dataset,
        split="test",
        full_dim=384,
        sizes={"queries": queries, "corpus": 1000},
        rows=rows,
    )


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
    assert decision.reason.startswith("promote: ndcg@10 +0.0200 at 384, +0.0150 at two-stage")
    checked = {(c.check, c.column) for c in decision.comparisons}
    assert ("gain", "384") in checked and ("gain", "two-stage") in checked
    assert {("regression", d) for d in ("384", "256", "128", "64", "two-stage")} <= checked
    assert not any(c.column == "bm25" for c in decision.comparisons)
    gain = decision.comparisons[0]
    assert (gain.candidate, gain.serving, gain.threshold) == (0.62, 0.60, 0.005)


def test_gate_rejects_a_gain_below_the_minimum() -> None:
    candidate = dict(SERVING, **{"384": 0.603, "two-stage": 0.62})
    decision = decide(_report("cand", candidate), _report("serving", SERVING))
    assert not decision.promote
    assert "ndcg@10 gain at 384 is +0.0030 < +0.0050" in decision.reason
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
