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


class MissingExtraError(ConfigError):
    """An optional feature's package is not installed."""


def require_extra(module: str, extra: str, feature: str) -> None:
    """Raise `MissingExtraError` naming the pip extra when `module` cannot be imported.

    The core service installs without the optional packages (plots, Parquet, the bm25s
    baseline); the features that need them call this first.
    """
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingExtraError(
            f"{feature} needs the optional package {module!r}: pip install 'ragctl[{extra}]'"
        )
