import pytest

from ragctl.core.registry import ModelRecord, ModelRegistry, RegistryError, resolve_ref


def test_registry_base_models_get_versions_in_order(tmp_path):
    registry = ModelRegistry(tmp_path)
    assert registry.ensure_base("default").version == 1
    assert registry.ensure_base("default").version == 1
    assert registry.ensure_base("nomic-ai/modernbert-embed-base").version == 2
    assert [r.ref for r in registry.records()] == ["default", "nomic-ai/modernbert-embed-base"]


def test_registry_versions_are_never_reused(tmp_path):
    registry = ModelRegistry(tmp_path)
    registry.ensure_base("default")
    registry.model_dir(2).mkdir(parents=True)  # a training run that died before registering
    assert registry.next_version() == 3


def test_registry_serving_history_and_rollback(tmp_path):
    registry = ModelRegistry(tmp_path)
    registry.ensure_base("default")
    registry.mark_serving("docs", 1)
    registry.add(ModelRecord(version=2, ref="models/v2", parent=1, base_model="default"))
    assert registry.get(2).status == "candidate"
    registry.mark_serving("docs", 2)
    assert (registry.serving("docs"), registry.get(1).status, registry.get(2).status) == (
        2,
        "retired",
        "serving",
    )
    assert registry.rollback_target("docs") == 1
    registry.mark_serving("docs", 1)
    assert registry.rollback_target("docs") == 2
    assert registry.history("docs") == [1, 2, 1]


def test_registry_errors_name_the_version(tmp_path):
    registry = ModelRegistry(tmp_path)
    registry.ensure_base("default")
    with pytest.raises(RegistryError, match=r"no model version v7 \(known: v1\)"):
        registry.get(7)
    with pytest.raises(RegistryError, match="already exists"):
        registry.add(ModelRecord(version=1, ref="x"))
    registry.mark_serving("docs", 1)
    with pytest.raises(RegistryError, match="no earlier model version"):
        registry.rollback_target("docs")


def test_registry_refs_resolve_under_the_data_dir(tmp_path):
    assert resolve_ref("models/v3", tmp_path) == str(tmp_path / "models/v3")
    assert resolve_ref("default", tmp_path) == "default"
    assert resolve_ref("org/model", tmp_path) == "org/model"
