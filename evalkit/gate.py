"""The promotion gate (pure): does a candidate model beat the serving one on held-out queries?

Promote only when all hold:
1. gain: ndcg@10 (`METRIC`) improves by at least `min_gain` at the full dim AND in the serving
   mode: through the two-stage pipeline (dense; both reports need a two-stage row by default),
   or the hybrid row when the collection is served hybrid;
2. no regression: at every exact dim and pipeline mode both reports share (sparse and hybrid
   included), the candidate loses at most `max_regression`;
3. guard (optional): on a general-domain guard set, the candidate loses at most
   `guard_tolerance` at the full dim (and through two-stage when both guard reports have it).
Differences are absolute (candidate - serving). BM25 rows are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ragctl.core.settings import GateSettings
from ragctl.evalkit.errors import EvalError
from ragctl.evalkit.results import (
    EXACT,
    HYBRID,
    SINGLE_STAGE,
    SPARSE,
    TWO_STAGE,
    EvalReport,
    RunRow,
)

# Float noise allowance when comparing a difference with a threshold.
_EPS = 1e-12

GAIN = "gain"
REGRESSION = "regression"
GUARD = "guard"

METRIC = "ndcg@10"
"""The metric the gate compares."""


@dataclass(frozen=True)
class GateComparison:
    """One compared number.

    Attributes:
        check: `gain`, `regression` or `guard`.
        column: Report row (`"384"`, `"two-stage"`).
        metric: Metric key.
        candidate: Candidate's value.
        serving: Serving model's value.
        threshold: The bound on `delta`: `delta >= threshold` passes.
        passed: Whether it passed.
    """

    check: str
    column: str
    metric: str
    candidate: float
    serving: float
    threshold: float
    passed: bool

    @property
    def delta(self) -> float:
        """candidate - serving."""
        return self.candidate - self.serving

    def describe(self) -> str:
        """`ndcg@10 at 384: 0.6512 vs 0.6450 (+0.0062, needs >= +0.0050)`."""
        return (
            f"{self.check} {self.metric} at {self.column}: {self.candidate:.4f} vs "
            f"{self.serving:.4f} ({self.delta:+.4f}, needs >= {self.threshold:+.4f})"
        )


@dataclass(frozen=True)
class GateDecision:
    """The outcome: promote or not, why, and every number compared."""

    promote: bool
    reason: str
    comparisons: list[GateComparison] = field(default_factory=list)

    def failures(self) -> list[GateComparison]:
        """The comparisons that did not pass."""
        return [c for c in self.comparisons if not c.passed]


def _value(report: EvalReport, row: RunRow | None, metric: str, what: str) -> float:
    if row is None:
        raise EvalError(f"{what}: report of {report.model} on {report.dataset} has no such row")
    if metric not in row.metrics:
        raise EvalError(f"{what}: row {row.name} of {report.model} has no metric {metric!r}")
    return row.metrics[metric]


def _check_comparable(candidate: EvalReport, serving: EvalReport, what: str) -> None:
    if (candidate.dataset, candidate.split) != (serving.dataset, serving.split):
        raise EvalError(
            f"{what}: candidate was evaluated on {candidate.dataset} [{candidate.split}] but the "
            f"serving model on {serving.dataset} [{serving.split}]"
        )
    for key in ("queries", "corpus"):
        if candidate.sizes.get(key) != serving.sizes.get(key):
            raise EvalError(
                f"{what}: the reports have different {key} counts "
                f"({candidate.sizes.get(key)} vs {serving.sizes.get(key)})"
            )


def _compare(
    check: str, column: str, candidate: EvalReport, serving: EvalReport, threshold: float
) -> GateComparison:
    what = f"{check} check at {column}"
    if column == "full":
        c_row, s_row = candidate.full_row(), serving.full_row()
        column = str(candidate.full_dim)
    else:
        c_row, s_row = candidate.row(column), serving.row(column)
    c = _value(candidate, c_row, METRIC, what)
    s = _value(serving, s_row, METRIC, what)
    return GateComparison(check, column, METRIC, c, s, threshold, c - s >= threshold - _EPS)


def decide(
    candidate: EvalReport,
    serving: EvalReport,
    rule: GateSettings | None = None,
    *,
    serving_row: str = TWO_STAGE,
    require_two_stage: bool = True,
    candidate_guard: EvalReport | None = None,
    serving_guard: EvalReport | None = None,
) -> GateDecision:
    """Decide whether `candidate` may replace `serving`.

    Args:
        candidate: Report of the candidate model on the held-out set.
        serving: Report of the serving model on the same set.
        rule: Thresholds (defaults: gain 0.005, regression 0.01, guard 0.01).
        serving_row: The pipeline row of the serving mode, where the gain is required:
            `two-stage` (dense, or sparse: the model does not change sparse results) or
            `hybrid` (falls back to `two-stage` when a report has no hybrid row).
        require_two_stage: Refuse to decide without two-stage rows in both reports.
        candidate_guard: Candidate's report on the guard set (give both guard reports or none).
        serving_guard: Serving model's report on the guard set.

    Raises:
        EvalError: The reports are not comparable (other dataset or sizes, a missing full-dim or
            required two-stage row, only one guard report), or `serving_row` is another row.
    """
    rule = rule or GateSettings()
    if serving_row not in (TWO_STAGE, HYBRID):
        raise EvalError(f"serving_row must be two-stage or hybrid, got {serving_row!r}")
    _check_comparable(candidate, serving, "gate")
    if (candidate_guard is None) != (serving_guard is None):
        raise EvalError("the guard check needs both the candidate's and the serving guard report")
    has_two_stage = candidate.row(TWO_STAGE) is not None and serving.row(TWO_STAGE) is not None
    if require_two_stage and not has_two_stage:
        raise EvalError(
            "the gate needs two-stage rows in both reports (evaluate with the pipeline), "
            "or require_two_stage=False"
        )
    comparisons = [_compare(GAIN, "full", candidate, serving, rule.min_gain)]
    gain_row = serving_row
    if candidate.row(gain_row) is None or serving.row(gain_row) is None:
        gain_row = TWO_STAGE
    if has_two_stage or gain_row != TWO_STAGE:
        comparisons.append(_compare(GAIN, gain_row, candidate, serving, rule.min_gain))
    shared = [
        r.name
        for r in candidate.rows
        if r.kind in (EXACT, TWO_STAGE, SINGLE_STAGE, SPARSE, HYBRID)
        and serving.row(r.name) is not None
    ]
    for column in shared:
        comparisons.append(_compare(REGRESSION, column, candidate, serving, -rule.max_regression))
    if candidate_guard is not None and serving_guard is not None:
        _check_comparable(candidate_guard, serving_guard, "guard")
        tolerance = -rule.guard_tolerance
        comparisons.append(_compare(GUARD, "full", candidate_guard, serving_guard, tolerance))
        if candidate_guard.row(TWO_STAGE) is not None and serving_guard.row(TWO_STAGE) is not None:
            comparisons.append(
                _compare(GUARD, TWO_STAGE, candidate_guard, serving_guard, tolerance)
            )
    return GateDecision(_all_passed(comparisons), _reason(comparisons, rule), comparisons)


def _all_passed(comparisons: list[GateComparison]) -> bool:
    return all(c.passed for c in comparisons)


def _reason(comparisons: list[GateComparison], rule: GateSettings) -> str:
    failed = [c for c in comparisons if not c.passed]
    gains = ", ".join(f"{c.delta:+.4f} at {c.column}" for c in comparisons if c.check == GAIN)
    if not failed:
        worst = min((c.delta for c in comparisons if c.check == REGRESSION), default=0.0)
        text = (
            f"promote: {METRIC} {gains} (>= +{rule.min_gain:.4f}); no column regressed "
            f"more than {rule.max_regression:.4f} (worst {worst:+.4f})"
        )
        if any(c.check == GUARD for c in comparisons):
            text += f"; guard set within {rule.guard_tolerance:.4f}"
        return text
    parts = []
    for c in failed:
        if c.check == GAIN:
            parts.append(f"{METRIC} gain at {c.column} is {c.delta:+.4f} < +{rule.min_gain:.4f}")
        elif c.check == REGRESSION:
            parts.append(
                f"{METRIC} at {c.column} regressed by {-c.delta:.4f} > {rule.max_regression:.4f}"
            )
        else:
            parts.append(
                f"guard set {METRIC} at {c.column} dropped by {-c.delta:.4f} "
                f"> {rule.guard_tolerance:.4f}"
            )
    return "reject: " + "; ".join(parts)
