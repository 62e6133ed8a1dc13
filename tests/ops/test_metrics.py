"""`GET /metrics` of a real server after real traffic: each counter moved by what was sent,
the histograms observed, webhook attempts after a real delivery, the database gauges."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from app.config import MetricsSettings
from app.db import make_engine
from app.main import create_app
from app.monitoring import DatabaseGauges
from app.webhooks.attempt import AttemptOutcome
from app.webhooks.delivery_loop import outcome_label
from tests.conftest import LiveServer, make_settings
from tests.factories import basic_auth, bearer
from tests.helpers import wait_until
from tests.ops.helpers import moved, scrape, value
from tests.webhooks.conftest import webhook_settings

CRAWLER = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


def _batch(url: str, site, events: list[Any], **headers: str) -> dict:
    r = httpx.post(
        f"{url}/v1/batch", auth=basic_auth(site.write_key), json={"batch": events}, headers=headers
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_ingestion_counters_move_by_what_was_sent(live_server, site):
    url = live_server.url
    before = scrape(url)
    events = [
        {"type": "track", "event": "Product Viewed", "anonymousId": "a", "messageId": "m1"},
        {"type": "page", "anonymousId": "b", "messageId": "m2"},
        {"type": "page", "anonymousId": "c", "messageId": "m3",
         "context": {"userAgent": CRAWLER}},
        {"type": "track", "anonymousId": "d"},  # no event name: rejected
        "not an event",  # rejected
    ]  # fmt: skip
    first = _batch(url, site, events)
    assert (first["accepted"], first["bots"], first["rejected"]) == (3, 1, 2)
    again = _batch(url, site, events[:2])  # a client's retry: both duplicates
    assert again["duplicates"] == 2
    single = httpx.post(f"{url}/v1/track", auth=basic_auth(site.write_key), json={"x": 1})
    assert single.status_code == 400
    after = scrape(url)

    assert moved(before, after, "leadheat_events_accepted_total") == 3
    assert moved(before, after, "leadheat_events_duplicate_total") == 2
    assert moved(before, after, "leadheat_events_crawler_total") == 1
    assert moved(before, after, "leadheat_events_rejected_total", reason="invalid_event") == 3
    # Two groups committed (the single call stored nothing), of 3 and 2 events.
    assert moved(before, after, "leadheat_ingest_group_events_count") == 2
    assert moved(before, after, "leadheat_ingest_group_events_sum") == 5
    assert moved(before, after, "leadheat_ingest_group_commit_seconds_count") == 2
    assert moved(before, after, "leadheat_ingest_group_commit_seconds_sum") > 0
    # Requests by route template, not by path.
    batch = {"method": "POST", "route": "/v1/batch"}
    assert moved(before, after, "leadheat_http_requests_total", **batch, status="200") == 2
    assert moved(before, after, "leadheat_http_request_duration_seconds_count", **batch) == 2
    assert moved(
        before, after, "leadheat_http_requests_total", method="POST", route="/v1/track",
        status="400",
    ) == 1  # fmt: skip


def test_suppressed_and_consent_refused_events_are_counted_not_accepted(live_server, site):
    url = live_server.url
    erased = httpx.request(
        "DELETE", f"{url}/v1/people", headers=bearer(site.secret_key), json={"userId": "gone"}
    )
    assert erased.status_code == 200, erased.text
    before = scrape(url)
    refused = {"consent": {"categoryPreferences": {"Analytics": False}}}
    events = [
        {"type": "track", "event": "X", "userId": "gone", "messageId": "s1"},
        {"type": "track", "event": "X", "anonymousId": "a", "messageId": "s2", "context": refused},
        {"type": "track", "event": "X", "anonymousId": "b", "messageId": "s3"},
    ]
    answer = _batch(url, site, events)
    assert answer["accepted"] == 3  # neither is told apart from a stored event
    after = scrape(url)
    assert moved(before, after, "leadheat_events_suppressed_total") == 1
    assert moved(before, after, "leadheat_events_consent_refused_total") == 1
    assert moved(before, after, "leadheat_events_accepted_total") == 1


def test_requests_are_counted_by_route_template_not_path(live_server, site):
    url = live_server.url
    before = scrape(url)
    for lead_id in ("00000000-0000-0000-0000-000000000001", "00000000-0000-0000-0000-000000000002"):
        r = httpx.get(f"{url}/v1/leads/{lead_id}", headers=bearer(site.secret_key))
        assert r.status_code == 404
    assert httpx.get(f"{url}/no/such/{lead_id}").status_code == 404
    after = scrape(url)
    lead = {"method": "GET", "route": "/v1/leads/{lead_id}", "status": "404"}
    assert moved(before, after, "leadheat_http_requests_total", **lead) == 2
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert moved(before, after, "leadheat_http_requests_total", **unmatched) == 1
    assert not [key for key in after if "00000000" in str(key)]


def test_a_real_delivery_counts_a_successful_attempt(database_url, db_engine, site, receiver):
    settings = make_settings(database_url, webhooks=webhook_settings(poll_seconds=0.2))
    with LiveServer(create_app(settings)) as server:
        url = server.url
        r = httpx.post(
            f"{url}/v1/webhooks",
            headers=bearer(site.secret_key),
            json={"url": receiver.url, "event_types": ["lead.hot"]},
        )
        assert r.status_code == 201, r.text
        before = scrape(url)
        _batch(url, site, [{"type": "track", "event": "Contact Requested", "anonymousId": "v",
                            "properties": {"phone": "+7 900"}}])  # fmt: skip

        def attempted() -> dict | None:
            """the attempt is counted"""
            after = scrape(url)
            return after if moved(before, after, "leadheat_webhook_attempts_total",
                                  outcome="success") else None  # fmt: skip

        after = wait_until(attempted)
    assert len(receiver.received) == 1
    assert moved(before, after, "leadheat_webhook_attempts_total", outcome="success") == 1
    assert moved(before, after, "leadheat_webhook_attempts_total", outcome="http_error") == 0
    assert moved(before, after, "leadheat_webhook_attempt_duration_seconds_count") == 1


def test_database_gauges(database_url, db_engine, site):
    """Leads by temperature, overdue first contacts and the outbox, read from the database
    (no background loops: the delivery waits, due)."""
    settings = make_settings(
        database_url, run_background=False, metrics=MetricsSettings(database_cache_seconds=0)
    )
    with LiveServer(create_app(settings)) as server:
        url = server.url
        empty = scrape(url)
        assert value(empty, "leadheat_leads", temperature="hot") == 0
        assert value(empty, "leadheat_metrics_database_up") == 1
        r = httpx.post(
            f"{url}/v1/webhooks",
            headers=bearer(site.secret_key),
            json={"url": "https://hooks.example/x", "event_types": ["lead.hot"]},
        )
        assert r.status_code == 201, r.text
        long_ago = (datetime.now(UTC) - timedelta(minutes=20)).isoformat()
        _batch(url, site, [
            {"type": "track", "event": "Contact Requested", "anonymousId": "hot",
             "properties": {"phone": "+7 900"}, "timestamp": long_ago},
            {"type": "page", "anonymousId": "cold-1"},
            {"type": "page", "anonymousId": "cold-2"},
        ])  # fmt: skip
        got = scrape(url)
    assert value(got, "leadheat_leads", temperature="hot") == 1
    assert value(got, "leadheat_leads", temperature="warm") == 0
    assert value(got, "leadheat_leads", temperature="cold") == 2
    assert value(got, "leadheat_first_contacts_overdue") == 1
    assert value(got, "leadheat_webhook_outbox_pending") == 1
    assert value(got, "leadheat_webhook_outbox_oldest_pending_age_seconds") > 0


def test_database_gauges_are_read_at_most_once_a_cache_period(database_url, db_engine, site):
    settings = make_settings(
        database_url, run_background=False, metrics=MetricsSettings(database_cache_seconds=3600)
    )
    with LiveServer(create_app(settings)) as server:
        assert value(scrape(server.url), "leadheat_leads", temperature="cold") == 0
        _batch(server.url, site, [{"type": "page", "anonymousId": "x"}])
        # Within the hour the scrape shows the read before; the counters move at once.
        again = scrape(server.url)
    assert value(again, "leadheat_leads", temperature="cold") == 0
    assert value(again, "leadheat_events_accepted_total") >= 1


def test_the_metrics_token_guards_metrics(database_url, db_engine):
    settings = make_settings(database_url, metrics=MetricsSettings(token=SecretStr("s3cret")))
    with LiveServer(create_app(settings)) as server:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            r = httpx.get(f"{server.url}/metrics", headers=headers)
            assert r.status_code == 401
            assert r.json()["code"] == "unauthorized"
        assert scrape(server.url, headers={"Authorization": "Bearer s3cret"})


def test_the_grafana_dashboard_queries_only_metrics_that_exist(live_server, repo_root: Path):
    dashboard = json.loads((repo_root / "docs" / "grafana-leadheat.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert exprs
    queried = {name for expr in exprs for name in re.findall(r"\bleadheat_[a-z_]+", expr)}
    served: set[str] = set()
    text = httpx.get(f"{live_server.url}/metrics").text
    for family in text_string_to_metric_families(text):
        suffixes = {
            "counter": ["_total"],
            "histogram": ["_bucket", "_sum", "_count"],
        }.get(family.type, [""])
        served.update(family.name + suffix for suffix in suffixes)
    assert queried - served == set()
    assert len(queried) >= 12


def test_attempt_outcomes_are_a_small_fixed_set():
    def outcome(status: int | None, error: str | None = None) -> str:
        return outcome_label(AttemptOutcome(status, None, error, 1.0))

    assert outcome(204) == "success"
    assert outcome(500) == "http_error"
    assert outcome(410) == "http_error"
    assert outcome(None, "timeout") == "timeout"
    assert outcome(None, "refused: 10.0.0.1 is not a public address") == "refused"
    assert outcome(None, "ConnectError: [Errno 111] Connection refused") == "network_error"
    assert outcome(None, "connection error: reset") == "network_error"


async def test_an_unreadable_database_leaves_its_gauges_out(tmp_path):
    engine = make_engine(make_settings(f"sqlite+aiosqlite:///{tmp_path}/missing/x.db"))
    try:
        families = await DatabaseGauges(engine, cache_seconds=0).families()
    finally:
        await engine.dispose()
    [up] = families
    assert up.name == "leadheat_metrics_database_up"
    assert up.samples[0].value == 0
