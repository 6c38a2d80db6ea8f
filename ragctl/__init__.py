"""ragctl: a RAG retrieval system on Qdrant with two-stage Matryoshka search and a tuning loop.

The installed import names all live under this namespace: `ragctl.core`, `ragctl.ingest`,
`ragctl.evalkit`, `ragctl.tuner`, `ragctl.retriever`, `ragctl.client` and `ragctl.cli`. In the
repository each is a top-level folder and this folder links to them (see docs/development.md),
so editable installs, wheels, mypy, ruff and pytest all see one package tree.

Import-light on purpose: nothing here imports torch, transformers or fastapi.
"""
