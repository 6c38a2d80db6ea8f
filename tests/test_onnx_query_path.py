"""The ONNX backend wired into the commands: a data dir's export (made on first need), the
CLI's search path without torch, ingest and eval on the same encoder, and the export rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ragctl.cli.main import main
from ragctl.core.errors import ConfigError
from ragctl.core.onnx_encoder import FP32_FILE, OnnxEncoder
from ragctl.core.onnx_exports import ensure_export, export_dir, export_failure, failure_file
from ragctl.core.settings import ModelBackend

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "sentence_transformers", "sklearn")

# Runs the CLI in this fresh interpreter, then prints which heavy modules it imported.
_PROBE = """
import json, sys
from ragctl.cli.main import main
try:
    main(sys.argv[1:], prog_name="ragctl")
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "heavy": sorted(m for m in HEAVY if m in sys.modules)}))
""".replace("HEAVY", repr(HEAVY))


@pytest.fixture(scope="module")
def onnx_data_dir(tmp_path_factory, onnx_export):
    """A data dir whose `default` export is the session's (linked where the data dir keeps
    it), with the examples' bar handbook ingested on the ONNX backend."""
    data_dir = tmp_path_factory.mktemp("onnx-query") / "data"
    target = export_dir("default", data_dir)
    assert target is not None
    target.parent.mkdir(parents=True)
    target.symlink_to(onnx_export.directory, target_is_directory=True)
    done = _cli(data_dir, "onnx", "ingest", str(REPO_ROOT / "examples" / "corpus" / "bar"))
    assert done["code"] in (0, None), done
    assert done["heavy"] == [], "ingest on an existing export needs no torch"
    return data_dir


def _cli(data_dir: Path, backend: str, *args: str) -> dict:
    """`ragctl --data-dir DATA_DIR ARGS` in a fresh process; its exit code and heavy imports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGCTL_")}
    env.update(PYTHONPATH=str(REPO_ROOT), HF_HUB_OFFLINE="1", RAGCTL_MODEL__BACKEND=backend)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    return {**json.loads(last), "stdout": done.stdout, "stderr": done.stderr}


@pytest.mark.parametrize("backend", ["onnx", "auto"])
@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_cli_search_in_a_fresh_process_imports_no_torch(onnx_data_dir, backend, mode):
    done = _cli(
        onnx_data_dir, backend, "search", "how long must the beer rest", "--mode", mode, "--json"
    )
    assert done["code"] in (0, None), done["stderr"]
    assert done["heavy"] == []
    answer = json.loads(done["stdout"][: done["stdout"].rindex("\n{")])
    assert answer["results"], "the search found nothing"
    assert answer["mode"] == mode and answer["model"] == "default"


@pytest.mark.parametrize(
    "args", [("collections",), ("search", "beer", "--mode", "sparse"), ("models", "list")]
)
def test_commands_that_do_not_embed_import_no_torch_even_on_torch(onnx_data_dir, args):
    done = _cli(onnx_data_dir, "torch", *args)
    assert done["code"] in (0, None), done["stderr"]
    assert done["heavy"] == []


def test_onnx_search_ranks_like_torch(onnx_data_dir):
    """The same query, top results by torch and by the ONNX fp32 export: the same documents."""
    query = ("search", "who may pour the strong beer", "--json", "-k", "5")
    on_onnx = _cli(onnx_data_dir, "onnx", *query)
    on_torch = _cli(onnx_data_dir, "torch", *query)
    assert on_torch["heavy"] != [] and on_onnx["heavy"] == []

    def ranked(done: dict) -> list[str]:
        answer = json.loads(done["stdout"][: done["stdout"].rindex("\n{")])
        return [r["chunk_id"] for r in answer["results"]]

    assert ranked(on_onnx) == ranked(on_torch)


def test_export_on_first_need_happens_once(tmp_path, monkeypatch, onnx_export):
    """A data dir without an export gets one the first time an ONNX backend needs it (here
    the exporter copies the session's export); later calls find it."""
    import shutil

    import ragctl.core.onnx_export as exporter

    calls = []

    def fake_export(model_dir, out_dir):
        calls.append((Path(model_dir), Path(out_dir)))
        shutil.copytree(onnx_export.directory, out_dir)

    monkeypatch.setattr(exporter, "export_onnx", fake_export)
    data_dir = tmp_path / "data"
    first = ensure_export("default", data_dir, ModelBackend.AUTO)
    again = ensure_export("default", data_dir, ModelBackend.ONNX_INT8)
    assert first == again == export_dir("default", data_dir)
    assert first is not None and (first / FP32_FILE).is_file()
    assert len(calls) == 1
    assert ensure_export("default", data_dir, ModelBackend.TORCH) is None


def test_a_model_the_exporter_refuses_stays_on_torch_under_auto(tmp_path):
    """An unsupported pipeline (a Dense layer) is refused before torch loads; `auto` keeps
    torch and remembers why, an explicit ONNX backend is an error naming the reason."""
    model = tmp_path / "dense-model"
    model.mkdir()
    modules = [("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Dense", "Dense")]
    (model / "modules.json").write_text(
        json.dumps(
            [
                {
                    "idx": i,
                    "name": str(i),
                    "path": path,
                    "type": f"sentence_transformers.models.{kind}",
                }
                for i, (path, kind) in enumerate(modules)
            ]
        )
    )
    data_dir = tmp_path / "data"
    assert ensure_export(str(model), data_dir, ModelBackend.AUTO) is None
    onnx_dir = export_dir(str(model), data_dir)
    assert onnx_dir is not None and failure_file(onnx_dir).is_file()
    reason = export_failure(onnx_dir)
    assert reason is not None and "Dense" in reason
    with pytest.raises(ConfigError, match="Dense"):
        ensure_export(str(model), data_dir, ModelBackend.ONNX)


def test_explicit_onnx_for_a_hub_id_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="local model folder"):
        ensure_export("sentence-transformers/all-MiniLM-L6-v2", tmp_path, ModelBackend.ONNX)
    assert (
        ensure_export("sentence-transformers/all-MiniLM-L6-v2", tmp_path, ModelBackend.AUTO) is None
    )


