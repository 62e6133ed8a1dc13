"""Timer lag: how late a due timer is taken up, observed when the timer loop claims it."""

from datetime import timedelta

import pytest

from app.config import Settings
from app.metrics import exposition
from app.webhooks.timers import TimerService
from tests.factories import send, track
from tests.ops.helpers import moved, parse
from tests.webhooks.conftest import webhook_settings


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"run_background": False})  # the test fires the timers


async def test_a_first_contact_timer_taken_up_late_observes_its_lag(
    client, site, db_engine, clock, monkeypatch
):
    monkeypatch.setattr("app.webhooks.consumer.utcnow", clock)
    timers = TimerService(db_engine, webhook_settings(), now=clock)
    hot_at = clock.now.replace(microsecond=0)
    await send(client, site, track("v", "Contact Requested", timestamp=hot_at.isoformat()))
    before = parse(exposition().decode())
    # The overdue timer was due at 5 minutes; the loop takes it up 90 s late.
    clock.now = hot_at + timedelta(minutes=5, seconds=90)
    assert await timers.run_once() == 1
    after = parse(exposition().decode())
    lag = {"kind": "first_contact"}
    assert moved(before, after, "leadheat_timer_lag_seconds_count", **lag) == 1
    assert moved(before, after, "leadheat_timer_lag_seconds_sum", **lag) == 90
    assert moved(before, after, "leadheat_timer_lag_seconds_bucket", le="60.0", **lag) == 0
    assert moved(before, after, "leadheat_timer_lag_seconds_bucket", le="120.0", **lag) == 1
