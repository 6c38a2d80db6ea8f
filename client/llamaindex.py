"""A LlamaIndex retriever over a ragctl server: `pip install 'ragctl[llamaindex]'`.

```python
from ragctl.client.llamaindex import RagctlRetriever

retriever = RagctlRetriever.from_url("http://127.0.0.1:8000", api_key="...", k=4)
nodes = retriever.retrieve("how often are the grinder burrs replaced?")  # or await .aretrieve
retriever.feedback(nodes[0], "relevant")     # the app used it: one line closes the loop
```

Each `NodeWithScore` holds one chunk as a `TextNode` (`id_` its chunk id, `text`, character
offsets) with its score. The node's metadata holds the document's own metadata plus
`chunk_id`, `doc_id`, `source`, `start`, `end`, `score`, `search_id`, `model_version` and
`collection`; the ragctl keys other than `doc_id` and `source` are kept out of what LLMs and
embedders see.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ragctl.core.errors import require_extra

require_extra("llama_index.core", "llamaindex", "the LlamaIndex retriever")

from llama_index.core.callbacks import CallbackManager  # noqa: E402
from llama_index.core.retrievers import BaseRetriever  # noqa: E402
from llama_index.core.schema import (  # noqa: E402
    BaseNode,
    NodeWithScore,
    QueryBundle,
    TextNode,
)

from ragctl.client._calls import Label, RetryPolicy  # noqa: E402
from ragctl.client._frameworks import (  # noqa: E402
    RAGCTL_METADATA_KEYS,
    feedback_fields,
    hit_metadata,
)
from ragctl.client.aio import AsyncClient  # noqa: E402
from ragctl.client.sync import Client  # noqa: E402
from ragctl.core.api import FeedbackResponse, SearchResponse  # noqa: E402

HIDDEN_KEYS = [k for k in RAGCTL_METADATA_KEYS if k not in ("doc_id", "source")]
"""Metadata keys kept out of the text LLMs and embedders see."""


def to_nodes(answer: SearchResponse) -> list[NodeWithScore]:
    """One `NodeWithScore` per result, best first."""
    nodes = []
    for hit in answer.results:
        node = TextNode(
            id_=hit.chunk_id,
            text=hit.text,
            start_char_idx=hit.start,
            end_char_idx=hit.end,
            metadata=hit_metadata(answer, hit),
            excluded_llm_metadata_keys=list(HIDDEN_KEYS),
            excluded_embed_metadata_keys=list(HIDDEN_KEYS),
        )
        nodes.append(NodeWithScore(node=node, score=hit.score))
    return nodes


class RagctlRetriever(BaseRetriever):
    """Retrieves chunks from a ragctl retriever (sync and async), and sends feedback on them.

    Args:
        client: The blocking client (`ragctl.client.Client`).
        async_client: The asyncio client for `aretrieve`; None: the sync client runs in a
            thread.
        k: Results per query (None: the server's `search.k`).
        collection: The collection searched (None: the client's, else the server's default).
        filter: A payload filter for every query (values, ranges, `must_not`).
        mode: dense, sparse or hybrid (None: the collection's profile).
        score_threshold: Leave out results scoring below this.
        callback_manager: LlamaIndex's callbacks.
    """

    def __init__(
        self,
        client: Client,
        *,
        async_client: AsyncClient | None = None,
        k: int | None = None,
        collection: str | None = None,
        filter: dict[str, Any] | None = None,
        mode: str | None = None,
        score_threshold: float | None = None,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        super().__init__(callback_manager=callback_manager)
        self.client = client
        self.async_client = async_client
        self.search_options: dict[str, Any] = {
            "k": k,
            "collection": collection,
            "filter": filter,
            "mode": mode,
            "score_threshold": score_threshold,
        }

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
            Client(base_url, **options), async_client=AsyncClient(base_url, **options), **search
        )

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return to_nodes(self.client.search(query_bundle.query_str, **self.search_options))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if self.async_client is None:
            return await super()._aretrieve(query_bundle)
        answer = await self.async_client.search(query_bundle.query_str, **self.search_options)
        return to_nodes(answer)

    def feedback(
        self,
        node: NodeWithScore | BaseNode,
        label: Label = "relevant",
        *,
        idempotency_key: str | None = None,
    ) -> FeedbackResponse:
        """Judge a node this retriever returned (`relevant` when the app used it) for the
        search that returned it; stored once even when retried."""
        return self.client.feedback(**_judged(node, label, idempotency_key))

    async def afeedback(
        self,
        node: NodeWithScore | BaseNode,
        label: Label = "relevant",
        *,
        idempotency_key: str | None = None,
    ) -> FeedbackResponse:
        """`feedback`, awaited (the async client, else the sync one in a thread)."""
        judged = _judged(node, label, idempotency_key)
        if self.async_client is None:
            import asyncio

            return await asyncio.to_thread(self.client.feedback, **judged)
        return await self.async_client.feedback(**judged)


def _judged(node: NodeWithScore | BaseNode, label: Label, key: str | None) -> dict[str, Any]:
    metadata: Mapping[str, Any] = (node.node if isinstance(node, NodeWithScore) else node).metadata
    return feedback_fields(metadata, label, key, what="node")