def test_export_dir_per_model(tmp_path):
    data_dir = tmp_path / "data"
    assert export_dir("models/v3", data_dir) == data_dir / "models" / "v3" / "onnx"
    default = export_dir("default", data_dir)
    assert default is not None and default.parent == data_dir / "models" / "exports"
    assert default.name.startswith("default-")
    other = tmp_path / "my model"
    other.mkdir()
    local = export_dir(str(other), data_dir)
    assert local is not None and local.name.startswith("my-model-") and local != default
    assert export_dir("org/hub-model", data_dir) is None


def test_eval_runs_on_the_onnx_encoder(onnx_data_dir, monkeypatch, tmp_path):
    """`ragctl eval` loads the backend the settings name (here the export in the data dir)."""
    import ragctl.evalkit.runs as runs

    seen = []
    real_evaluate = runs.evaluate

    def spy(data, encoder, options, **kwargs):
        seen.append(encoder)
        return real_evaluate(data, encoder, options, **kwargs)

    monkeypatch.setattr(runs, "evaluate", spy)
    monkeypatch.setenv("RAGCTL_MODEL__BACKEND", "onnx")
    dataset = tmp_path / "tiny"
    dataset.mkdir()
    (dataset / "corpus.jsonl").write_text(
        "\n".join(
            json.dumps({"_id": f"d{i}", "title": "", "text": text})
            for i, text in enumerate(["beer rests ten days", "wine is poured cold", "bread"])
        )
    )
    (dataset / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "resting beer"}))
    (dataset / "qrels").mkdir()
    (dataset / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\n")
    result = CliRunner().invoke(
        main,
        ["--data-dir", str(onnx_data_dir), "eval", "--dataset", str(dataset), "--dims", "64"],
        prog_name="ragctl",
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert len(seen) == 1 and isinstance(seen[0], OnnxEncoder)
    assert "ndcg@10" in result.output
