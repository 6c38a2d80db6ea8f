"""The errors that `ingest` raises."""

from __future__ import annotations

from ragctl.core.errors import RagctlError


class IngestError(RagctlError):
    """Documents could not be loaded or chunked as asked (bad path, bad chunking settings)."""
