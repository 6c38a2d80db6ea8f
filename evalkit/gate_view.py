"""The gate's decision for people: its reason as lines, and the numbers it compared (pure).

A registry record keeps the gate's `reason` (one string, parts joined by `; `) and both
evaluation reports as dicts. `comparison_rows` lines the two reports up column by column;
when a gate recorded its own comparisons (`gate["comparisons"]`) those are used as they are,
and when both rows carry per-query values (`per_query`: {query_id: {metric: value}}) the
paired test of `evalkit.significance` gives each gain its confidence interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Columns the gate compares (BM25 baselines do not depend on the model).
GATED_KINDS = ("exact", "two-stage", "single-stage", "sparse", "hybrid")
TEST_FIELDS = ("gain", "ci_low", "ci_high", "p_better", "wins", "losses", "ties", "n")


def reason_lines(reason: str | None) -> list[str]:
    """`"reject: a; b"` -> `["reject:", "a", "b"]`: one finding per line."""
    if not reason:
        return []
    verdict, sep, rest = reason.partition(": ")
    if not sep or verdict not in ("promote", "reject"):
        return [part.strip() for part in reason.split("; ") if part.strip()]
    return [f"{verdict}:", *(part.strip() for part in rest.split("; ") if part.strip())]


def per_query_values(row: Mapping[str, Any], metric: str) -> dict[str, float]:
    """`{query_id: value}` of one report row (empty when it has no per-query values)."""
    per_query = row.get("per_query")
    if not isinstance(per_query, Mapping):
        return {}
    values: dict[str, float] = {}
    for query_id, metrics in per_query.items():
        if isinstance(metrics, Mapping) and isinstance(metrics.get(metric), (int, float)):
            values[str(query_id)] = float(metrics[metric])
    return values


def paired(
    serving_row: Mapping[str, Any], candidate_row: Mapping[str, Any], metric: str
) -> dict[str, Any] | None:
    """The paired test of two rows' per-query values on their shared queries, or None."""
    base = per_query_values(serving_row, metric)
    cand = per_query_values(candidate_row, metric)
    shared = sorted(set(base) & set(cand))
    if not shared:
        return None
    from ragctl.evalkit.significance import paired_test

    test = paired_test([base[q] for q in shared], [cand[q] for q in shared]).to_dict()
    return {key: test[key] for key in TEST_FIELDS}


def comparison_rows(
    serving: Mapping[str, Any] | None,
    candidate: Mapping[str, Any] | None,
    *,
    gate: Mapping[str, Any] | None = None,
    metric: str = "ndcg@10",
) -> list[dict[str, Any]]:
    """One row per compared column: column, kind, metric, serving, candidate, delta, and
    `test` (gain and its confidence interval, wins/losses/ties) when per-query values exist.

    Args:
        serving: The serving model's report (a dict as `EvalReport.to_dict` writes it).
        candidate: The candidate's report on the same queries.
        gate: The recorded gate decision; its own `comparisons`, when it has them, win.
        metric: The metric compared.
    """
    recorded = (gate or {}).get("comparisons")
    if isinstance(recorded, Sequence) and recorded:
        return [_recorded(c) for c in recorded if isinstance(c, Mapping)]
    if not serving or not candidate:
        return []
    serving_rows = {str(r.get("name")): r for r in serving.get("rows", []) if isinstance(r, dict)}
    out: list[dict[str, Any]] = []
    for row in candidate.get("rows", []):
        if not isinstance(row, Mapping) or row.get("kind") not in GATED_KINDS:
            continue
        other = serving_rows.get(str(row.get("name")))
        cand_value = (row.get("metrics") or {}).get(metric)
        serv_value = (other or {}).get("metrics", {}).get(metric) if other else None
        if not isinstance(cand_value, (int, float)) or not isinstance(serv_value, (int, float)):
            continue
        out.append(
            {
                "column": str(row.get("name")),
                "kind": row.get("kind"),
                "metric": metric,
                "serving": round(float(serv_value), 6),
                "candidate": round(float(cand_value), 6),
                "delta": round(float(cand_value) - float(serv_value), 6),
                "test": paired(other or {}, row, metric),
            }
        )
    return out


def _recorded(comparison: Mapping[str, Any]) -> dict[str, Any]:
    serving = comparison.get("serving")
    candidate = comparison.get("candidate")
    delta = comparison.get("delta")
    if delta is None and isinstance(serving, (int, float)) and isinstance(candidate, (int, float)):
        delta = round(float(candidate) - float(serving), 6)
    return {**comparison, "delta": delta, "test": comparison.get("test")}
