"""A search's parameters: every rule checked once, when `SearchParams` is built."""

import pytest
from pydantic import ValidationError

from ragctl.core.search import (
    FilterCondition,
    FusionMethod,
    FusionParams,
    NumericRange,
    SearchMode,
    SearchParams,
    parse_filter,
)
from ragctl.core.settings import load_settings


def _error(**params) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        SearchParams(**params)
    [error] = caught.value.errors()
    return ".".join(str(p) for p in error["loc"]), error["msg"]


def test_search_params_defaults_and_coercion():
    params = SearchParams(mode="hybrid", filter={"doc_id": ["a.md", "b.md"]})
    assert (params.k, params.shortlist, params.single_stage) == (10, 100, False)
    assert params.mode is SearchMode.HYBRID and params.fusion == FusionParams()
    assert params.filter == {"doc_id": ["a.md", "b.md"]}
    assert SearchParams(filter={}).filter is None


@pytest.mark.parametrize(
    ("params", "field", "needle"),
    [
        ({"k": 0}, "k", "greater than or equal to 1"),
        ({"k": 10, "shortlist": 5}, "shortlist", "shortlist (5) must be >= k (10)"),
        ({"shortlist_dim": 0}, "shortlist_dim", "greater than or equal to 1"),
        ({"mode": "bm25"}, "mode", "'dense', 'sparse' or 'hybrid'"),
        ({"filter": {"text": "x"}}, "filter", "cannot filter on 'text': allowed keys are doc_id"),
        ({"filter": {"doc_id": 1.5}}, "filter", "strings, integers or booleans, got 1.5"),
        ({"filter": {"doc_id": []}}, "filter", "empty list of values"),
        ({"filter": {"doc_id": list(range(101))}}, "filter", "over 100 values"),
        ({"filter": {"metadata.n": 2**70}}, "filter", "outside the 64-bit range"),
        ({"filter": {"doc_id": "a\ud800"}}, "filter", "not valid Unicode text"),
        ({"filter": "doc_id=a"}, "filter", "an object of KEY: value(s)"),
        ({"filter": {"metadata.y": {"gte": "2020"}}}, "filter", "gte takes a number, got '2020'"),
        ({"filter": {"metadata.y": {"from": 1}}}, "filter", "a range takes gt, gte, lt, lte"),
        ({"filter": {"metadata.y": {}}}, "filter", "a range takes gt, gte, lt, lte (at least one)"),
        ({"filter": {"metadata.y": {"gt": 5, "lt": 3}}}, "filter", "is empty"),
        ({"filter": {"metadata.y": {"gt": 1, "gte": 2}}}, "filter", "one lower bound"),
        ({"filter": {"metadata.y": {"lt": float("nan")}}}, "filter", "not a finite 64-bit"),
        ({"filter": {"metadata.y": {"lt": True}}}, "filter", "lt takes a number, got True"),
        ({"filter": {"doc_id": {"gte": 1}}}, "filter", "ranges apply to numeric metadata"),
        ({"filter": {"must_not": {}}}, "filter", "'must_not' takes a non-empty object"),
        ({"filter": {"must_not": ["a"]}}, "filter", "'must_not' takes a non-empty object"),
        (
            {"filter": {"must_not": {"must_not": {"doc_id": "a"}}}},
            "filter",
            "cannot be nested",
        ),
        ({"filter": {"must_not": {"text": "a"}}}, "filter", "cannot filter on must_not.'text'"),
        (
            {
                "filter": {
                    **{f"metadata.f{i}": 1 for i in range(10)},
                    "must_not": {f"metadata.g{i}": 1 for i in range(7)},
                }
            },
            "filter",
            "at most 16 conditions, got 17",
        ),  # fmt: skip
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
    ],
)
def test_search_params_name_the_field_and_the_rule(params, field, needle):
    where, message = _error(**params)
    assert where == field and needle in message


def test_parse_filter_ranges_and_negation():
    parsed = parse_filter(
        {"doc_id": ["a", "b"], "metadata.year": {"gte": 2020, "lt": 2024},
         "must_not": {"metadata.lang": "de", "metadata.weight": {"gt": 0.5}}}
    )  # fmt: skip
    assert parsed.must == (
        FilterCondition("doc_id", values=("a", "b")),
        FilterCondition("metadata.year", range=NumericRange(gte=2020, lt=2024)),
    )
    assert parsed.must_not == (
        FilterCondition("metadata.lang", values=("de",)),
        FilterCondition("metadata.weight", range=NumericRange(gt=0.5)),
    )
    assert not parse_filter(None) and not parse_filter({})
    assert parse_filter({"metadata.n": {"gte": 3, "lte": 3}}).must[0].range == NumericRange(
        gte=3, lte=3
    )


def test_search_params_are_frozen():
    params = SearchParams()
    with pytest.raises(ValidationError, match="frozen"):
        params.k = 3


def test_fusion_params_rules():
    assert FusionParams(method=FusionMethod.RRF, sparse_weight=0.5).describe() == (
        "rrf k=60 dense 1 : sparse 0.5"
    )
    assert FusionParams(rescore=True).describe() == "dbsf dense 1 : sparse 2, rescored by full"
    with pytest.raises(ValidationError, match="whole numbers 0-8, got 1.5"):
        FusionParams(method="dbsf", sparse_weight=1.5)
    with pytest.raises(ValidationError, match="at least one fusion weight must be > 0"):
        FusionParams(dense_weight=0, sparse_weight=0)
    with pytest.raises(ValidationError, match="'rrf' or 'dbsf'"):
        FusionParams(method="sum")


def test_modes_print_as_their_value():
    # Metrics labels, log lines and error messages show the value, on every Python.
    assert str(SearchMode.SPARSE) == f"{SearchMode.SPARSE}" == "sparse"
    assert SearchMode.DENSE == "dense" and SearchMode("hybrid") is SearchMode.HYBRID


def test_search_settings_are_the_fusion_with_the_settings_keys(monkeypatch):
    monkeypatch.setenv("RAGCTL_SEARCH__FUSION", "rrf")
    monkeypatch.setenv("RAGCTL_SEARCH__HYBRID_CANDIDATES", "40")
    search = load_settings(search={"sparse_weight": 0.5, "mode": "sparse"}).search
    assert search.mode is SearchMode.SPARSE and search.k == 10
    fusion = FusionParams.model_validate(search.model_dump())
    assert fusion == FusionParams(method=FusionMethod.RRF, sparse_weight=0.5, candidates=40)
    assert load_settings().search.mode == "auto"
    with pytest.raises(ValidationError, match="whole numbers 0-8"):  # refused when loaded
        load_settings(search={"fusion": "dbsf", "sparse_weight": 1.5})
