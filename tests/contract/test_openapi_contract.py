"""Schemathesis over the service's own OpenAPI document, on a real server, with both keys:
no request, however hostile, is a 5xx, and every answer is documented (status code, content
type, body schema). Bounded: a few dozen examples per operation."""

from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.config import Settings
from app.main import create_app
from tests.conftest import LiveServer
from tests.contract.conftest import Seeded

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# The document the server serves at /openapi.json (test_served_document_is_this_one).
DOCUMENT = create_app(Settings(database_url="sqlite+aiosqlite://")).openapi()
# The coverage phase sends every boundary case of a body's schema: hundreds for a rule set.
# `POST /v1/rules/preview/jobs` takes the same body as `PUT /v1/rules` and
# `POST /v1/rules/preview`, which keep that phase; it is fuzzed like the rest.
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-name": "POST /v1/rules/preview/jobs",
                "phases": {"coverage": {"enabled": False}},
            }
        ]
    }
)
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_documented_and_none_is_a_server_error(
    case: Any, served: LiveServer, seeded: Seeded
) -> None:
    seeded.aim(case)
    case.call_and_validate(
        base_url=served.url, headers=seeded.headers_for(case.path), checks=CHECKS
    )


def test_served_document_is_this_one(served: LiveServer) -> None:
    assert httpx.get(f"{served.url}/openapi.json").json() == DOCUMENT
