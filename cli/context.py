"""Shared CLI plumbing: global options turned into settings, and error translation."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from ragctl.core.errors import RagctlError
from ragctl.core.settings import Settings, load_settings

F = TypeVar("F", bound=Callable[..., Any])


class State:
    """Global options, turned into settings on first use."""

    def __init__(self, config: Path | None, overrides: dict[str, Any]) -> None:
        self.config = config
        self.overrides = overrides
        self._settings: Settings | None = None

    def settings(self, **more: Any) -> Settings:
        """Settings with this command's own flags (`more`, nested dicts) on top."""
        if self._settings is None or more:
            try:
                self._settings = load_settings(self.config, **_deep_merge(self.overrides, more))
            except ValidationError as exc:
                raise click.ClickException(_one_line(exc, "invalid setting ")) from exc
        return self._settings


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _one_line(exc: ValidationError, prefix: str) -> str:
    """`PREFIXa.b: message (got ...); ...` from a pydantic ValidationError."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "settings"
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message} (got {error.get('input')!r})")
    return prefix + "; ".join(parts)


def translate_errors(fn: F) -> F:
    """Turn ragctl's own errors, and values that break a rule of the object they build (a
    search's parameters), into `click.ClickException` (one line, exit code 1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RagctlError as exc:
            raise click.ClickException(str(exc)) from exc
        except ValidationError as exc:
            raise click.ClickException(_one_line(exc, "invalid ")) from exc

    return wrapper  # type: ignore[return-value]


def state(ctx: click.Context) -> State:
    """The global options of this invocation."""
    found = ctx.find_object(State)
    if found is None:
        raise click.UsageError("run this command through `ragctl`")
    return found
