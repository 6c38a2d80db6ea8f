"""A LlamaIndex app on a ragctl retriever: retrieve nodes, build the context an LLM would get,
and tell ragctl which chunk the app used (the feedback `ragctl retune --from-log` trains on).

    ragctl ingest examples/corpus && ragctl serve        # in another shell
    pip install 'ragctl[llamaindex]'
    python examples/llamaindex_app.py "How often are the grinder burrs replaced?"

--url and --api-key default to $RAGCTL_URL (else http://127.0.0.1:8000) and $RAGCTL_API_KEY
(a write key, or none on a loopback server without keys).
"""

from __future__ import annotations

import argparse
import asyncio
import os

from llama_index.core.schema import MetadataMode

from ragctl.client.llamaindex import RagctlRetriever


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("question")
    parser.add_argument("--url", default=os.environ.get("RAGCTL_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--api-key", default=os.environ.get("RAGCTL_API_KEY"))
    parser.add_argument("-k", type=int, default=3)
    args = parser.parse_args()

    retriever = RagctlRetriever.from_url(args.url, api_key=args.api_key, k=args.k)
    nodes = retriever.retrieve(args.question)  # what a query engine calls
    # What an LLM would read: text plus the document's metadata, not ragctl's bookkeeping.
    print("\n\n".join(n.node.get_content(metadata_mode=MetadataMode.LLM) for n in nodes))

    nodes = asyncio.run(retriever.aretrieve(args.question))  # the async path, same answer
    used = nodes[0]
    print(f"\nused {used.node.metadata['doc_id']} (score {used.score:.3f}, "
          f"model v{used.node.metadata['model_version']})")  # fmt: skip
    stored = retriever.feedback(used, "relevant")  # one line closes the loop
    print(f"feedback stored: #{stored.feedback_id} {stored.label} for {stored.chunk_id}")


if __name__ == "__main__":
    main()
