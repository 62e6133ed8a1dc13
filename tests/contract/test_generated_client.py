"""A client generated from the OpenAPI document by a maintained generator
(openapi-python-client), in the test run: it generates without a warning, type-checks with
mypy, and drives a real server through what a shop's backend does (send an event, list
leads, move a lead on, publish a rule set, create a webhook)."""

import base64
import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.config import Settings
from app.domain.tables import Lead
from app.main import create_app
from app.scoring.models import RuleSetVersion
from app.webhooks.models import WebhookEndpoint
from tests.conftest import LiveServer

BIN = Path(sys.executable).parent
PACKAGE = "leadheat_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The client package, generated from the document the server serves, on sys.path."""
    root = tmp_path_factory.mktemp("generated")
    document = create_app(Settings(database_url="sqlite+aiosqlite://")).openapi()
    (root / "openapi.json").write_text(json.dumps(document))
    # No post hooks: the generator would run ruff over its output (style, not correctness).
    (root / "config.yaml").write_text(f"post_hooks: []\npackage_name_override: {PACKAGE}\n")
    done = subprocess.run(
        [BIN / "openapi-python-client", "generate", "--path", root / "openapi.json",
         "--config", root / "config.yaml", "--meta", "none", "--fail-on-warning",
         "--output-path", root / PACKAGE],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(root))
    try:
        yield root
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def test_the_generated_client_type_checks(generated: Path) -> None:
    done = subprocess.run(
        [BIN / "mypy", "--no-incremental", "--ignore-missing-imports", PACKAGE],
        cwd=generated, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def _api(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.api.{name}")


def _model(name: str) -> Any:
    return getattr(importlib.import_module(f"{PACKAGE}.models"), name)


async def test_the_generated_client_drives_a_real_server(
    generated: Path, live_server: LiveServer, site, session
) -> None:
    client_module = importlib.import_module(f"{PACKAGE}.client")
    basic = base64.b64encode(f"{site.write_key}:".encode()).decode()
    async with (
        client_module.AuthenticatedClient(
            base_url=live_server.url, token=site.secret_key
        ) as secret,
        client_module.AuthenticatedClient(
            base_url=live_server.url, token=basic, prefix="Basic"
        ) as writer,
    ):
        await _drive(secret, writer, session)


async def _drive(secret: Any, writer: Any, session: Any) -> None:

    # The shop's backend sends an event with the write key...
    message = _model("SegmentTrack").from_dict(
        {"event": "Product Viewed", "anonymousId": "generated-a"}
    )
    ingested = await _api("ingestion.track_v1_track_post").asyncio(client=writer, body=message)
    assert isinstance(ingested, _model("IngestResponse")), ingested
    assert ingested.accepted == 1

    # ...lists its leads and moves one on, with the secret key.
    page = await _api("leads.list_leads_v1_leads_get").asyncio(client=secret)
    assert isinstance(page, _model("LeadPage")), page
    [lead] = page.data
    update = _model("LeadUpdate").from_dict({"status": "contacted", "note": "called"})
    detail = await _api("leads.update_lead_v1_leads_lead_id_patch").asyncio(
        lead.id, client=secret, body=update
    )
    assert isinstance(detail, _model("LeadDetail")), detail
    assert detail.status == "contacted"
    stored = await session.scalar(select(Lead).where(Lead.id == lead.id))
    assert stored.status == "contacted"

    # Reads the rule set, changes it and publishes it as a new version.
    active = await _api("rules.get_active_rule_set_v1_rules_get").asyncio(client=secret)
    draft = {**active.to_dict(), "name": "Edited with a generated client"}
    body = _model("RuleSetDocument").from_dict(draft)
    published = await _api("rules.publish_rule_set_v1_rules_put").asyncio(client=secret, body=body)
    assert isinstance(published, _model("Published")), published
    assert published.version == active.version + 1
    row = await session.scalar(
        select(RuleSetVersion).where(RuleSetVersion.version == published.version)
    )
    assert row.definition["name"] == "Edited with a generated client"

    # Creates a webhook endpoint; an error comes back as the documented ErrorBody.
    create = _model("WebhookEndpointCreate").from_dict(
        {"url": "https://example.com/hooks", "event_types": ["lead.hot"]}
    )
    made = await _api("webhooks.create_endpoint_v1_webhooks_post").asyncio(
        client=secret, body=create
    )
    assert isinstance(made, _model("WebhookEndpointWithSecret")), made
    assert made.secret.startswith("whsec_")
    assert await session.scalar(select(WebhookEndpoint.url)) == "https://example.com/hooks"
    missing = await _api("leads.get_lead_v1_leads_lead_id_get").asyncio(made.id, client=secret)
    assert isinstance(missing, _model("ErrorBody")), missing
    assert missing.code == "not_found"
