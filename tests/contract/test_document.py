"""The OpenAPI document itself: every route the app serves is in it (or deliberately left out),
with a typed answer, its error answers in the one error shape and its key; `info.version` is
the package's; the rule set's JSON Schema is the one an editor can check a rule set with."""

import copy
from importlib import metadata
from typing import Any

import jsonschema_rs
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from app.config import Settings
from app.main import create_app
from app.scoring.defaults import DEFAULT_RULE_SET
from app.scoring.rule_set_schema import rule_set_json_schema
from app.scoring.schemas import RuleSetInvalid, parse_rule_set
from tests.factories import bearer

APP = create_app(Settings(database_url="sqlite+aiosqlite://"))
DOCUMENT = APP.openapi()

# Served, and deliberately not in the document: the same calls under other names (Segment's
# short paths, its `/import`, RudderStack's trailing slash), CORS preflights, and pages.
LEFT_OUT = {
    *(f"POST /v1/{short}" for short in ("t", "p", "s", "i", "a", "g", "b", "import")),
    "GET /sourceConfig/",
    *("GET /", "HEAD /", "GET /dashboard", "HEAD /dashboard"),
    *("GET /dashboard/assets/{name}", "HEAD /dashboard/assets/{name}"),
    *("GET /tracker.js", "HEAD /tracker.js"),
    *("GET /tracker/{version}.js", "HEAD /tracker/{version}.js"),
    *("GET /docs", "GET /redoc", "GET /docs/assets/{name}", "HEAD /docs/assets/{name}"),
    *("GET /openapi.json", "HEAD /openapi.json"),
}
LEFT_OUT_METHODS = {"OPTIONS"}  # CORS preflights, answered for any path that takes them
# Routes that take no key: probes, the tracking libraries' settings (the key is the path), and
# the dashboard's sign-in.
PUBLIC = {
    "GET /health",
    "GET /health/live",
    "GET /health/ready",
    "GET /v1/projects/{write_key}/settings",
    "POST /v1/session",  # signing in: email and password in the body
    # One-click links in alerts: the signed link in the path is the credential.
    "GET /v1/actions/{token}",
    "POST /v1/actions/{token}",
}
NO_ERRORS = {"GET /health/live"}  # answers from the process alone: nothing to refuse
NO_BODY = {"204", "304"}
ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}


def _served(routes: list[BaseRoute]) -> list[tuple[str, BaseRoute]]:
    """Every (METHOD path) the app answers, with its route (included routers flattened, as
    FastAPI does for its document); a route without methods (a mount) is named `* path`."""
    return [
        (f"{method} {context.path_format}", context.original_route)
        for context in iter_route_contexts(routes)
        for method in sorted(context.methods or {"*"})
        if method not in LEFT_OUT_METHODS
    ]


def _operations() -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": operation
        for path, operations in DOCUMENT["paths"].items()
        for method, operation in operations.items()
    }


def _untyped(schema: dict[str, Any]) -> bool:
    """An object of anything (`dict[str, Any]`): says nothing of the answer."""
    return schema.get("type") == "object" and not schema.get("properties") and "$ref" not in schema


def _problems(name: str, operation: dict[str, Any]) -> list[str]:
    problems = []
    answers = operation["responses"]
    successes = [status for status in answers if status.startswith("2")]
    if not successes:
        problems.append("no 2xx answer")
    for status in successes:
        content = answers[status].get("content")
        if status in NO_BODY:
            if content:
                problems.append(f"{status} documents a body")
            continue
        if not content:
            problems.append(f"{status}: no content documented (a model, or its media type)")
        elif "application/json" in content:
            schema = content["application/json"].get("schema")
            if not schema or schema.get("type") == "string" or _untyped(schema):
                problems.append(f"{status}: no JSON model (schema {schema}); set response_model")
        elif not all(media.get("schema") for media in content.values()):
            problems.append(f"{status}: a media type without a schema")
    errors = [status for status in answers if status[0] in "45"]
    if not errors and name not in NO_ERRORS:
        problems.append("no error answer: add responses=errors(...) (app/openapi.py)")
    for status in errors:
        schema = answers[status].get("content", {}).get("application/json", {}).get("schema")
        if schema != ERROR_BODY:
            problems.append(f"{status} is not the ErrorBody shape: use errors({status})")
    security = operation.get("security")
    if name in PUBLIC:
        if security:
            problems.append("a public route declares a key")
    else:
        if not security:
            problems.append(
                "no security: depend on the secret key (SecretSiteDep) or declare WRITE_KEY,"
                " or, if it takes no key, add it to PUBLIC in this test"
            )
        elif "secretKey" in {key for need in security for key in need}:
            missing = {"401", "403", "503"} - set(answers)
            if missing:
                problems.append(f"secret-key route without {sorted(missing)}")
        if "401" not in answers:
            problems.append("takes a key but documents no 401")
    if "requestBody" in operation:
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        if not body or _untyped(body):
            problems.append("the request body is an untyped object")
    return problems


