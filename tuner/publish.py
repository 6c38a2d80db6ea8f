"""Publish a registered model version to the Hugging Face Hub."""

from __future__ import annotations

import logging
from pathlib import Path

from ragctl.tuner.errors import TunerError

logger = logging.getLogger(__name__)

# Everything a user of the model needs; training state (checkpoints, optimizer) stays home.
_SKIP_DIRS = {"checkpoints", ".cache"}


def files_to_upload(model_dir: Path) -> list[str]:
    """Relative paths `push_model` uploads, in a stable order."""
    if not (model_dir / "modules.json").is_file():
        raise TunerError(
            f"{model_dir} is not a sentence-transformers model folder (no modules.json)"
        )
    if not (model_dir / "README.md").is_file():
        raise TunerError(f"{model_dir} has no model card (README.md)")
    files = []
    for path in sorted(model_dir.rglob("*")):
        rel = path.relative_to(model_dir)
        if path.is_file() and not (set(rel.parts[:-1]) & _SKIP_DIRS):
            files.append(rel.as_posix())
    return files


def push_model(
    model_dir: Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload model trained with ragctl",
) -> str:
    """Create (or reuse) the Hub repo and upload the model folder; returns the repo URL."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise TunerError(f"--repo-id must look like ORG/NAME, got {repo_id!r}")
    files = files_to_upload(model_dir)
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(
            folder_path=str(model_dir),
            repo_id=repo_id,
            repo_type="model",
            allow_patterns=files,
            commit_message=commit_message,
        )
    except Exception as exc:  # network, auth and Hub errors all end here
        raise TunerError(f"push to {repo_id} failed: {exc}") from exc
    logger.info("pushed %d files to %s", len(files), repo_id)
    return str(url)
