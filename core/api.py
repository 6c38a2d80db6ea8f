"""The HTTP API's request and response bodies: one definition for the server and the client.

The retriever (`ragctl.retriever`) validates requests and answers with these models, and the
public client (`ragctl.client`) sends and parses the very same classes, so the two cannot
drift apart. Pure pydantic: importing this module loads neither fastapi nor torch (nor numpy).

Limits that come from settings (query length, documents per request, document size) are
checked by the service and answered with the same 422 `validation_error` body, as are the
rules on a search's parameters, checked once when the service builds its `SearchParams`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    field_validator,
)

from ragctl.core.limits import COLLECTION_NAME_PATTERN, MAX_DOC_ID_CHARS, check_metadata_value
from ragctl.core.search import MAX_K, MAX_SHORTLIST, SearchMode, SearchParams, valid_text

if TYPE_CHECKING:
    from ragctl.core.profile import SearchProfile
    from ragctl.core.settings import SearchSettings

MAX_BATCH_QUERIES = 100
"""The most queries one `POST /v1/search/batch` may carry."""
MAX_DOCUMENTS_PAGE = 500
"""The largest page of `GET /v1/documents`."""
EMBEDDINGS_MODEL = "ragctl"
"""`model` of `POST /v1/embeddings` that means the default collection's serving model."""


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty or only whitespace")
    return text


Text = Annotated[str, AfterValidator(valid_text)]
NonBlankText = Annotated[
    str, Field(min_length=1), AfterValidator(_not_blank), AfterValidator(valid_text)
]
CollectionName = Annotated[str, Field(pattern=COLLECTION_NAME_PATTERN)]
"""A collection (alias) name, e.g. `docs`; its physical collections are `docs__vN`."""

_COLLECTION_FIELD = Field(
    default=None,
    description="The collection to use (its alias name, e.g. `docs`); default: the server's "
    "configured `collection`.",
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# --- search ---------------------------------------------------------------------------------
class SearchOptions(_Request):
    """What a search may set of its `SearchParams`, and the collection to search.

    What is left out comes from settings (`search.k`, `search.shortlist`) and the searched
    collection's profile (mode, fusion); `params` fills it in, and checks the whole.
    """

    collection: CollectionName | None = _COLLECTION_FIELD
    k: int | None = Field(
        default=None, ge=1, le=MAX_K, description="Results to return, 1-100 (default 10)."
    )
    shortlist: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SHORTLIST,
        description="Candidates taken on the Matryoshka shortlist vector, k-1000 "
        "(default 100, raised to k).",
    )
    filter: dict[str, Any] | None = Field(
        default=None,
        max_length=16,
        description="Payload filter, all keys must match: `doc_id`, `source`, `chunk_id` or "
        "`metadata.FIELD`, each a value or a list of values (any matches), or for numbers a "
        'range `{"gte": 1, "lt": 5}` (gt, gte, lt, lte); `must_not`: an object of such '
        "conditions none of which may match.",
        examples=[
            {"doc_id": "handbook.md"},
            {"metadata.lang": ["en", "de"]},
            {"metadata.year": {"gte": 2020}, "must_not": {"metadata.draft": True}},
        ],
    )
    single_stage: bool = Field(
        default=False, description="Search the full vector only (no shortlist), for comparison."
    )
    mode: Annotated[SearchMode | None, Strict(False)] = Field(
        default=None,
        description="dense (Matryoshka two-stage), sparse (BM25 on the lexical vectors) or "
        "hybrid (both, fused in one query); default: the collection's profile "
        "(`search.mode`, or what retune measured best).",
    )
    score_threshold: float | None = Field(
        default=None,
        allow_inf_nan=False,
        description="Leave out results scoring below this (the mode's own score: cosine for "
        "dense, BM25 for sparse, the fused score for hybrid); fewer than k may come back.",
    )

    def params(self, defaults: SearchSettings, profile: SearchProfile) -> SearchParams:
        """The search asked for, the rest from `defaults` and `profile`; an omitted shortlist
        is raised to k.

        Raises:
            pydantic.ValidationError: The parameters break a rule (shortlist < k, a filter).
        """
        k = defaults.k if self.k is None else self.k
        return SearchParams(
            k=k,
            shortlist=max(defaults.shortlist, k) if self.shortlist is None else self.shortlist,
            single_stage=self.single_stage,
            filter=self.filter,
            mode=profile.mode if self.mode is None else self.mode,
            fusion=profile.fusion,
            score_threshold=self.score_threshold,
        )


class SearchRequest(SearchOptions):
    """`POST /v1/search`: a query and what the caller sets of its `SearchParams`."""

    query: NonBlankText = Field(
        description="What to search for; non-empty, at most `retriever.max_query_chars` "
        "characters (default 2,000)."
    )


