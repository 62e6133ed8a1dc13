"""A shop's traffic against a real server: hundreds of visitors' sessions (browsing, carts,
orders, identifies, cross-device merges, aliases, crawlers, retried events) sent by concurrent
clients as single calls and mixed batches, then the invariants of `invariants.py` checked in
the database the server wrote."""

from datetime import UTC, datetime

import httpx
import pytest

from app.config import IngestionSettings, ScoringSettings, Settings, WebhookSettings
from tests.factories import create_site
from tests.simulation.deliveries import undelivered
from tests.simulation.driver import send_plan
from tests.simulation.invariants import check
from tests.simulation.plan import make_plan
from tests.simulation.receiver import receiving
from tests.simulation.report import KNOWN_DEFECTS

SEED = 20261129
VISITORS = 300
LANES = 12


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        create_demo_site=False,
        ingestion=IngestionSettings(write_key_cache_seconds=0),
        # The refresher re-evaluates leads at the wall clock; off here, so that each lead's
        # score is the one its last event gave (the replay's).
        scoring=ScoringSettings(rule_set_cache_seconds=0, refresh_interval_seconds=86400),
        webhooks=WebhookSettings(allow_private_networks=True, poll_seconds=0.2),
    )


async def test_shop_traffic_keeps_every_invariant(settings, session, db_engine, live_server):
    site = await create_site(session)
    with receiving() as receiver:
        await _traffic(site, live_server, receiver, settings, db_engine)


async def _traffic(site, live_server, receiver, settings, db_engine) -> None:
    async with httpx.AsyncClient(base_url=live_server.url) as api:
        r = await api.post(
            "/v1/webhooks",
            headers={"authorization": f"Bearer {site.secret_key}"},
            json={"url": receiver.url},
        )
        assert r.status_code == 201, r.text
    plan = make_plan(SEED, VISITORS, LANES, datetime.now(UTC))

    outcome = await send_plan(live_server.url, site.write_key, plan)
    report = await check(db_engine, site.site.id, plan, outcome, settings)
    report.violations["webhooks_delivered"] = await undelivered(db_engine, site.site.id, receiver)

    print(f"{outcome.events_sent} events in {outcome.seconds:.1f} s", report.stats)
    for name in report.violations:
        if name not in KNOWN_DEFECTS:
            assert not report.violations[name], (name, report.violations[name][:10])
    found = {name: report.violations[name][:2] for name in KNOWN_DEFECTS}
    if any(found.values()):
        pytest.xfail("; ".join(f"defect: {KNOWN_DEFECTS[n]}: {v}" for n, v in found.items() if v))
