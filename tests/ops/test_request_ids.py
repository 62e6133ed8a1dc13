"""The request id: taken from `X-Request-ID` when usable, else made; echoed; kept with the
outbox messages a request causes; and the log formats that show it."""

import json
import logging
from datetime import datetime, timedelta

from sqlalchemy import select

from app.logs import REQUEST_ID, RequestIdFilter, logging_config
from app.webhooks.models import WebhookMessage
from tests.factories import basic_auth, bearer


async def test_a_usable_request_id_is_echoed_and_another_is_replaced(client, site):
    r = await client.get("/health/live", headers={"X-Request-ID": "shop-42.a:b"})
    assert r.headers["x-request-id"] == "shop-42.a:b"
    made = set()
    for sent in ("x" * 129, "two words", "<script>", None):
        headers = {"X-Request-ID": sent} if sent is not None else {}
        r = await client.get("/health/live", headers=headers)
        made.add(r.headers["x-request-id"])
        assert len(r.headers["x-request-id"]) == 32
    assert len(made) == 4  # a new one each time
    # Error answers carry it too.
    r = await client.post("/v1/batch", auth=basic_auth("wk_nope"), json={"batch": []})
    assert r.status_code == 401
    assert len(r.headers["x-request-id"]) == 32


async def test_an_outbox_message_keeps_the_request_that_caused_it(client, site, session):
    r = await client.post(
        "/v1/webhooks", headers=bearer(site.secret_key), json={"url": "https://hooks.example/a"}
    )
    assert r.status_code == 201, r.text
    endpoint = r.json()
    r = await client.post(
        f"/v1/webhooks/{endpoint['id']}/test",
        headers={**bearer(site.secret_key), "X-Request-ID": "test-message-1"},
    )
    assert r.status_code == 202, r.text
    r = await client.post(
        "/v1/track",
        auth=basic_auth(site.write_key),
        json={"event": "Contact Requested", "anonymousId": "v", "properties": {"phone": "+7"}},
        headers={"X-Request-ID": "contact-form-9"},
    )
    assert r.status_code == 200, r.text
    messages = {
        m.event_type: m.request_id
        for m in await session.scalars(select(WebhookMessage).order_by(WebhookMessage.created_at))
    }
    assert messages["webhook.test"] == "test-message-1"
    assert messages["lead.hot"] == "contact-form-9"  # written by the group commit


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("app.x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    record.__dict__.update(extra)
    return record


def test_records_get_the_current_request_id_unless_they_have_one():
    token = REQUEST_ID.set("req-1")
    try:
        plain, own = _record(), _record(request_id="other")
        RequestIdFilter().filter(plain)
        RequestIdFilter().filter(own)
    finally:
        REQUEST_ID.reset(token)
    assert plain.request_id == "req-1"  # type: ignore[attr-defined]
    assert own.request_id == "other"  # type: ignore[attr-defined]
    outside = _record()
    RequestIdFilter().filter(outside)
    assert not hasattr(outside, "request_id")


def _formatter(log_format: str) -> logging.Formatter:
    spec = dict(logging_config("info", log_format)["formatters"]["default"])
    factory = spec.pop("()")
    module, _, name = factory.rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    return cls(**spec)  # type: ignore[no-any-return]


def test_the_json_format_is_one_object_with_the_extra_fields():
    line = _formatter("json").format(_record(request_id="r", status=200, color_message="x"))
    body = json.loads(line)
    assert body["message"] == "hello you"
    assert body["level"] == "INFO"
    assert body["logger"] == "app.x"
    assert datetime.fromisoformat(body["time"]).utcoffset() == timedelta(0)
    assert (body["request_id"], body["status"]) == ("r", 200)
    assert "color_message" not in body  # uvicorn's coloured copy of the message
    assert "\n" not in line


def test_the_text_format_appends_the_extra_fields():
    line = _formatter("text").format(_record(request_id="r", status=200))
    assert "app.x: hello you" in line
    assert line.endswith("request_id=r status=200")


def test_auto_is_json_when_stderr_is_not_a_terminal():
    # Under pytest stderr is captured, not a terminal.
    assert logging_config("info", "auto")["formatters"]["default"]["()"].endswith("JsonFormatter")