class BatchSearchRequest(SearchOptions):
    """`POST /v1/search/batch`: many queries with the same parameters, encoded in one batch."""

    queries: list[NonBlankText] = Field(
        min_length=1,
        max_length=MAX_BATCH_QUERIES,
        description=f"1-{MAX_BATCH_QUERIES} queries, each like `query` of `POST /v1/search`.",
    )


class SearchResult(BaseModel):
    """One chunk found."""

    chunk_id: str
    doc_id: str
    score: float
    text: str
    source: str
    start: int = Field(description="Character offset of the chunk in its document.")
    end: int
    metadata: dict[str, Any]


class SearchResponse(BaseModel):
    """The results of one search, and which collection and model version produced them."""

    search_id: str = Field(description="Give it back with `POST /v1/feedback`.")
    model_version: int = Field(description="Version N of the collection NAME__vN searched.")
    collection: str = Field(description="The physical collection searched (NAME__vN).")
    mode: SearchMode = Field(description="The search mode used: dense, sparse or hybrid.")
    took_ms: float
    results: list[SearchResult]


class BatchSearchItem(BaseModel):
    """The results of one query of a batch."""

    search_id: str = Field(description="This query's search, for `POST /v1/feedback`.")
    query: str
    results: list[SearchResult]


class BatchSearchResponse(BaseModel):
    """One answer per query, in the order sent; all searched with one model version."""

    model_version: int
    collection: str = Field(description="The physical collection searched (NAME__vN).")
    mode: SearchMode
    took_ms: float
    searches: list[BatchSearchItem]


# --- feedback -------------------------------------------------------------------------------
class FeedbackRequest(_Request):
    """`POST /v1/feedback`: which chunk answered (or did not answer) which query."""

    search_id: Annotated[Text, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="The `search_id` of the search judged (preferred)."
    )
    query: NonBlankText | None = Field(
        default=None, description="The query, when there is no search_id."
    )
    chunk_id: Annotated[Text, Field(min_length=1, max_length=2048)]
    label: Literal["relevant", "not_relevant"]
    idempotency_key: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[!-~]+$")] | (
        None
    ) = Field(
        default=None,
        description="Any unique string per judgement (or the `Idempotency-Key` header): a "
        "retry with the same key is stored once and answered with the stored record.",
    )
    collection: CollectionName | None = Field(
        default=None,
        description="With search_id: the collection of that search (given, it must match); "
        "without: the collection the chunk is in (default: the configured `collection`).",
    )


class FeedbackResponse(BaseModel):
    """The stored judgement, with the snapshot taken."""

    feedback_id: int
    search_id: str | None
    query: str
    chunk_id: str
    doc_id: str
    label: str
    model_version: int
    collection: str
    rank: int | None = Field(
        description="1-based position of the chunk in the search's results; null when it was "
        "not returned (or no search_id was given)."
    )
    created_at: str
    free_text: bool = Field(
        default=False,
        description="True without a search_id: the query is the client's own; `ragctl retune` "
        "leaves such judgements out unless given --include-free-text.",
    )


# --- documents ------------------------------------------------------------------------------
class DocumentIn(_Request):
    """One document to upsert."""

    id: Annotated[Text, Field(min_length=1, max_length=MAX_DOC_ID_CHARS)] = Field(
        description="Stable document id; posting the same id again replaces its chunks."
    )
    text: NonBlankText = Field(
        description="Full text; at most `retriever.max_document_chars` characters."
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Kept with every chunk; filter on `metadata.FIELD`."
    )
    source: Annotated[Text, Field(max_length=1024)] | None = Field(
        default=None, description="Where the document came from (default: `api`)."
    )

    @field_validator("metadata")
    @classmethod
    def _metadata_is_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        checked: dict[str, Any] = check_metadata_value(value)
        return checked


class DocumentsRequest(_Request):
    """`POST /v1/documents`: one or many documents."""

    documents: list[DocumentIn] = Field(
        min_length=1,
        description="At most `retriever.max_documents_per_request` (default 256).",
    )
    collection: CollectionName | None = _COLLECTION_FIELD


class DocumentsResponse(BaseModel):
    """What an upsert wrote."""

    collection: str
    model_version: int
    documents: int
    unchanged: int = Field(description="Documents whose chunks were all stored already.")
    chunks_written: int
    chunks_deleted: int
    took_ms: float


class DeleteResponse(BaseModel):
    """What a delete removed."""

    collection: str
    doc_id: str
    chunks_deleted: int


class DocumentSummary(BaseModel):
    """One document of a listing."""

    doc_id: str
    source: str
    chunks: int = Field(description="How many chunks the document has.")
    metadata: dict[str, Any]


