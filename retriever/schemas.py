"""Request and response bodies of the HTTP API (pydantic), with their limits.

Limits that come from settings (query length, documents per request, document size) are
checked by the service and answered with the same 422 `validation_error` body, as are the
rules on a search's parameters, checked once when the service builds its `SearchParams`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, field_validator

from ragctl.core.limits import MAX_DOC_ID_CHARS, check_metadata_value
from ragctl.core.profile import SearchProfile
from ragctl.core.search import (
    MAX_K,
    MAX_SHORTLIST,
    SearchMode,
    SearchParams,
    valid_text,
)
from ragctl.core.settings import SearchSettings


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty or only whitespace")
    return text


Text = Annotated[str, AfterValidator(valid_text)]
NonBlankText = Annotated[
    str, Field(min_length=1), AfterValidator(_not_blank), AfterValidator(valid_text)
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SearchRequest(_Request):
    """`POST /v1/search`: a query and what the caller sets of its `SearchParams`.

    What is left out comes from settings (`search.k`, `search.shortlist`) and the serving
    collection's profile (mode, fusion); `params` fills it in, and checks the whole.
    """

    query: NonBlankText = Field(
        description="What to search for; non-empty, at most `retriever.max_query_chars` "
        "characters (default 2,000)."
    )
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
        "`metadata.FIELD`, each a value or a list of values (any matches).",
        examples=[{"doc_id": "handbook.md"}, {"metadata.lang": ["en", "de"]}],
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


class HealthResponse(BaseModel):
    """The process is up."""

    status: Literal["ok"] = "ok"


class ReadyResponse(BaseModel):
    """The service can answer searches."""

    status: Literal["ready"] = "ready"
    collection: str
    model: str
    model_version: int
    detail: str


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
    """What `POST /v1/admin/reload` switched."""

    changed: bool
    previous: str
    current: str
    model_version: int


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
