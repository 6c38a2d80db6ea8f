from pathlib import Path

import pytest
from pydantic import ValidationError

from ragctl.core.errors import ConfigError
from ragctl.core.settings import Settings, load_settings


def test_settings_defaults():
    settings = Settings(data_dir=Path(".ragctl"))
    assert settings.model.name_or_path == "default"
    assert settings.store.url is None
    assert settings.store.shortlist_dims == (64,)
    assert settings.collection == "docs"
    assert settings.qdrant_path == Path(".ragctl/qdrant")


def test_settings_precedence_toml_env_flags(tmp_path, monkeypatch):
    (tmp_path / "ragctl.toml").write_text(
        'collection = "from_toml"\n[model]\nbatch_size = 8\nquery_prompt = "q: "\n'
        "[store]\nshortlist_dims = [32, 64]\n"
    )
    settings = load_settings()
    assert settings.collection == "from_toml"
    assert settings.model.batch_size == 8
    assert settings.store.shortlist_dims == (32, 64)

    monkeypatch.setenv("RAGCTL_COLLECTION", "from_env")
    monkeypatch.setenv("RAGCTL_MODEL__BATCH_SIZE", "16")
    settings = load_settings()
    assert settings.collection == "from_env"
    assert settings.model.batch_size == 16
    assert settings.model.query_prompt == "q: "  # nested merge keeps the toml's other keys

    settings = load_settings(collection="from_flag", model={"batch_size": 32, "device": None})
    assert settings.collection == "from_flag"
    assert settings.model.batch_size == 32


def test_settings_explicit_config_file(tmp_path):
    config = tmp_path / "elsewhere.toml"
    config.write_text("[chunking]\nsize_tokens = 128\noverlap_tokens = 16\n")
    settings = load_settings(config)
    assert settings.chunking.size_tokens == 128
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"chunking": {"size_tokens": 64, "overlap_tokens": 64}}, "must be smaller than"),
        ({"store": {"shortlist_dims": []}}, "at least one dimension"),
        ({"store": {"shortlist_dims": [64, 64]}}, "duplicates"),
        ({"search": {"k": 0}}, "greater than or equal to 1"),
        ({"collection": "bad name!"}, "should match pattern"),
        ({"unknown_key": 1}, "Extra inputs are not permitted"),
    ],
)
def test_settings_bad_values_name_the_problem(overrides, message):
    with pytest.raises(ValidationError, match=message):
        load_settings(**overrides)
