"""The promotion gate (pure): does a candidate model beat the serving one on held-out queries?

Promote only when all hold:
1. enough queries: at least `min_queries` held-out queries (a gain on a handful is noise);
2. gain: ndcg@10 (`METRIC`) improves by at least `min_gain` at the full dim AND in the serving
   mode (the two-stage row when served dense, the hybrid row when served hybrid), and each of
   those gains is significant: the one-sided p-value of a paired randomization test over the
   per-query values is below `significance` (`evalkit.significance`, seeded, so the same
   reports always give the same decision);
3. no regression: at every exact dim and pipeline mode both reports share (sparse and hybrid
   included), the candidate loses at most `max_regression`;
4. guard (optional): on a general-domain guard set, the candidate loses at most
   `guard_tolerance` at the full dim (and through two-stage when both guard reports have it).
Differences are absolute (candidate - serving). BM25 rows are ignored. Every comparison with
per-query values carries its paired test: the gain's confidence interval, p-values and the
queries won, lost and tied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

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
from ragctl.evalkit.significance import PairedTest, paired_test

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
        passed: Whether it passed (a gain must also be significant).
        test: The paired test over the per-query values (None when a report has none).
    """

    check: str
    column: str
    metric: str
    candidate: float
    serving: float
    threshold: float
    passed: bool
    test: PairedTest | None = None

    @property
    def delta(self) -> float:
        """candidate - serving."""
        return self.candidate - self.serving

    def describe(self) -> str:
        """`gain ndcg@10 at 384: 0.6512 vs 0.6450 (+0.0062 [95% CI ...], p=0.01, ...)`."""
        stats = self.test.describe() if self.test is not None else f"{self.delta:+.4f}"
        return (
            f"{self.check} {self.metric} at {self.column}: {self.candidate:.4f} vs "
            f"{self.serving:.4f}: {stats}; needs >= {self.threshold:+.4f}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for the registry, the model card and the API)."""
        return {
            "check": self.check,
            "column": self.column,
            "metric": self.metric,
            "candidate": round(self.candidate, 6),
            "serving": round(self.serving, 6),
            "delta": round(self.delta, 6),
            "threshold": self.threshold,
            "passed": self.passed,
            "test": None if self.test is None else self.test.to_dict(),
        }


@dataclass(frozen=True)
class GateDecision:
    """The outcome: promote or not, why, and every number compared."""

    promote: bool
    reason: str
    comparisons: list[GateComparison] = field(default_factory=list)
    queries: int = 0  # held-out queries compared
    significance: float = 0.05

    def failures(self) -> list[GateComparison]:
        """The comparisons that did not pass."""
        return [c for c in self.comparisons if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form: the verdict, its reason and every compared number."""
        return {
            "promote": self.promote,
            "reason": self.reason,
            "queries": self.queries,
            "significance": self.significance,
            "comparisons": [c.to_dict() for c in self.comparisons],
        }


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
    check: str,
    column: str,
    candidate: EvalReport,
    serving: EvalReport,
    threshold: float,
    rule: GateSettings,
) -> GateComparison:
    what = f"{check} check at {column}"
    if column == "full":
        c_row, s_row = candidate.full_row(), serving.full_row()
        column = str(candidate.full_dim)
    else:
        c_row, s_row = candidate.row(column), serving.row(column)
    c = _value(candidate, c_row, METRIC, what)
    s = _value(serving, s_row, METRIC, what)
    test = _paired(c_row, s_row, rule)
    passed = c - s >= threshold - _EPS
    if check == GAIN:  # a gain must be real, not the luck of which queries were held out
        passed = passed and test is not None and test.p_better < rule.significance
    return GateComparison(check, column, METRIC, c, s, threshold, passed, test)


def _paired(
    candidate: RunRow | None, serving: RunRow | None, rule: GateSettings
) -> PairedTest | None:
    """The paired test of two rows over the queries both have values for (None if none)."""
    if candidate is None or serving is None:
        return None
    mine, theirs = candidate.query_values(METRIC), serving.query_values(METRIC)
    shared = [q for q in theirs if q in mine]
    if not shared:
        return None
    return paired_test(
        [theirs[q] for q in shared], [mine[q] for q in shared], resamples=rule.resamples
    )


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
        rule: Thresholds (defaults: gain 0.005 at p < 0.05 over >= 30 queries, regression
            0.01, guard 0.01).
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
    comparisons = [_compare(GAIN, "full", candidate, serving, rule.min_gain, rule)]
    gain_row = serving_row
    if candidate.row(gain_row) is None or serving.row(gain_row) is None:
        gain_row = TWO_STAGE
    if has_two_stage or gain_row != TWO_STAGE:
        comparisons.append(_compare(GAIN, gain_row, candidate, serving, rule.min_gain, rule))
    shared = [
        r.name
        for r in candidate.rows
        if r.kind in (EXACT, TWO_STAGE, SINGLE_STAGE, SPARSE, HYBRID)
        and serving.row(r.name) is not None
    ]
    for column in shared:
        comparisons.append(
            _compare(REGRESSION, column, candidate, serving, -rule.max_regression, rule)
        )
    if candidate_guard is not None and serving_guard is not None:
        _check_comparable(candidate_guard, serving_guard, "guard")
        tolerance = -rule.guard_tolerance
        comparisons.append(_compare(GUARD, "full", candidate_guard, serving_guard, tolerance, rule))
        if candidate_guard.row(TWO_STAGE) is not None and serving_guard.row(TWO_STAGE) is not None:
            comparisons.append(
                _compare(GUARD, TWO_STAGE, candidate_guard, serving_guard, tolerance, rule)
            )
    queries = int(candidate.sizes.get("queries", 0))
    too_few = queries < rule.min_queries
    promote = not too_few and all(c.passed for c in comparisons)
    return GateDecision(
        promote, _reason(comparisons, rule, queries), comparisons, queries, rule.significance
    )


def _reason(comparisons: list[GateComparison], rule: GateSettings, queries: int) -> str:
    """One readable line: why it promotes, or every reason it does not."""
    parts = []
    if queries < rule.min_queries:
        parts.append(
            f"only {queries} held-out queries (needs >= {rule.min_queries} to tell a gain from "
            "noise): give --eval-set FILE with more judged queries, add --synthetic N, or log "
            "more feedback"
        )
    for c in comparisons:
        if c.passed:
            continue
        if c.check == GAIN:
            parts.append(_gain_failure(c, rule))
        elif c.check == REGRESSION:
            parts.append(
                f"{METRIC} at {c.column} regressed by {-c.delta:.4f} > {rule.max_regression:.4f}"
            )
        else:
            parts.append(
                f"guard set {METRIC} at {c.column} dropped by {-c.delta:.4f} "
                f"> {rule.guard_tolerance:.4f}"
            )
    if parts:
        return "reject: " + "; ".join(parts)
    gains = "; ".join(
        f"{c.column} {c.test.describe() if c.test else f'{c.delta:+.4f}'}"
        for c in comparisons
        if c.check == GAIN
    )
    worst = min((c.delta for c in comparisons if c.check == REGRESSION), default=0.0)
    text = (
        f"promote: {METRIC} gain {gains} (>= +{rule.min_gain:.4f} at p < {rule.significance:g}); "
        f"no column regressed more than {rule.max_regression:.4f} (worst {worst:+.4f})"
    )
    if any(c.check == GUARD for c in comparisons):
        text += f"; guard set within {rule.guard_tolerance:.4f}"
    return text


def _gain_failure(c: GateComparison, rule: GateSettings) -> str:
    if c.test is None:
        return (
            f"{METRIC} gain at {c.column} cannot be tested: the reports have no per-query "
            "values (evaluate both models again)"
        )
    stats = c.test.describe()
    if c.delta < c.threshold - _EPS:
        return f"{METRIC} gain at {c.column} is {stats}, below +{rule.min_gain:.4f}"
    return (
        f"{METRIC} gain at {c.column} is {stats}: not significant "
        f"(p >= {rule.significance:g}; it may be noise)"
    )