class DocumentsPage(BaseModel):
    """`GET /v1/documents`: one page of documents, sorted by doc_id."""

    collection: str = Field(description="The physical collection listed (NAME__vN).")
    documents: list[DocumentSummary]
    offset: int
    limit: int
    next_offset: int | None = Field(description="The offset of the next page; null at the end.")
    total: int = Field(description="Documents matching the prefix and filter.")


class DocumentChunk(BaseModel):
    """One chunk of a document."""

    chunk_id: str
    index: int
    text: str
    start: int
    end: int


class DocumentDetail(BaseModel):
    """`GET /v1/documents/{doc_id}`: a document and its chunks, by index."""

    collection: str = Field(description="The physical collection read (NAME__vN).")
    doc_id: str
    source: str
    metadata: dict[str, Any]
    chunks: list[DocumentChunk]


# --- collections and operations -------------------------------------------------------------
class CollectionSummary(BaseModel):
    """A collection a client can name: its alias and what serves it."""

    name: str = Field(description="The name requests use (the alias).")
    physical: str = Field(description="The physical collection it points at (NAME__vN).")
    model: str
    model_version: int
    points: int
    default: bool = Field(description="Requests without `collection` use this one.")
    loaded: bool = Field(description="This server has loaded its model (it served a request).")


class CollectionList(BaseModel):
    """`GET /v1/collections`: every collection of the store."""

    default: str
    collections: list[CollectionSummary]


class CreateCollectionRequest(_Request):
    """`POST /v1/admin/collections`: a new, empty collection embedded by `model.name_or_path`."""

    name: CollectionName


class HealthResponse(BaseModel):
    """The process is up."""

    status: Literal["ok"] = "ok"


class ReadyCollection(BaseModel):
    """One loaded collection and whether it can be searched."""

    name: str
    physical: str
    model: str
    model_version: int
    ready: bool
    detail: str


class ReadyResponse(BaseModel):
    """The service can answer searches (of the default collection; the others are listed)."""

    status: Literal["ready"] = "ready"
    collection: str = Field(description="The default collection's physical collection.")
    model: str
    model_version: int
    detail: str
    collections: list[ReadyCollection] = Field(
        default_factory=list, description="Every collection this server has loaded."
    )


class CollectionOut(BaseModel):
    """A physical collection in the store."""

    physical: str
    name: str
    version: int
    model: str
    dim: int
    shortlist_dims: list[int]
    points: int
    aliases: list[str]
    serving: bool
    created_at: str


class CollectionsResponse(BaseModel):
    """Every physical collection."""

    collections: list[CollectionOut]


class ReloadResponse(BaseModel):
    """What an admin reload, activation or rollback switched."""

    changed: bool
    previous: str
    current: str
    model_version: int


# --- embeddings (OpenAI-compatible) ---------------------------------------------------------
class EmbeddingsRequest(_Request):
    """`POST /v1/embeddings`, as OpenAI's API takes it."""

    input: str | list[str] = Field(
        description="A text or a list of texts (token ids are not accepted)."
    )
    model: str = Field(
        default=EMBEDDINGS_MODEL,
        description=f"A collection name (its serving model embeds), or `{EMBEDDINGS_MODEL}` "
        "for the default collection.",
    )
    encoding_format: Literal["float", "base64"] = Field(
        default="float", description="base64: little-endian float32 bytes, as OpenAI sends."
    )
    dimensions: int | None = Field(
        default=None,
        ge=1,
        description="Keep the first N dimensions, renormalized (Matryoshka); at most the "
        "model's dimension.",
    )
    user: str | None = Field(default=None, description="Accepted for compatibility; unused.")
    input_type: Literal["query", "document"] = Field(
        default="document",
        description="Which of the model's prompts to apply (they differ for models with "
        "query/document prompts).",
    )

    @field_validator("input", mode="before")
    @classmethod
    def _texts_only(cls, value: Any) -> Any:
        if isinstance(value, list) and any(not isinstance(v, str) for v in value):
            raise ValueError("send text: a string or a list of strings (token ids are not taken)")
        if isinstance(value, list) and not value:
            raise ValueError("give at least one text")
        return value

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        for text in [value] if isinstance(value, str) else value:
            _not_blank(text)
            valid_text(text)
        return value

    def texts(self) -> list[str]:
        """The input as a list."""
        return [self.input] if isinstance(self.input, str) else list(self.input)


