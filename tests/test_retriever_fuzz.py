"""Schema-driven fuzzing of the OpenAPI spec (schemathesis): no 5xx, every error a JSON body.

Each operation gets a bounded number of generated requests, valid and invalid by the schema;
responses must conform to the documented status codes and schemas, and every 4xx must carry
`{"error": {"code", "message", "field"}}`.
"""

import pytest
from hypothesis import HealthCheck, given, settings

from ragctl.core.settings import load_settings
from ragctl.retriever.app import create_app
from ragctl.retriever.testing import KeywordEncoder

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402
from schemathesis.python import asgi  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

ADMIN_KEY = "fuzz-admin-key-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}  # admin implies write and read
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    app = create_app(
        load_settings(data_dir=data_dir, retriever={"admin_api_key": ADMIN_KEY}),
        encoder=KeywordEncoder(),
    )
    yield app
    asgi.shutdown_lifespans()  # schemathesis started the app's lifespan; close store and log


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    seed = {"documents": [{"id": "seed.md", "text": "Espresso is brewed under pressure."}]}
    response = schema["/v1/documents"]["POST"].Case(body=seed).call(headers=AUTH)
    assert response.status_code == 200, response.text
    return schema


OPERATIONS = [
    ("/v1/search", "POST"),
    ("/v1/search/batch", "POST"),
    ("/v1/collections", "GET"),
    ("/v1/feedback", "POST"),
    ("/v1/documents", "POST"),
    ("/v1/documents", "GET"),
    ("/v1/documents/{doc_id}", "GET"),
    ("/v1/documents/{doc_id}", "DELETE"),
    ("/v1/embeddings", "POST"),
    ("/v1/health", "GET"),
    ("/v1/ready", "GET"),
    ("/metrics", "GET"),
    ("/v1/admin/collections", "GET"),
    ("/v1/admin/collections", "POST"),
    ("/v1/admin/reload", "POST"),
    ("/v1/admin/models/{version}/activate", "POST"),
    ("/v1/admin/rollback", "POST"),
    ("/v1/documents", "GET"),
    ("/v1/documents/{doc_id}", "GET"),
    ("/v1/feedback/stats", "GET"),
    ("/v1/feedback/export", "GET"),
    ("/v1/models", "GET"),
    ("/v1/models/{version}", "GET"),
    ("/v1/retune/status", "GET"),
    ("/v1/reports", "GET"),
    ("/v1/reports/{report_id}", "GET"),
    ("/v1/access", "GET"),
]


def test_retriever_fuzz_covers_every_operation(api_schema):
    found = {
        (result.ok().path, result.ok().method.upper()) for result in api_schema.get_all_operations()
    }
    assert found == set(OPERATIONS)


# Negative (schema-violating) requests only where there is an input to violate.
WITH_INPUTS = {("/v1/search", "POST"), ("/v1/search/batch", "POST"), ("/v1/feedback", "POST"),
               ("/v1/documents", "POST"), ("/v1/documents/{doc_id}", "GET"),
               ("/v1/documents/{doc_id}", "DELETE"), ("/v1/embeddings", "POST"),
               ("/v1/admin/collections", "POST"), ("/v1/reports/{report_id}", "GET")}  # fmt: skip
# Not the activate route: its only inputs are an int path parameter and a boolean query flag,
# which HTTP coerces ("0", "no" are valid booleans), so "negative" cases are often valid.
CASES = [(p, m, "positive") for p, m in OPERATIONS] + [
    (p, m, "negative") for p, m in OPERATIONS if (p, m) in WITH_INPUTS
]


@pytest.mark.parametrize(("path", "method", "mode"), CASES)
def test_retriever_fuzz_no_server_errors_and_json_errors(api_schema, path, method, mode):
    operation = api_schema[path][method]
    assert mode == "positive" or operation.body or operation.path_parameters
    headers = AUTH

    @given(case=operation.as_strategy(GenerationMode(mode)))
    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case):
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS)
        if response.status_code >= 400:
            error = response.json()["error"]
            assert isinstance(error["code"], str) and error["code"].islower()
            assert isinstance(error["message"], str) and error["message"]
            assert "field" in error
        assert response.status_code < 500

    check()
