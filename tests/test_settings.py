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
    ],
)
def test_settings_bad_values_name_the_problem(overrides, message):
    with pytest.raises(ValidationError, match=message):
        load_settings(**overrides)


def test_settings_unknown_override_key_is_named():
    with pytest.raises(ConfigError, match=r"setting 'unknown_key': unknown key 'unknown_key'"):
        load_settings(unknown_key=1)


TOML_TYPOS = [
    ("[search]\ntop_k = 3\n", r"ragctl.toml: \[search\]: unknown key 'top_k' \(did you mean 'k'\?\)"
     r"; allowed: method, fusion, rrf_k, .*, k, shortlist, mode$"),
    ('[model]\nname = "x"\n', r"\[model\]: unknown key 'name' \(did you mean 'name_or_path'\?\)"),
    ('colection = "x"\n', r"ragctl.toml: unknown key 'colection' \(did you mean 'collection'\?\); "
     r"allowed: data_dir, "),
    ("[tuner.gate]\nmin_gian = 0.1\n", r"\[tuner.gate\]: unknown key 'min_gian' "
     r"\(did you mean 'min_gain'\?\)"),
    ("[serach]\nk = 3\n", r"unknown key 'serach' \(did you mean 'search'\?\)"),
]  # fmt: skip


@pytest.mark.parametrize(("toml", "message"), TOML_TYPOS)
def test_settings_unknown_toml_keys_are_errors_naming_file_and_key(tmp_path, toml, message):
    (tmp_path / "ragctl.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings()
    config = tmp_path / "other.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=str(config)):
        load_settings(config)


ENV_TYPOS = [
    ("RAGCTL_SERACH__K", "5", r"environment variable RAGCTL_SERACH__K: unknown setting 'serach' "
     r"\(did you mean RAGCTL_SEARCH__K\?\); allowed: RAGCTL_DATA_DIR, "),
    ("RAGCTL_SEARCH__TOP_K", "5", r"unknown setting 'top_k' in \[search\] "
     r"\(did you mean RAGCTL_SEARCH__K\?\)"),
    ("ragctl_tuner__lmm__base_url", "x", r"did you mean RAGCTL_TUNER__LLM__BASE_URL\?"),
    ("RAGCTL_COLLECTION__X", "5", r"RAGCTL_COLLECTION is a single setting, it has no key 'x'"),
    ("RAGCTL_SEARCH", '{"topk": 3}', r"environment variable RAGCTL_SEARCH: \[search\]: "
     r"unknown key 'topk'"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "message"), ENV_TYPOS)
def test_settings_unknown_environment_variables_are_errors(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_settings_known_environment_variables_and_test_harness_ones_pass(monkeypatch):
    monkeypatch.setenv("RAGCTL_SEARCH", '{"k": 3}')
    monkeypatch.setenv("RAGCTL_TUNER__LLM__BASE_URL", "http://llm")
    monkeypatch.setenv("RAGCTL_TEST_QDRANT_URL", "http://qdrant")  # read by the test suite
    settings = load_settings()
    assert settings.search.k == 3 and settings.tuner.llm.base_url == "http://llm"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'collection = "docs"\n[search]\nk = \n', r"at line 3, column 5: Invalid value$"),
        (b"[search\nk = 3\n", r"invalid TOML at line 1, column 8: "),
        (b'collection = "caf\xe9"\n', r"not UTF-8 text \(byte 17\); TOML files are UTF-8"),
    ],
)  # fmt: skip
def test_settings_malformed_toml_is_one_line_naming_file_line_and_column(
    tmp_path, content, message
):
    config = tmp_path / "broken.toml"
    config.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as error:
        load_settings(config)
    assert str(error.value).startswith(f"{config}: ") and "\n" not in str(error.value)
