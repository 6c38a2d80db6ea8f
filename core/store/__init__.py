"""Vector store: one interface (`VectorStore`), two backends.

- `EdgeStore` (default): the Qdrant Edge engine in-process, under the data dir.
- `ServerStore`: a Qdrant server or cluster through qdrant-client (or its local mode in tests).

Use `open_store(settings)` to get the one the settings ask for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ragctl.core.settings import Settings
    from ragctl.core.store.base import VectorStore


def open_store(settings: Settings) -> VectorStore:
    """Open the embedded store (no `store.url`) or connect to the Qdrant server at `store.url`."""
    if settings.store.url is None:
        from ragctl.core.store.edge import EdgeStore

        return EdgeStore(settings.qdrant_path)
    from ragctl.core.store.server import ServerStore

    return ServerStore.connect(settings.store)
