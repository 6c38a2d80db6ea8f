"""`/docs` serves Swagger UI from local files: nothing on the page comes from the internet."""

import re

from fastapi.testclient import TestClient

from ragctl.core.settings import load_settings
from ragctl.retriever.app import create_app
from ragctl.retriever.testing import KeywordEncoder


def test_docs_page_loads_every_asset_from_the_server_itself(tmp_path) -> None:
    settings = load_settings(data_dir=tmp_path / "data")
    with TestClient(create_app(settings, encoder=KeywordEncoder())) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and "SwaggerUIBundle" in page.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert assets and all(a.startswith("/static/") for a in assets), assets
        assert "validatorUrl" in page.text and "null" in page.text  # no online validator
        for asset in assets:
            response = client.get(asset)
            assert response.status_code == 200 and len(response.content) > 100, asset
        assert client.get("/openapi.json").json()["openapi"].startswith("3.")
