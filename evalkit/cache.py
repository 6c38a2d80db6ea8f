"""Evaluation reports kept on disk under a key of everything that decides their numbers, so an
evaluation that was already run is read back instead of run again.

The key is a SHA-256 over canonical JSON of what the caller names (model, collection, dataset
fingerprint, run config); the report is stored whole (per-query values included) as
`<key>.json`. A file that cannot be read is a miss, never an error: the caller evaluates again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from ragctl.evalkit.datasets import EvalDataset
from ragctl.evalkit.errors import EvalError
from ragctl.evalkit.results import EvalReport, load_report

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when what a report holds (or how it is computed) changes


def dataset_fingerprint(dataset: EvalDataset) -> str:
    """SHA-256 of a dataset's name, split, corpus, queries and qrels."""
    content = {
        "name": dataset.name,
        "split": dataset.split,
        "corpus": dataset.corpus,
        "queries": dataset.queries,
        "qrels": dataset.qrels,
    }
    return _sha256(content)


def _sha256(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ReportCache:
    """Reports by key in one folder, at most `keep` of them (the oldest are removed)."""

    def __init__(self, folder: Path, *, keep: int = 32) -> None:
        self.folder = Path(folder)
        self.keep = keep

    @staticmethod
    def key(**parts: Any) -> str:
        """The key of a report: a hash of `parts` (JSON-friendly values) and the format."""
        return _sha256({"format": CACHE_FORMAT, **parts})

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> EvalReport | None:
        """The report stored under `key`, or None (absent or unreadable)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            report = load_report(path)
        except EvalError as exc:
            logger.warning("ignoring unreadable cached report %s: %s", path, exc)
            return None
        os.utime(path)  # recently used: pruned last
        return report

    def put(self, key: str, report: EvalReport) -> Path:
        """Store `report` under `key` (atomically), then prune past `keep` files."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        handle, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(report.to_json() + "\n")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._prune()
        return path

    def _prune(self) -> None:
        files = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[self.keep :]:
            old.unlink(missing_ok=True)