def test_every_route_is_in_the_document_typed_with_its_errors_and_key() -> None:
    operations = _operations()
    problems = []
    for name, route in _served(APP.routes):
        if name in LEFT_OUT:
            continue
        if name not in operations:
            hidden = isinstance(route, APIRoute) and not route.include_in_schema
            why = "include_in_schema=False" if hidden else "not an APIRoute"
            problems.append(f"{name}: served but not in the OpenAPI document ({why}); document it"
                            " or add it to LEFT_OUT in this test with the reason")  # fmt: skip
            continue
        problems += [f"{name}: {problem}" for problem in _problems(name, operations[name])]
    assert not problems, "\n".join(problems)
    # And nothing in the document that is not served.
    assert set(operations) <= {name for name, _ in _served(APP.routes)}


def test_the_one_error_shape_and_no_fastapi_validation_error() -> None:
    text = str(DOCUMENT)
    assert "HTTPValidationError" not in text
    assert set(DOCUMENT["components"]["schemas"]["ErrorBody"]["required"]) == {
        "code",
        "message",
        "details",
    }


def test_security_schemes_are_declared() -> None:
    schemes = DOCUMENT["components"]["securitySchemes"]
    assert schemes["writeKey"] == {**schemes["writeKey"], "type": "http", "scheme": "basic"}
    assert schemes["secretKey"] == {**schemes["secretKey"], "type": "http", "scheme": "bearer"}
    operations = _operations()
    assert operations["POST /v1/batch"]["security"] == [{"writeKey": []}]
    assert schemes["personalToken"] == {
        **schemes["personalToken"],
        "type": "http",
        "scheme": "bearer",
    }
    assert schemes["session"] == {**schemes["session"], "type": "apiKey", "in": "cookie"}
    # Alternatives: the secret key, a person's token, or a signed-in session.
    people: list[dict[str, list[str]]] = [{"secretKey": []}, {"personalToken": []}, {"session": []}]
    assert operations["PUT /v1/rules"]["security"] == people
    assert operations["GET /v1/me"]["security"] == people
    assert "security" not in operations["POST /v1/session"]


