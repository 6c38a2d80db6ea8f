"""`/docs`: Swagger UI served from vendored files, so it works offline and air-gapped.

FastAPI's default page loads Swagger UI from a public CDN (blank without network) and asks
swagger.io's online validator about the schema; here every asset comes from this server
(`retriever/static/vendor/swagger-ui/`, swagger-ui-dist copied unchanged) and the validator
is off, so opening the page sends no request beyond the server itself.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
_SWAGGER = "/static/vendor/swagger-ui"


def install_docs(app: FastAPI) -> None:
    """Serve `/static/...` and Swagger UI at `/docs` from local files."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{_SWAGGER}/swagger-ui-bundle.js",
            swagger_css_url=f"{_SWAGGER}/swagger-ui.css",
            swagger_favicon_url=f"{_SWAGGER}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
