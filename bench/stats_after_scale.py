"""The dashboard reads after bench/scale.py, on its database, timed in-process (no HTTP): the
funnel from its rollup and counted from the leads, speed to lead, the status filter; then a
refresher pass ahead of time and the funnel with the deltas it wrote, and a rollup pass.

    .venv/bin/python bench/stats_after_scale.py
"""

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from app.background import BackgroundContext
from app.config import Settings
from app.db import make_engine, make_sessionmaker, writer
from app.leads import rollup, service, stats
from app.scoring.rescoring import refresh_temperatures
from app.scoring.scorer import RuleSetCache
from app.webhooks.consumer import WebhookConsumer
from bench.timing import line, timed

URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/leadheat_bench_stats"


async def main() -> None:
    settings = Settings(database_url=URL)
    engine = make_engine(settings)
    sm = make_sessionmaker(engine)
    async with sm() as s:
        site = await s.scalar(
            text("select site_id from leads group by site_id order by count(*) desc limit 1")
        )
        print(
            "leads",
            await s.scalar(text("select count(*) from leads where site_id=:s"), {"s": site}),
        )
        print("deltas before pass", await s.scalar(text("select count(*) from funnel_deltas")))
    t = time.perf_counter()
    steps = await rollup.roll_up(engine, datetime.now(UTC))
    print(f"rollup pass: {(time.perf_counter() - t) * 1000:.0f} ms, {steps} steps")
    t = time.perf_counter()
    steps = await rollup.roll_up(engine, datetime.now(UTC))
    print(f"rollup pass, nothing changed: {(time.perf_counter() - t) * 1000:.1f} ms, {steps} steps")
    now = datetime.now(UTC)

    async def funnel() -> None:
        async with sm() as s:
            await stats.funnel(s, site, now - timedelta(days=30), now)

    async def live() -> None:
        async with sm() as s:
            await s.execute(stats.live_funnel_rows(site, now - timedelta(days=30), now))

    async def speed() -> None:
        async with sm() as s:
            await stats.speed_to_lead(
                s, site, now - timedelta(days=30), now, settings.webhooks, now
            )

    async def won() -> None:
        async with sm() as s:
            await service.page_keys(
                s, site, service.LeadFilter(statuses=("won",)), "score", 51, None
            )

    print(line("funnel, rollup (default 30 days)", await timed(funnel)))
    print(line("funnel, counted from the leads (before)", await timed(live, 5)))
    print(line("speed to lead", await timed(speed)))
    print(line("status=won page keys", await timed(won)))
    rs = RuleSetCache(settings.scoring.rule_set_cache_seconds)
    ctx = BackgroundContext(
        settings,
        engine,
        make_sessionmaker(writer(engine)),
        rs,
        lead_changes=WebhookConsumer(settings.webhooks, rs),
    )
    written = await refresh_temperatures(ctx, datetime.now(UTC) + timedelta(hours=12))
    async with sm() as s:
        print(
            "refresher pass 12h ahead wrote",
            written,
            "; deltas now",
            await s.scalar(text("select count(*) from funnel_deltas")),
        )
    print(line("funnel, rollup + those deltas", await timed(funnel)))
    t = time.perf_counter()
    steps = await rollup.roll_up(engine, datetime.now(UTC))
    print(f"rollup pass folding them: {(time.perf_counter() - t) * 1000:.0f} ms")
    async with sm() as s:
        a = await stats.funnel(s, site, now - timedelta(days=30), now)
        rows = [
            tuple(r)
            for r in await s.execute(stats.live_funnel_rows(site, now - timedelta(days=30), now))
        ]
        print("rollup == leads:", a == stats.summarize_funnel(rows, now - timedelta(days=30), now))
    await engine.dispose()


asyncio.run(main())
