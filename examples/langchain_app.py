"""A LangChain app on a ragctl retriever: retrieve, build the context an LLM would get, and
tell ragctl which chunk the app used (the feedback `ragctl retune --from-log` trains on).

    ragctl ingest examples/corpus && ragctl serve        # in another shell
    pip install 'ragctl[langchain]'
    python examples/langchain_app.py "How often are the grinder burrs replaced?"

--url and --api-key default to $RAGCTL_URL (else http://127.0.0.1:8000) and $RAGCTL_API_KEY
(a write key, or none on a loopback server without keys).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda

from ragctl.client.langchain import RagctlRetriever


def context_of(documents: list[Document]) -> str:
    """The prompt context an LLM would be given: each chunk with where it came from."""
    return "\n\n".join(f"[{d.metadata['doc_id']}]\n{d.page_content}" for d in documents)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question")
    parser.add_argument("--url", default=os.environ.get("RAGCTL_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--api-key", default=os.environ.get("RAGCTL_API_KEY"))
    parser.add_argument("-k", type=int, default=3)
    args = parser.parse_args()

    retriever = RagctlRetriever.from_url(args.url, api_key=args.api_key, k=args.k)
    chain = retriever | RunnableLambda(context_of)  # any LangChain chain takes the retriever
    print(chain.invoke(args.question))

    documents = asyncio.run(retriever.ainvoke(args.question))  # the async path, same answer
    used = documents[0]
    print(f"\nused {used.metadata['doc_id']} (score {used.metadata['score']:.3f}, "
          f"model v{used.metadata['model_version']})")  # fmt: skip
    stored = retriever.feedback(used, "relevant")  # one line closes the loop
    print(f"feedback stored: #{stored.feedback_id} {stored.label} for {stored.chunk_id}")


if __name__ == "__main__":
    main()