class Embedding(BaseModel):
    """One input's vector."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of float32 bytes.")


class EmbeddingsUsage(BaseModel):
    """Tokens read (the model's own tokenizer, special tokens included)."""

    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    """The vectors, with the model and version that made them."""

    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str = Field(description="The model ref that embedded (`default`, `models/v2`, ...).")
    usage: EmbeddingsUsage
    collection: str = Field(description="The physical collection whose model this is.")
    model_version: int = Field(description="That model's version (N of NAME__vN).")
    dimensions: int


# --- the console's reads: registry, feedback stats, reports, retune status, access ----------


class ModelOut(BaseModel):
    """One model version of the registry (without its eval reports; see `ModelDetail`)."""

    version: int
    ref: str = Field(description="`default`, a Hub id, a path, or `models/vN` (data dir).")
    parent: int | None
    status: str = Field(description="serving, candidate, rejected or retired (derived).")
    created_at: str
    base_model: str
    served_at: str | None = None
    gate: dict[str, Any] | None = Field(
        description="The promotion gate's decision: `promote`, `reason` (and `comparisons` "
        "when the gate recorded them)."
    )
    search: dict[str, Any] | None = Field(
        description="The search mode (and fusion) measured best for this version."
    )
    training: dict[str, Any] | None


class ServingProfileOut(BaseModel):
    """How the serving collection is searched by default."""

    physical: str
    model_version: int
    mode: str
    fusion: dict[str, Any]
    source: str = Field(description="tuned (retune measured it), settings or default.")


class ModelsResponse(BaseModel):
    """`GET /v1/models`: the registry as one collection sees it."""

    collection: str
    serving: int | None = Field(description="The version serving this collection.")
    history: list[int] = Field(
        description="Versions that served it, oldest first (rollback goes back through them)."
    )
    profile: ServingProfileOut | None = None
    models: list[ModelOut]


class GateLine(BaseModel):
    """One column the gate (or this view) compared: serving vs candidate (a gate's own
    comparisons keep their other fields: check, threshold, passed)."""

    model_config = {"extra": "allow"}

    column: str
    kind: str | None = None
    metric: str
    serving: float | None
    candidate: float | None
    delta: float | None
    test: dict[str, Any] | None = Field(
        default=None,
        description="Paired test on per-query values when the reports have them: gain, "
        "ci_low, ci_high (95% bootstrap), p_better, wins, losses, ties, n.",
    )


class ModelDetail(ModelOut):
    """`GET /v1/models/{version}`: one version with its eval reports and the gate's numbers."""

    evaluation: dict[str, Any] | None = Field(
        description="Eval reports stored at retune time: `serving` and `candidate` on the "
        "held-out queries (and `guard_*` on the guard set)."
    )
    gate_reason_lines: list[str] = Field(description="The gate's reason, one finding a line.")
    comparisons: list[GateLine] = Field(
        description="ndcg@10 of serving and candidate per compared column."
    )


class DayCount(BaseModel):
    """Judgements of one UTC day."""

    model_config = {"extra": "allow"}

    day: str
    relevant: int = 0
    not_relevant: int = 0


class FeedbackStatsResponse(BaseModel):
    """`GET /v1/feedback/stats`."""

    collection: str
    days: int
    total: int = Field(description="Judgements ever recorded for this collection.")
    by_label: dict[str, int]
    by_day: list[DayCount] = Field(description="The last `days` days, oldest first, zeros kept.")
    searches: int = Field(description="Searches logged in the last `days` days.")
    recent: list[dict[str, Any]] = Field(description="The 20 newest judgements, newest first.")


class ReportSummary(BaseModel):
    """One eval report the console can show."""

    id: str = Field(description="`registry/vN/ROLE` or `files/FOLDER`.")
    source: str
    title: str
    version: int | None
    role: str | None
    baseline: str | None = Field(description="The report a candidate's was compared with.")
    path: str | None
    model: str | None
    dataset: str | None
    split: str | None
    created_at: str | None
    queries: int | None
    rows: list[str | None]
    per_query: bool = Field(description="Its rows carry per-query values.")


class ReportsResponse(BaseModel):
    """`GET /v1/reports`."""

    folder: str = Field(description="The folder searched for report.json files.")
    reports: list[ReportSummary]


class ReportDetail(ReportSummary):
    """`GET /v1/reports/{id}`: the summary and the whole report."""

    report: dict[str, Any]


class RetuneStatusResponse(BaseModel):
    """`GET /v1/retune/status`."""

    collection: str
    status: dict[str, Any] | None = Field(
        description="The latest retune run (state running, finished, failed or interrupted; "
        "step, steps, result, error), or null when none ran."
    )


class AccessResponse(BaseModel):
    """`GET /v1/access`: what the key sent (or no key) may do here."""

    role: str | None = Field(description="The key's role, or null without a (known) key.")
    read: bool
    write: bool
    admin: bool


# --- errors ---------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    """One problem with the request."""

    field: str | None
    message: str
    type: str


class ErrorInfo(BaseModel):
    """What went wrong: a stable `code`, a message for people, and the field at fault."""

    code: str
    message: str
    field: str | None = None
    details: list[ErrorDetail] | None = None


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer has this body."""

    error: ErrorInfo
