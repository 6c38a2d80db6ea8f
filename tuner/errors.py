"""The tuner's errors."""

from __future__ import annotations

from ragctl.core.errors import RagctlError


class TunerError(RagctlError):
    """Training data, a training run, a promotion or a rollback failed."""


class RejectedModelError(TunerError):
    """A model version the gate rejected was asked to serve without force."""
