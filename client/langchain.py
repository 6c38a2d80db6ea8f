"""A LangChain retriever over a ragctl server: `pip install 'ragctl[langchain]'`.

```python
from ragctl.client.langchain import RagctlRetriever

retriever = RagctlRetriever.from_url("http://127.0.0.1:8000", api_key="...", k=4)
docs = retriever.invoke("how often are the grinder burrs replaced?")   # or await .ainvoke
retriever.feedback(docs[0], "relevant")      # the app used it: one line closes the loop
```

Each `Document` is one chunk: `page_content` is its text, `id` its chunk id, and `metadata`
holds the document's own metadata plus `chunk_id`, `doc_id`, `source`, `start`, `end`,
`score`, `search_id`, `model_version` and `collection` (these win over same-named keys of
the document's metadata). `search_id` and `chunk_id` are what `feedback` sends.
"""

from __future__ import annotations

from typing import Any

from ragctl.core.errors import require_extra

require_extra("langchain_core", "langchain", "the LangChain retriever")

from langchain_core.callbacks import (  # noqa: E402
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from pydantic import ConfigDict  # noqa: E402

from ragctl.client._calls import Label, RetryPolicy  # noqa: E402
from ragctl.client._frameworks import (  # noqa: E402
    RAGCTL_METADATA_KEYS,
    SEARCH_OPTIONS,
    feedback_fields,
    hit_metadata,
)
from ragctl.client.aio import AsyncClient  # noqa: E402
from ragctl.client.sync import Client  # noqa: E402
from ragctl.core.api import FeedbackResponse, SearchResponse  # noqa: E402

RAGCTL_KEYS = RAGCTL_METADATA_KEYS
"""The metadata keys ragctl sets on every document it returns."""


def to_documents(answer: SearchResponse) -> list[Document]:
    """One LangChain `Document` per result, best first."""
    return [
        Document(id=hit.chunk_id, page_content=hit.text, metadata=hit_metadata(answer, hit))
        for hit in answer.results
    ]


class RagctlRetriever(BaseRetriever):
    """Retrieves chunks from a ragctl retriever (sync and async), and sends feedback on them.

    Attributes:
        client: The blocking client (`ragctl.client.Client`).
        async_client: The asyncio client for `ainvoke`; None: LangChain runs the sync call
            in an executor.
        k: Results per query (None: the server's `search.k`).
        collection: The collection searched (None: the client's, else the server's default).
        filter: A payload filter for every query (values, ranges, `must_not`).
        mode: dense, sparse or hybrid (None: the collection's profile).
        score_threshold: Leave out results scoring below this.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    client: Client
    async_client: AsyncClient | None = None
    k: int | None = None
    collection: str | None = None
    filter: dict[str, Any] | None = None
    mode: str | None = None
    score_threshold: float | None = None

    @classmethod
    def from_url(
        cls,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        **search: Any,
    ) -> RagctlRetriever:
        """A retriever with a sync and an async client of the server at `base_url`; `search`
        sets `k`, `collection`, `filter`, `mode`, `score_threshold`. The key needs the write
        role for `feedback` (and read for searches when the server has read keys)."""
        options: dict[str, Any] = {"api_key": api_key, "timeout_s": timeout_s, "retry": retry}
        return cls(
            client=Client(base_url, **options),
            async_client=AsyncClient(base_url, **options),
            **search,
        )

    def _search_options(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SEARCH_OPTIONS}

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return to_documents(self.client.search(query, **self._search_options()))

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        if self.async_client is None:
            return await super()._aget_relevant_documents(query, run_manager=run_manager)
        answer = await self.async_client.search(query, **self._search_options())
        return to_documents(answer)

    def feedback(
        self, document: Document, label: Label = "relevant", *, idempotency_key: str | None = None
    ) -> FeedbackResponse:
        """Judge a document this retriever returned (`relevant` when the app used it) for
        the search that returned it; stored once even when retried."""
        return self.client.feedback(**_judged(document, label, idempotency_key))

    async def afeedback(
        self, document: Document, label: Label = "relevant", *, idempotency_key: str | None = None
    ) -> FeedbackResponse:
        """`feedback`, awaited (the async client, else the sync one in a thread)."""
        judged = _judged(document, label, idempotency_key)
        if self.async_client is None:
            import asyncio

            return await asyncio.to_thread(self.client.feedback, **judged)
        return await self.async_client.feedback(**judged)


def _judged(document: Document, label: Label, key: str | None) -> dict[str, Any]:
    return feedback_fields(document.metadata, label, key, what="document")
