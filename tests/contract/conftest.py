"""A real server with one site and one of each resource (a lead, a webhook endpoint, a
webhook message, a re-scoring job), for the contract tests to hit with generated requests."""

import base64
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import HttpSettings, Settings
from app.main import create_app
from app.sites.service import CreatedSite
from tests.conftest import LiveServer, make_settings
from tests.factories import create_site

INGESTION_PATHS = (
    *("/v1/batch", "/v1/track", "/v1/page", "/v1/screen", "/v1/identify"),
    *("/v1/alias", "/v1/group"),
)


@dataclass
class Seeded:
    """The site's keys and the ids of what exists, to aim some generated requests at them."""

    write_key: str
    secret_key: str
    ids: dict[str, str | int] = field(default_factory=dict)

    def headers_for(self, path: str) -> dict[str, str]:
        if path in INGESTION_PATHS:
            basic = base64.b64encode(f"{self.write_key}:".encode()).decode()
            return {"Authorization": f"Basic {basic}"}
        return {"Authorization": f"Bearer {self.secret_key}"}

    def aim(self, case: Any) -> None:
        """Half of the well-formed ids become ids that exist (random ones are only 404s)."""
        for name, value in (case.path_parameters or {}).items():
            if name in self.ids and isinstance(value, str | int) and hash(value) % 2 == 0:
                case.path_parameters[name] = self.ids[name]


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    # No background loops: the generated webhooks must not be delivered anywhere. A readiness
    # probe that waits longer than production's: on a loaded CI machine a new engine's first
    # connection has taken over 2 s, and a 503 there says nothing about the contract.
    # The Bot API at a closed local port: setting a bot is refused at once, off the network.
    return make_settings(
        database_url,
        run_background=False,
        http=HttpSettings(health_timeout_seconds=15.0),
        telegram_api_base="http://127.0.0.1:9",
    )


@pytest.fixture
async def contract_site(session: Any) -> CreatedSite:
    return await create_site(session)


@pytest.fixture(scope="module")
def served(settings: Settings, db_engine: AsyncEngine) -> Iterator[LiveServer]:
    """One server per module and database: an app holds nothing a test could leave behind
    (its caches are keyed by site, and each test has a new site in emptied tables)."""
    with LiveServer(create_app(settings)) as server:
        yield server


@pytest.fixture
def seeded(served: LiveServer, contract_site: CreatedSite) -> Seeded:
    seeded = Seeded(contract_site.write_key, contract_site.secret_key)
    with httpx.Client(base_url=served.url, timeout=30) as http:
        track = {"type": "track", "event": "Product Viewed", "anonymousId": "contract-a"}
        answer = http.post(
            "/v1/batch", json={"batch": [track]}, headers=seeded.headers_for("/v1/batch")
        )
        assert answer.json()["accepted"] == 1, answer.text
        secret = seeded.headers_for("/v1/leads")
        leads = http.get("/v1/leads", headers=secret).json()["data"]
        endpoint = http.post(
            "/v1/webhooks", json={"url": "https://example.com/hook"}, headers=secret
        ).json()
        message = http.post(f"/v1/webhooks/{endpoint['id']}/test", headers=secret).json()
        rule_set = http.get("/v1/rules", headers=secret).json()
        job = http.put("/v1/rules", json=rule_set, headers=secret).json()["job"]
    seeded.ids = {
        "lead_id": leads[0]["id"],
        "endpoint_id": endpoint["id"],
        "message_id": message["message_id"],
        "job_id": job["id"],
        "version": 1,
    }
    assert all(uuid.UUID(str(seeded.ids[k])) for k in ("lead_id", "endpoint_id", "job_id"))
    return seeded
