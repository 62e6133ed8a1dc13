"""An app that has served and shut down is released: nothing process-wide (FastAPI's caches of
endpoint callables, metrics, loggers) keeps it, so a process that builds many apps (the test
suite, an embedding host) does not grow with each one."""

import gc
import weakref

import httpx

from app.config import Settings
from app.main import create_app


async def test_an_app_is_released_after_serving(settings: Settings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path in ("/health/live", "/health/ready", "/v1/leads", "/openapi.json"):
                assert (await client.get(path)).status_code in (200, 401)
    ref = weakref.ref(app)
    del app, transport, client
    gc.collect()
    assert ref() is None, [type(r).__name__ for r in gc.get_referrers(ref())]
