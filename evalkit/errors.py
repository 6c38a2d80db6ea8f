"""The errors that `evalkit` raises."""

from __future__ import annotations

from ragctl.core.errors import RagctlError


class EvalError(RagctlError):
    """An evaluation input is invalid (dataset file, report, metric setting) or unusable."""
