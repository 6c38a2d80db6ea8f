"""Which search profile (mode and fusion) a model version is served with, chosen on evidence.

A held-out evaluation measures every mode (two-stage dense, sparse, hybrid with the default
fusion, hybrid with the fusion that scored best on the same queries). The default profile
(hybrid with the settings' fusion where the collection has lexical vectors, else dense) stays
unless another one beats it with a significant paired gain on enough queries: the best of a
dozen fusions on 85 queries is partly luck, and a profile chosen on luck serves worse on the
next queries. The choice records every mode's score and the test that justified it.
"""

from __future__ import annotations

from typing import Any

from ragctl.core.search import SearchMode
from ragctl.core.settings import GateSettings
from ragctl.evalkit.results import HYBRID, HYBRID_DEFAULT, SPARSE, TWO_STAGE, EvalReport, RunRow
from ragctl.evalkit.significance import PairedTest, paired_test

METRIC = "ndcg@10"

# Report row -> the profile it stands for (mode, whether its fusion is the tuned one).
_ROWS: dict[str, tuple[SearchMode, bool]] = {
    TWO_STAGE: (SearchMode.DENSE, False),
    HYBRID_DEFAULT: (SearchMode.HYBRID, False),
    HYBRID: (SearchMode.HYBRID, True),
    SPARSE: (SearchMode.SPARSE, False),
}


def choose_profile(
    report: EvalReport, default_mode: SearchMode, gate: GateSettings, source: str
) -> dict[str, Any] | None:
    """The profile to serve with after `report`, as recorded in the registry (`search`).

    Args:
        report: A held-out evaluation with pipeline rows and per-query values.
        default_mode: The mode served without evidence (settings; hybrid or dense).
        gate: `min_queries`, `significance` and `resamples` of the paired test.
        source: Where the queries came from (recorded).

    Returns None when the report has no pipeline rows.
    """
    rows = {name: row for name in _ROWS if (row := report.row(name)) is not None}
    rows = {name: row for name, row in rows.items() if METRIC in row.metrics}
    if not rows:
        return None
    baseline_name = _baseline_row(rows, default_mode)
    baseline = rows[baseline_name]
    chosen, test = baseline_name, None
    queries = int(report.sizes.get("queries", 0))
    if queries >= gate.min_queries:
        for name, row in sorted(rows.items(), key=lambda item: -item[1].metrics[METRIC]):
            if name == baseline_name or row.metrics[METRIC] <= baseline.metrics[METRIC]:
                continue
            result = _test(baseline, row, gate)
            if result is not None and result.p_better < gate.significance:
                chosen, test = name, result
                break
    mode, tuned = _ROWS[chosen]
    # A dense or sparse profile keeps the untuned fusion for requests that ask for hybrid.
    hybrid = rows.get(chosen) if mode is SearchMode.HYBRID else _default_hybrid(rows)
    return {
        "mode": mode.value,
        "fusion": hybrid.params.get("fusion") if hybrid is not None else None,
        "fusion_tuned": tuned,
        "ndcg@10": {name: round(row.metrics[METRIC], 4) for name, row in rows.items()},
        "default": baseline_name,
        "chosen": chosen,
        "test": None if test is None else test.to_dict(),
        "measured_on": source,
        "queries": queries,
    }


def _baseline_row(rows: dict[str, RunRow], default_mode: SearchMode) -> str:
    if default_mode is SearchMode.HYBRID:
        for name in (HYBRID_DEFAULT, HYBRID):  # one fusion tried: `hybrid` is the default
            if name in rows:
                return name
    if default_mode is SearchMode.SPARSE and SPARSE in rows:
        return SPARSE
    return TWO_STAGE if TWO_STAGE in rows else next(iter(rows))


def _default_hybrid(rows: dict[str, RunRow]) -> RunRow | None:
    return rows.get(HYBRID_DEFAULT) or rows.get(HYBRID)


def _test(baseline: RunRow, row: RunRow, gate: GateSettings) -> PairedTest | None:
    base, other = baseline.query_values(METRIC), row.query_values(METRIC)
    shared = [q for q in base if q in other]
    if not shared:
        return None
    return paired_test(
        [base[q] for q in shared], [other[q] for q in shared], resamples=gate.resamples
    )
