"""Optional features name the pip extra that installs them."""

from __future__ import annotations

import importlib.metadata
import re

import pytest

from ragctl.core.errors import MissingExtraError, require_extra


def test_require_extra_names_the_extra_when_the_module_is_missing() -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'ragctl\[plots\]'"):
        require_extra("no_such_module_xyz", "plots", "plotting")
    require_extra("json", "plots", "plotting")  # present: no error


def test_extras_named_in_the_code_exist_in_the_package_metadata() -> None:
    extras = set(importlib.metadata.metadata("ragctl").get_all("Provides-Extra") or [])
    assert {"plots", "parquet", "bm25", "postgres"} <= extras
    requires = importlib.metadata.requires("ragctl") or []
    core = {re.split(r"[<>=!~\[ ;]", r)[0].lower() for r in requires if "extra ==" not in r}
    # The core service installs without the optional packages.
    assert not core & {"matplotlib", "pyarrow", "bm25s", "pystemmer"}
    assert "httpx" in core


def test_framework_extras_are_declared_and_named_by_the_adapters():
    from pathlib import Path

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    root = Path(__file__).resolve().parents[1]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(r.startswith("langchain-core") for r in extras["langchain"])
    assert any(r.startswith("llama-index-core") for r in extras["llamaindex"])
    for module, extra in (("langchain.py", "langchain"), ("llamaindex.py", "llamaindex")):
        assert f'"{extra}"' in (root / "client" / module).read_text()
