"""The LangChain and LlamaIndex retrievers against a real `ragctl` server (real model, real
collection): a retrieval through each framework's own API (sync and async), feedback through
the adapter found in the server's feedback log, and the examples/ apps run as scripts."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragctl.client import Client
from ragctl.retriever.feedback_log import open_feedback_log

ROOT = Path(__file__).resolve().parents[1]
QUERY = "How often are the grinder burrs replaced?"
TOP = "examples/corpus/bar/grinder-maintenance.md"


def _logged(live_server, search_id, chunk_id):
    """The judgements of (search, chunk) in the server's log, read as `ragctl feedback
    export` reads it (its own connection to the file the server writes)."""
    with open_feedback_log(live_server.settings, create=False) as log:
        return [
            (row["label"], row["rank"], row["free_text"])
            for row in log.iter_feedback()
            if row["search_id"] == search_id and row["chunk_id"] == chunk_id
        ]


def _offsets(live_server, chunk_id):
    """(start, end) of a chunk of the top document, as the server stores them."""
    with Client(live_server.url, api_key=live_server.read_key) as client:
        chunks = client.get_document(TOP).chunks
    return next((c.start, c.end) for c in chunks if c.chunk_id == chunk_id)


def test_langchain_retriever_retrieves_and_sends_feedback(live_server):
    pytest.importorskip("langchain_core")
    from langchain_core.documents import Document
    from langchain_core.runnables import RunnableLambda

    from ragctl.client.langchain import RagctlRetriever

    retriever = RagctlRetriever.from_url(live_server.url, api_key=live_server.write_key, k=3)
    documents = retriever.invoke(QUERY)  # LangChain's Runnable API
    assert len(documents) == 3 and all(isinstance(d, Document) for d in documents)
    top = documents[0]
    assert top.metadata["doc_id"] == TOP and top.id == top.metadata["chunk_id"]
    assert top.metadata["collection"] == "docs__v1" and top.metadata["model_version"] == 1
    assert top.metadata["score"] >= documents[1].metadata["score"]
    assert "800 kg" in top.page_content and top.metadata["source"] == TOP
    assert (top.metadata["start"], top.metadata["end"]) == _offsets(live_server, top.id)

    chain = retriever | RunnableLambda(lambda docs: [d.metadata["doc_id"] for d in docs])
    assert chain.invoke(QUERY)[0] == TOP
    again = asyncio.run(retriever.ainvoke(QUERY))
    assert [d.id for d in again] == [d.id for d in documents]

    stored = retriever.feedback(top, "relevant")
    assert (stored.chunk_id, stored.search_id, stored.rank) == (
        top.id,
        top.metadata["search_id"],
        1,
    )
    assert _logged(live_server, top.metadata["search_id"], top.id) == [("relevant", 1, False)]
    other = again[2]
    asyncio.run(retriever.afeedback(other, "not_relevant"))
    assert _logged(live_server, other.metadata["search_id"], other.id) == [
        ("not_relevant", 3, False)
    ]
    with pytest.raises(ValueError, match="feedback needs a document this retriever returned"):
        retriever.feedback(Document(page_content="not from ragctl"))


def test_llamaindex_retriever_retrieves_and_sends_feedback(live_server):
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle, TextNode

    from ragctl.client.llamaindex import RagctlRetriever

    retriever = RagctlRetriever.from_url(live_server.url, api_key=live_server.write_key, k=3)
    nodes = retriever.retrieve(QUERY)  # LlamaIndex's retriever API
    assert len(nodes) == 3 and all(isinstance(n, NodeWithScore) for n in nodes)
    top = nodes[0]
    assert isinstance(top.node, TextNode) and top.node.metadata["doc_id"] == TOP
    assert top.node.node_id == top.node.metadata["chunk_id"] and top.score >= nodes[1].score
    assert "800 kg" in top.node.text
    offsets = (top.node.start_char_idx, top.node.end_char_idx)
    assert offsets == _offsets(live_server, top.node.node_id)
    shown = top.node.get_content(metadata_mode=MetadataMode.LLM)
    assert TOP in shown and top.node.metadata["search_id"] not in shown
    again = asyncio.run(retriever.aretrieve(QueryBundle(QUERY)))
    assert [n.node.node_id for n in again] == [n.node.node_id for n in nodes]

    search_id = top.node.metadata["search_id"]
    stored = retriever.feedback(top, "relevant")
    assert (stored.chunk_id, stored.search_id) == (top.node.node_id, search_id)
    assert _logged(live_server, search_id, top.node.node_id) == [("relevant", 1, False)]
    other = again[1]
    asyncio.run(retriever.afeedback(other.node, "not_relevant"))
    assert _logged(live_server, other.node.metadata["search_id"], other.node.node_id) == [
        ("not_relevant", 2, False)
    ]
    with pytest.raises(ValueError, match="feedback needs a node this retriever returned"):
        retriever.feedback(TextNode(text="not from ragctl"))


@pytest.mark.parametrize("app", ["langchain_app.py", "llamaindex_app.py"])
def test_examples_run_against_a_live_server(live_server, app):
    pytest.importorskip("langchain_core" if app.startswith("langchain") else "llama_index.core")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAGCTL_URL": live_server.url,
           "RAGCTL_API_KEY": live_server.write_key}  # fmt: skip
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / app), QUERY, "-k", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"used {TOP}" in done.stdout and "feedback stored: #" in done.stdout
    assert "800 kg" in done.stdout
