"""Shared test setup: everything runs offline, every test gets its own data dir."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ragctl at a fresh data dir and keep any ./ragctl.toml of the developer out."""
    data_dir = tmp_path / ".ragctl"
    monkeypatch.setenv("RAGCTL_DATA_DIR", str(data_dir))
    for key in list(os.environ):
        # RAGCTL_TEST_* name live services (Qdrant, PostgreSQL) for optional suites.
        if (
            key.startswith("RAGCTL_")
            and key != "RAGCTL_DATA_DIR"
            and not key.startswith("RAGCTL_TEST_")
        ):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return data_dir


@pytest.fixture(scope="session")
def real_encoder():
    """The packaged all-MiniLM-L6-v2 (384-d) with a 64-d shortlist, loaded once."""
    from ragctl.core.encoder import SentenceTransformerEncoder
    from ragctl.core.settings import ModelSettings

    return SentenceTransformerEncoder.load(ModelSettings(), (64,))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real BEIR datasets); tests needing it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA} (only on the project's machines)")
    return SHARED_DATA
