import multiprocessing
import threading
from pathlib import Path

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
    # Two runs reserving at once get two folders, never one shared.
    assert (registry.reserve_version(), registry.reserve_version()) == (3, 4)
    assert registry.model_dir(4).is_dir() and registry.next_version() == 5


def _three_versions(tmp_path, gate_v3=None):
    registry = ModelRegistry(tmp_path)
    registry.ensure_base("default")
    registry.mark_serving("docs", 1)
    for version in (2, 3):
        registry.add(ModelRecord(version=version, ref=f"models/v{version}", parent=version - 1))
    if gate_v3 is not None:
        registry.update(3, gate=gate_v3)
    return registry


def test_registry_statuses_are_derived_from_serving_history_and_gate(tmp_path):
    registry = _three_versions(tmp_path, gate_v3={"promote": False, "reason": "worse"})
    assert [r.status for r in registry.records()] == ["serving", "candidate", "rejected"]
    registry.mark_serving("docs", 2)
    assert [r.status for r in registry.records()] == ["retired", "serving", "rejected"]
    registry.mark_serving("docs", 3)  # forced: the gate's verdict is kept on the record
    assert registry.get(3).status == "serving" and registry.get(3).gate_rejected
    assert registry.mark_rolled_back("docs", from_version=3) == 2
    assert [r.status for r in registry.records()] == ["retired", "serving", "rejected"]
    registry.update(2, status="rejected")  # a status cannot be set by hand
    assert registry.get(2).status == "serving"


def test_registry_rollback_walks_back_and_never_forward(tmp_path):
    registry = _three_versions(tmp_path)
    registry.mark_serving("docs", 2)
    registry.mark_serving("docs", 3)
    registry.mark_serving("docs", 3)  # activating what serves adds no history entry
    assert registry.history("docs") == [1, 2, 3]
    assert registry.rollback_target("docs") == 2
    assert registry.mark_rolled_back("docs", from_version=3) == 2
    assert registry.rollback_target("docs") == 1  # further back, not forward to v3
    assert registry.mark_rolled_back("docs", from_version=2) == 1
    assert (registry.serving("docs"), registry.history("docs")) == (1, [1])
    with pytest.raises(RegistryError, match="no earlier model version.*only v1"):
        registry.rollback_target("docs")
    with pytest.raises(RegistryError, match="no earlier model version"):
        registry.mark_rolled_back("docs", from_version=1)


def test_registry_rollback_refuses_when_another_operation_changed_what_serves(tmp_path):
    registry = _three_versions(tmp_path)
    registry.mark_serving("docs", 2)
    registry.mark_serving("docs", 3)
    with pytest.raises(RegistryError, match="not served by v2 any more"):
        registry.mark_rolled_back("docs", from_version=2)
    assert registry.history("docs") == [1, 2, 3]


def test_registry_reconcile_follows_the_alias(tmp_path):
    registry = _three_versions(tmp_path)
    assert registry.reconcile("docs", 1) is False
    assert registry.reconcile("docs", 2) is True
    assert registry.serving("docs") == 2 and registry.history("docs") == [1, 2]
    assert registry.reconcile("docs", 9) is False  # unknown version: reported, not recorded
    assert registry.serving("docs") == 2


def _add_versions(data_dir: str, start: int, count: int) -> None:
    registry = ModelRegistry(Path(data_dir))
    for version in range(start, start + count):
        registry.add(ModelRecord(version=version, ref=f"models/v{version}"))
        registry.update(version, search={"mode": "dense"})


def test_registry_concurrent_writers_lose_nothing(tmp_path):
    ModelRegistry(tmp_path).ensure_base("default")
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=_add_versions, args=(str(tmp_path), 2 + 30 * i, 30)) for i in range(3)
    ]
    threads = [
        threading.Thread(target=_add_versions, args=(tmp_path, 200 + 30 * i, 30)) for i in range(2)
    ]
    for worker in [*procs, *threads]:
        worker.start()
    for worker in [*procs, *threads]:
        worker.join(timeout=120)
    assert all(p.exitcode == 0 for p in procs)
    records = ModelRegistry(tmp_path).records()
    assert len(records) == 1 + 5 * 30
    assert all(r.search == {"mode": "dense"} for r in records[1:])


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
