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


# The flag that sets each setting a command line can set, to name it in errors ("-k", not
# "search.k"). A command's flag for a setting always has the same name.
FLAG_OF_SETTING: dict[str, str] = {
    "data_dir": "--data-dir",
    "model.name_or_path": "--model",
    "store.url": "--store-url",
    "collection": "--collection",
    "search.k": "-k",
    "search.shortlist": "--shortlist",
    "chunking.size_tokens": "--chunk-size",
    "chunking.overlap_tokens": "--chunk-overlap",
    "retriever.host": "--host",
    "retriever.port": "--port",
    "retriever.workers": "--workers",
    "retriever.insecure": "--insecure",
    "tuner.epochs": "--epochs",
    "tuner.batch_size": "--batch-size",
    "tuner.learning_rate": "--lr",
    "tuner.max_minutes": "--max-minutes",
    "tuner.validation_fraction": "--validation-fraction",
    "tuner.evals_per_epoch": "--evals-per-epoch",
    "tuner.early_stopping_patience": "--patience",
    "tuner.hard_negatives": "--hard-negatives",
    "tuner.negatives_from": "--negatives-from",
}


class State:
    """Global options, turned into settings on first use."""

    def __init__(self, config: Path | None, overrides: dict[str, Any]) -> None:
        self.config = config
        self.overrides = overrides
        self._settings: Settings | None = None

    def settings(self, **more: Any) -> Settings:
        """Settings with this command's own flags (`more`, nested dicts) on top.

        Raises:
            click.BadParameter: A flag's value is invalid (the flag is named).
            click.ClickException: A value from the environment or a TOML file is invalid, or a
                key there is unknown (the variable or file is named).
        """
        if self._settings is None or more:
            given = _deep_merge(self.overrides, more)
            try:
                self._settings = load_settings(self.config, **given)
            except ValidationError as exc:
                raise settings_error(exc, given, self.config) from exc
        return self._settings


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def settings_error(exc: Any, given: dict[str, Any], config: Path | None) -> click.ClickException:
    """One line for a pydantic ValidationError of the settings, naming where each value came from.

    A value set by a flag names the flag (`-k`), one from the environment the variable
    (`RAGCTL_SEARCH__K`), one from a file the file and key.
    """
    flags: list[str] = []
    parts: list[str] = []
    for error in exc.errors():
        loc = tuple(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error.get("type") not in ("model_type",) and not isinstance(error.get("input"), dict):
            message += f" (got {error.get('input')!r})"
        from_flags = [FLAG_OF_SETTING[k] for k in _set_keys(given, loc) if k in FLAG_OF_SETTING]
        if from_flags:
            flags.extend(f for f in from_flags if f not in flags)
            parts.append(message)
            continue
        parts.append(f"{_origin(loc, config)}: {message}")
    if flags and len(parts) == 1:
        return click.BadParameter(parts[0], param_hint=flags)
    return click.ClickException("invalid setting " + "; ".join(parts))


def _set_keys(given: dict[str, Any], loc: tuple[str, ...]) -> list[str]:
    """Dotted settings keys under `loc` (a field, or a section for its own checks) in `given`."""
    node: Any = given
    for key in loc:
        if not isinstance(node, dict) or node.get(key) is None:
            return []
        node = node[key]
    if not isinstance(node, dict):
        return [".".join(loc)]
    return [".".join((*loc, key)) for key, value in node.items() if value is not None]


def _origin(loc: tuple[str, ...], config: Path | None) -> str:
    """Where a setting's value came from: an environment variable, or the TOML file."""
    import os

    wanted = ("RAGCTL_" + "__".join(loc)).upper()
    for name in os.environ:
        if name.upper() == wanted or (
            len(loc) > 1 and name.upper() == ("RAGCTL_" + loc[0]).upper()
        ):
            return f"{'.'.join(loc)} (from {name})"
    toml = config or Path("ragctl.toml")
    return f"{'.'.join(loc)} (from {toml})" if toml.is_file() else ".".join(loc)


# The flag behind each field of an object the CLI builds from its flags (a search's
# parameters), to name it when the object refuses a value.
FLAG_OF_FIELD: dict[str, str] = {
    "query": "QUERY",
    "k": "-k",
    "shortlist": "--shortlist",
    "mode": "--mode",
    "filter": "--filter",
    "single_stage": "--single-stage",
}


def request_error(exc: ValidationError) -> click.ClickException:
    """One line for a pydantic ValidationError of an object built from flags, naming them."""
    flags: list[str] = []
    parts: list[str] = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        message = str(error["msg"]).removeprefix("Value error, ")
        message += f" (got {error.get('input')!r})" if loc else ""
        flag = FLAG_OF_FIELD.get(loc[0]) if loc else None
        if flag is None:
            parts.append(f"{'.'.join(loc) or 'search'}: {message}")
            continue
        if flag not in flags:
            flags.append(flag)
        parts.append(message)
    if flags and len(parts) == 1:
        return click.BadParameter(parts[0], param_hint=flags)
    return click.ClickException("invalid " + "; ".join(parts))


def translate_errors(fn: F) -> F:
    """Turn ragctl's own errors, values that break a rule of the object a command builds from
    its flags (a search's parameters: the flag is named), and file-system errors into one
    line: `click.ClickException` (exit code 1) or `click.BadParameter` (exit code 2).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RagctlError as exc:
            raise click.ClickException(str(exc)) from exc
        except ValidationError as exc:
            raise request_error(exc) from exc
        except OSError as exc:  # e.g. a data dir under /proc, an --out folder not writable
            where = f" ({exc.filename})" if exc.filename else ""
            raise click.ClickException(f"{exc.strerror or exc}{where}") from exc

    return wrapper  # type: ignore[return-value]


def state(ctx: click.Context) -> State:
    """The global options of this invocation."""
    found = ctx.find_object(State)
    if found is None:
        raise click.UsageError("run this command through `ragctl`")
    return found
