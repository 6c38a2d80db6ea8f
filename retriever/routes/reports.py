"""`GET /v1/reports` and `GET /v1/reports/{id}`: eval reports (retune's and report.json files)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from starlette.concurrency import run_in_threadpool

from ragctl.retriever.deps import ReadDep, ServiceDep
from ragctl.retriever.error_handlers import KEYED_RESPONSES
from ragctl.retriever.reports import get_report, list_reports, reports_dir
from ragctl.retriever.schemas import ReportDetail, ReportsResponse, ReportSummary

router = APIRouter(prefix="/v1", tags=["evaluation"], dependencies=[ReadDep])


@router.get("/reports", response_model=ReportsResponse, responses=KEYED_RESPONSES)
async def reports(service: ServiceDep) -> ReportsResponse:
    """Every eval report: those retune stored in the registry (serving and candidate on the
    held-out queries, newest version first), then each report.json under
    `retriever.reports_dir` (default data_dir/reports; write them with `ragctl eval --out`)."""
    settings = service.settings
    folder = reports_dir(settings.data_dir, settings.retriever.reports_dir)
    found = await run_in_threadpool(list_reports, settings.data_dir, folder)
    return ReportsResponse(folder=str(folder), reports=[ReportSummary(**r) for r in found])


@router.get("/reports/{report_id:path}", response_model=ReportDetail, responses=KEYED_RESPONSES)
async def report(
    service: ServiceDep,
    report_id: Annotated[str, Path(min_length=1, max_length=1024)],
) -> ReportDetail:
    """One report, whole (rows, metrics, per-query values when present); 404
    `report_not_found`."""
    settings = service.settings
    folder = reports_dir(settings.data_dir, settings.retriever.reports_dir)
    found = await run_in_threadpool(get_report, settings.data_dir, folder, report_id)
    return ReportDetail(**found)
