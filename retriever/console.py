"""The operator console: a few static files (HTML, CSS, ES modules) served at `/console/`.

No build step and nothing from the internet: the page and its scripts come from
`retriever/static/console/`, and a Content-Security-Policy lets it load and call only this
server. It uses the same HTTP API as any client, with the API key typed into the page (kept in
the tab's sessionStorage, sent as `Authorization: Bearer`), so every role check applies as is.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import FileResponse, RedirectResponse

from ragctl.retriever.docs_ui import STATIC_DIR

CONSOLE_DIR = STATIC_DIR / "console"
CONSOLE_PATH = "/console/"
# Only this server: scripts, styles, images, API calls. No inline script, no frames.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def install_console(app: FastAPI) -> None:
    """`GET /` and `GET /console` redirect to `/console/`, which serves the console page."""

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(CONSOLE_PATH, status_code=307)

    @app.get("/console", include_in_schema=False)
    async def console_bare() -> RedirectResponse:
        return RedirectResponse(CONSOLE_PATH, status_code=307)

    @app.get(CONSOLE_PATH, include_in_schema=False)
    async def console() -> FileResponse:
        return FileResponse(
            CONSOLE_DIR / "index.html",
            media_type="text/html; charset=utf-8",
            headers={
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "Cache-Control": "no-cache",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )
