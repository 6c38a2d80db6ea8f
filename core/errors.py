"""The errors that `core` raises. Callers translate them at the edges (CLI, HTTP API)."""

from __future__ import annotations


class RagctlError(Exception):
    """Base of every ragctl error: a message meant for the operator, no traceback needed."""


class ConfigError(RagctlError):
    """A setting is missing or has a value outside what is allowed."""


class ModelLoadError(RagctlError):
    """The embedding model could not be loaded from the given id or path."""


class StoreError(RagctlError):
    """The vector store refused an operation or could not be reached."""


class StoreLockedError(StoreError):
    """The embedded store is already opened by another process."""


class CollectionNotFoundError(StoreError):
    """No collection or alias of that name exists."""