def _body(operation: dict[str, Any]) -> dict[str, Any]:
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return DOCUMENT["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_every_segment_call_and_the_batch_have_a_typed_body() -> None:
    operations = _operations()
    for call in ("track", "page", "screen", "identify", "alias", "group"):
        schema = _body(operations[f"POST /v1/{call}"])
        assert {"type", "anonymousId", "userId", "timestamp", "context", "writeKey"} <= set(
            schema["properties"]
        )
        assert schema["properties"]["type"]["const"] == call
    assert _body(operations["POST /v1/track"])["required"] == ["event"]
    assert _body(operations["POST /v1/alias"])["required"] == ["previousId", "userId"]
    batch = _body(operations["POST /v1/batch"])
    assert batch["required"] == ["batch"]
    assert batch["properties"]["batch"]["items"] == {"$ref": "#/components/schemas/SegmentMessage"}


def test_info_version_is_the_package_version() -> None:
    assert DOCUMENT["info"]["version"] == metadata.version("leadheat")


def test_each_webhook_event_type_has_its_payload_schema() -> None:
    from app.webhooks.outbox import EVENT_TYPES, WEBHOOK_TEST

    webhooks = DOCUMENT["webhooks"]
    assert set(webhooks) == {*EVENT_TYPES, WEBHOOK_TEST}
    for event_type, item in webhooks.items():
        ref = item["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = DOCUMENT["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert schema["properties"]["type"]["const"] == event_type
        headers = {p["name"] for p in item["post"]["parameters"]}
        assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}


# --- the rule set's JSON Schema -------------------------------------------------------------


def _validator() -> Any:
    return jsonschema_rs.validator_for(rule_set_json_schema())


def _with(change: dict[str, Any]) -> dict[str, Any]:
    return {**copy.deepcopy(DEFAULT_RULE_SET), **change}


def test_the_default_rule_set_and_every_example_in_the_schema_are_valid() -> None:
    schema = rule_set_json_schema()
    validator = jsonschema_rs.validator_for(schema)
    assert validator.is_valid(DEFAULT_RULE_SET)
    # The rule examples the schema shows an editor: valid to the schema and to the service.
    rules = {"BehaviourRule": "behaviour", "HardRule": "hard"}
    rules |= {fit: "fit" for fit in ("MatchFit", "RangeFit", "ContactsFit")}
    for model, rule_list in rules.items():
        examples = schema["$defs"][model]["examples"]
        assert examples, model
        for example in examples:
            document = _with({rule_list: [example]})
            assert validator.is_valid(document), (model, example)
            parse_rule_set({**document, "version": 1})


@pytest.mark.parametrize(
    "change",
    [
        {"frequncy": "every_time"},  # a typo
        {"fit": [{"id": "f", "type": "distance", "weight": 1, "options": []}]},
        {"behaviour": [{"id": "b", "event": "A", "points": 1, "half_life": "soon"}]},
        {"behaviour": [{"id": "B!", "event": "A", "points": 1}]},
        {"behaviour": [{"id": "b", "event": "A", "points": 1,
                        "conditions": [{"field": "url", "op": "gt", "value": "x"}]}]},
        {"behaviour": [{"id": "b", "event": "A", "points": 1,
                        "conditions": [{"field": "price", "op": "eq", "value": 1}]}]},
        {"behaviour": [{"id": "b", "event": "A", "points": 1,
                        "conditions": [{"field": "url", "op": "in", "value": []}]}]},
        {"fit": [{"id": "f", "type": "match", "field": "shoe_size", "weight": 1,
                  "options": [{"values": ["42"], "coefficient": 1}]}]},
        {"fit": [{"id": "f", "type": "range", "field": "visits", "weight": 1,
                  "bands": [{"min": 1, "coefficient": 2}]}]},
        {"thresholds": {"warm": 30}},
        {"decay": {"half_life": -5}},
    ],
)  # fmt: skip
def test_what_the_schema_rejects_the_service_rejects(change: dict[str, Any]) -> None:
    document = _with(change)
    assert not _validator().is_valid(document)
    with pytest.raises(RuleSetInvalid):
        parse_rule_set({**document, "version": 1})


@pytest.mark.parametrize(
    "change",
    [
        {"decay": {"half_life": "1h 30m"}},
        {"decay": {"half_life": 3600}},
        {"min_hold": "2W"},
        {"behaviour": [{"id": "b", "event": "A", "points": 1, "half_life": "never"}]},
        {"behaviour": [{"id": "b", "event": "A", "points": 1,
                        "conditions": [{"field": "properties.price", "op": "gte", "value": 10},
                                       {"field": "properties.tags.main", "op": "exists"},
                                       {"field": "url", "op": "matches", "value": "^/p/"},
                                       {"field": "visit", "op": "in", "value": [1, 2]}]}]},
        {"fit": [{"id": "f", "type": "match", "field": "traits.industry", "weight": 5,
                  "options": [{"values": ["retail"], "coefficient": 0.5}]}]},
    ],
)  # fmt: skip
def test_what_the_service_takes_the_schema_takes(change: dict[str, Any]) -> None:
    document = _with(change)
    parse_rule_set({**document, "version": 1})
    assert _validator().is_valid(document), list(_validator().iter_errors(document))


async def test_the_served_rule_set_schema_is_the_models_and_takes_the_active_rule_set(
    client, site
) -> None:
    answer = await client.get("/v1/rules/schema", headers=bearer(site.secret_key))
    assert answer.status_code == 200
    assert answer.json() == rule_set_json_schema()
    active = (await client.get("/v1/rules", headers=bearer(site.secret_key))).json()
    assert jsonschema_rs.validator_for(answer.json()).is_valid(active)
    assert (await client.get("/v1/rules/schema")).status_code == 401
