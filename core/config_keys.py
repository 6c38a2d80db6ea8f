"""Strict settings sources: unknown keys in `ragctl.toml` or `RAGCTL_*` variables are errors.

A typo (`[search] top_k = 3`, `RAGCTL_SERACH__K=5`) would otherwise be ignored and the default
used without a word. Every check here raises `ConfigError` with one line naming the file or
variable, the key, a did-you-mean and the keys allowed there. Pure functions over plain dicts
and the settings classes (no I/O except reading the TOML file).
"""

from __future__ import annotations

import difflib
import re
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ragctl.core.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ENV_PREFIX = "RAGCTL_"
ENV_DELIMITER = "__"
# Variables a test harness reads (live Qdrant or PostgreSQL for optional suites); not settings.
RESERVED_ENV_PREFIXES = ("RAGCTL_TEST_",)
_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed TOML file; a malformed, unreadable or non-UTF-8 file is one `ConfigError`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = _TOML_POSITION.search(message)
        if where is None:
            raise ConfigError(f"{path}: invalid TOML: {message}") from None
        line, column = where.groups()
        reason = message[: where.start()]
        raise ConfigError(
            f"{path}: invalid TOML at line {line}, column {column}: {reason}"
        ) from None


def check_toml_keys(data: Mapping[str, Any], model: type[BaseModel], path: Path) -> None:
    """Raise `ConfigError` for the first key of `data` (a parsed TOML file) `model` lacks."""
    _check_mapping(data, model, (), lambda keys: _toml_where(path, keys))


def check_init_keys(data: Mapping[str, Any], model: type[BaseModel]) -> None:
    """The same check for values passed in code (the CLI's flags), nested as dicts."""
    _check_mapping(data, model, (), lambda keys: f"setting {'.'.join(keys)!r}")


def check_env_keys(environ: Mapping[str, str], model: type[BaseModel]) -> None:
    """Raise `ConfigError` for a `RAGCTL_*` variable that names no setting.

    `RAGCTL_SECTION__KEY` names `[section] key`; `RAGCTL_SECTION` may hold a JSON object of the
    whole section, whose keys are checked too. Names are matched case-insensitively, as the
    settings loader does. `RAGCTL_TEST_*` is left to test harnesses.
    """
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper.startswith(RESERVED_ENV_PREFIXES):
            continue
        keys = tuple(part.lower() for part in upper[len(ENV_PREFIX) :].split(ENV_DELIMITER))
        _check_env_path(name, keys, environ[name], model)


def _check_env_path(name: str, keys: tuple[str, ...], value: str, model: type[BaseModel]) -> None:
    current: type[BaseModel] | None = model
    for depth, key in enumerate(keys):
        if current is None:
            parent = ENV_DELIMITER.join(k.upper() for k in keys[:depth])
            raise ConfigError(
                f"environment variable {name}: {ENV_PREFIX}{parent} is a single setting, it has "
                f"no key {key!r}"
            )
        fields = _accepted_keys(current)
        if key not in fields:
            prefix = ENV_PREFIX + "".join(k.upper() + ENV_DELIMITER for k in keys[:depth])
            guess = _did_you_mean(key, fields)
            fixed = ENV_DELIMITER.join(k.upper() for k in (guess or "", *keys[depth + 1 :]))
            hint = f" (did you mean {prefix}{fixed}?)" if guess else ""
            section = f" in [{'.'.join(keys[:depth])}]" if depth else ""
            raise ConfigError(
                f"environment variable {name}: unknown setting {key!r}{section}{hint}; allowed: "
                + ", ".join(prefix + field.upper() for field in fields)
            )
        current = _section_model(fields[key].annotation)
    if current is not None and value.strip().startswith("{"):
        import json

        try:
            parsed = json.loads(value)
        except ValueError:
            return  # the settings loader reports malformed JSON with the variable's name
        if isinstance(parsed, dict):
            where = f"environment variable {name}: [{'.'.join(keys)}]"
            _check_mapping(parsed, current, keys, lambda _: where)


def _check_mapping(
    data: Mapping[str, Any],
    model: type[BaseModel],
    keys: tuple[str, ...],
    where: typing.Callable[[tuple[str, ...]], str],
) -> None:
    fields = _accepted_keys(model)
    for key, value in data.items():
        here = (*keys, str(key))
        if key not in fields:
            guess = _did_you_mean(str(key), fields)
            hint = f" (did you mean {guess!r}?)" if guess else ""
            raise ConfigError(
                f"{where(here)}: unknown key {key!r}{hint}; allowed: {', '.join(fields)}"
            )
        section = _section_model(fields[key].annotation)
        if section is not None and isinstance(value, Mapping):
            _check_mapping(value, section, here, where)


def _accepted_keys(model: type[BaseModel]) -> dict[str, Any]:
    """Every key `model` accepts (field names and their validation aliases) -> its field."""
    from pydantic import AliasChoices

    keys: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        keys[name] = info
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        for choice in choices:
            if isinstance(choice, str):
                keys.setdefault(choice, info)
        if info.alias:
            keys.setdefault(info.alias, info)
    return keys


def _toml_where(path: Path, keys: tuple[str, ...]) -> str:
    table = ".".join(keys[:-1])
    return f"{path}: [{table}]" if table else f"{path}"


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The settings class of a nested section (`ModelSettings`, `X | None`), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        models = [a for a in typing.get_args(annotation) if isinstance(a, type)]
        found = [a for a in models if issubclass(a, BaseModel)]
        return found[0] if len(found) == 1 else None
    return None


def _did_you_mean(key: str, allowed: Iterable[str]) -> str | None:
    names = list(allowed)
    close = difflib.get_close_matches(key.lower(), names, n=1, cutoff=0.6)
    if close:
        return close[0]
    lowered = key.lower()
    # `top_k` for `k`, `name` for `name_or_path`: a word of one is the other, or contains it.
    words = set(lowered.split("_"))
    by_word = [n for n in names if n in words or set(n.split("_")) & {lowered}]
    if len(by_word) == 1:
        return by_word[0]
    containing = [n for n in names if lowered in n or (len(n) > 2 and n in lowered)]
    if len(containing) == 1:
        return containing[0]
    close = difflib.get_close_matches(key.lower(), names, n=1, cutoff=0.5)
    return close[0] if close else None
