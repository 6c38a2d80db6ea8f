"""Where the console finds eval reports: the registry, and report.json files under a folder.

- Registry: `ragctl retune` stores both models' reports on the held-out queries with the
  candidate's record (`evaluation.serving`, `evaluation.candidate`, and the guard set's when
  one is configured). Ids: `registry/v3/candidate`, `registry/v3/serving`, ...; a candidate's
  report names the serving one it was compared with (`baseline`).
- Files: every `report.json` (`ragctl eval --out DIR`) under `retriever.reports_dir` (default
  `data_dir/reports`), at most `MAX_DEPTH` folders down and `MAX_FILES` files. Id:
  `files/` + the folder's path relative to the reports folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ragctl.core.registry import ModelRecord, ModelRegistry, RegistryError
from ragctl.retriever.errors import NotFoundError

logger = logging.getLogger(__name__)

REPORT_SCHEMA = "ragctl.evalkit.report/1"
MAX_DEPTH = 4
MAX_FILES = 200
MAX_REPORT_BYTES = 64 * 1024 * 1024
_ROLES = ("candidate", "serving", "guard_candidate", "guard_serving")
_BASELINE = {"candidate": "serving", "guard_candidate": "guard_serving"}


def reports_dir(data_dir: Path, configured: Path | None) -> Path:
    """The folder searched for report.json files."""
    return configured if configured is not None else Path(data_dir) / "reports"


def list_reports(data_dir: Path, folder: Path) -> list[dict[str, Any]]:
    """A summary of every report: registry ones (newest version first), then files."""
    summaries: list[dict[str, Any]] = []
    for record in sorted(ModelRegistry(data_dir).records(), key=lambda r: -r.version):
        evaluation = record.evaluation or {}
        for role in _ROLES:
            report = evaluation.get(role)
            if isinstance(report, dict):
                summaries.append(_registry_summary(record, role, report))
    for path in _report_files(folder):
        report = _read(path)
        if report is not None:
            summaries.append(_file_summary(folder, path, report))
    return summaries


def get_report(data_dir: Path, folder: Path, report_id: str) -> dict[str, Any]:
    """`{"id", ..., "report": {...}}` of one report.

    Raises:
        NotFoundError: `report_not_found`: no such id (or a path outside the folder).
    """
    source, _, rest = report_id.partition("/")
    if source == "registry":
        version_text, _, role = rest.partition("/")
        if version_text.startswith("v") and version_text[1:].isdigit() and role in _ROLES:
            try:
                record = ModelRegistry(data_dir).get(int(version_text[1:]))
            except RegistryError:
                record = None
            report = (record.evaluation or {}).get(role) if record is not None else None
            if record is not None and isinstance(report, dict):
                return {**_registry_summary(record, role, report), "report": report}
    elif source == "files" and rest:
        path = _inside(folder, rest)
        if path is not None:
            report = _read(path)
            if report is not None:
                return {**_file_summary(folder, path, report), "report": report}
    raise NotFoundError(
        "report_not_found",
        f"no eval report {report_id!r}: ids are registry/vN/candidate|serving (from retune) "
        "or files/FOLDER (a report.json under the reports folder); GET /v1/reports lists them",
        field="report_id",
    )


def _inside(folder: Path, relative: str) -> Path | None:
    """`folder/relative/report.json` when it stays inside `folder` (no `..`, no links out)."""
    if "\x00" in relative:
        return None
    root = folder.resolve()
    candidate = (folder / relative / "report.json").resolve()
    if root not in candidate.parents or not candidate.is_file():
        return None
    return candidate


def _report_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found: list[Path] = []
    root = folder.resolve()
    stack = [(root, 0)]
    while stack and len(found) < MAX_FILES:
        current, depth = stack.pop()
        try:
            entries = sorted(current.iterdir(), key=lambda p: p.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                continue  # never leave the folder
            if entry.name == "report.json" and entry.is_file():
                found.append(entry)
            elif entry.is_dir() and depth < MAX_DEPTH:
                stack.append((entry, depth + 1))
    return sorted(found)[:MAX_FILES]


def _read(path: Path) -> dict[str, Any] | None:
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            logger.warning("skipping eval report %s: over %d bytes", path, MAX_REPORT_BYTES)
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning("skipping eval report %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or data.get("schema") != REPORT_SCHEMA:
        return None
    return data


def _headline(report: dict[str, Any]) -> dict[str, Any]:
    rows = [r for r in report.get("rows", []) if isinstance(r, dict)]
    has_per_query = any(isinstance(r.get("per_query"), dict) and r["per_query"] for r in rows)
    sizes = report.get("sizes")
    if not isinstance(sizes, dict):
        sizes = {}
    return {
        "model": report.get("model"),
        "dataset": report.get("dataset"),
        "split": report.get("split"),
        "created_at": report.get("created_at"),
        "queries": sizes.get("queries"),
        "rows": [r.get("name") for r in rows],
        "per_query": has_per_query,
    }


def _registry_summary(record: ModelRecord, role: str, report: dict[str, Any]) -> dict[str, Any]:
    baseline = _BASELINE.get(role)
    has_baseline = baseline is not None and isinstance(
        (record.evaluation or {}).get(baseline), dict
    )
    label = role.replace("_", " ")
    return {
        "id": f"registry/v{record.version}/{role}",
        "source": "registry",
        "title": f"v{record.version} retune: {label} model ({report.get('model')})",
        "version": record.version,
        "role": role,
        "baseline": f"registry/v{record.version}/{baseline}" if has_baseline else None,
        "path": None,
        **_headline(report),
    }


def _file_summary(folder: Path, path: Path, report: dict[str, Any]) -> dict[str, Any]:
    relative = path.parent.relative_to(folder.resolve()).as_posix()
    return {
        "id": f"files/{relative}",
        "source": "file",
        "title": f"{relative}: {report.get('model')} on {report.get('dataset')}",
        "version": None,
        "role": None,
        "baseline": None,
        "path": relative,
        **_headline(report),
    }
