"""Screenshots of the dashboard for the README: `python -m tests.browser.screenshots`.

Runs the service on a throwaway SQLite database, sends a few visitors' events (hot with the
countdown running, hot and overdue, contacted, warm, cold) to a team of an admin and two
managers, one on duty (who gets the hot leads by round-robin), and writes
docs/screenshots/dashboard-leads.png, dashboard-lead-detail.png, dashboard-rules.png (a
draft previewed, with a warning), dashboard-my-leads.png (a manager's view),
dashboard-channels.png (her notification settings, Telegram being linked),
dashboard-team.png (the team page, a manager just invited), dashboard-audiences.png (an
audience defined on the audiences page, its members) and dashboard-numbers.png (speed to
lead per person) with Debian's Chromium. The site's Telegram bot is stored directly
(nothing here reaches Telegram).
"""

import asyncio
import json
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from app import onboarding
from app.channel_actions import service as channel_service
from app.channel_actions.service import CheckedBot, digest
from app.config import IngestionSettings, ScoringSettings, Settings
from app.crypto import secret_box
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.migrate import upgrade
from app.sites import service as sites_service
from app.team import service as team_service
from app.team.schemas import WEEKDAYS, UserCreate
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, VISITOR_USER_AGENT
from tests.conftest import LiveServer

PASSWORD = "screenshots only"
ALL_DAY = {day: {"start": "00:00", "end": "23:59"} for day in WEEKDAYS}
TEAM: list[dict[str, Any]] = [
    {"email": "olga@fridges.example", "name": "Olga Petrova", "role": "admin"},
    {"email": "anna@fridges.example", "name": "Anna Smirnova", "role": "manager"},
    # Off duty: every hot lead goes to Anna, so her "My leads" is the same at every run.
    {"email": "ivan@fridges.example", "name": "Ivan Orlov", "role": "manager", "on_duty": False},
]
BOT_USERNAME = "fridges_leads_bot"
BOT_TOKEN = "123456789:screenshots-only-not-a-token"
OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SHOP = "https://fridges.example"


def product(product_id: str, name: str, category: str, price: float) -> dict[str, Any]:
    return {"product_id": product_id, "name": name, "category": category, "price": price}


FRIDGE = product("101", "Frost 300 No Frost", "fridges", 499.0)
BIG_FRIDGE = product("102", "Frost 500 XL", "fridges", 899.0)
WASHER = product("201", "Aqua 7kg", "washing machines", 399.0)
DISHWASHER = product("301", "Quiet 45", "dishwashers", 459.0)


class Visitor:
    def __init__(self, anonymous_id: str, now: datetime) -> None:
        self.anonymous_id = anonymous_id
        self.now = now
        self.events: list[dict[str, Any]] = []

    def _add(self, minutes_ago: float, path: str, **fields: Any) -> "Visitor":
        at = (self.now - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")
        self.events.append(
            {
                "messageId": str(uuid.uuid4()),
                "anonymousId": self.anonymous_id,
                "timestamp": at,
                "context": {"userAgent": VISITOR_USER_AGENT, "page": {"url": SHOP + path}},
                **fields,
            }
        )
        return self

    def page(self, minutes_ago: float, path: str) -> "Visitor":
        return self._add(minutes_ago, path, type="page", properties={"url": SHOP + path})

    def track(self, minutes_ago: float, path: str, event: str, **props: Any) -> "Visitor":
        return self._add(minutes_ago, path, type="track", event=event, properties=props)

    def identify(self, minutes_ago: float, path: str, **traits: Any) -> "Visitor":
        return self._add(minutes_ago, path, type="identify", traits=traits)


def visitors(now: datetime) -> list[Visitor]:
    anna = (
        Visitor("v-anna", now)
        .page(12, "/fridges")
        .track(11, "/fridges/101", "Product Viewed", **FRIDGE)
        .track(9, "/fridges/102", "Product Viewed", **BIG_FRIDGE)
        .track(8, "/fridges/102", "Product Added", quantity=1, **BIG_FRIDGE)
        .identify(2, "/fridges/102", phone="+7 916 555-12-34", email="anna.k@mail.example")
        .identify(2, "/fridges/102", city="Moscow")
        .track(1.5, "/fridges/102", "Contact Requested", phone="+7 916 555-12-34")
    )
    boris = (
        Visitor("v-boris", now)
        .page(30, "/washing-machines")
        .track(28, "/washing-machines/201", "Product Viewed", **WASHER)
        .track(26, "/washing-machines/201", "Product Added", quantity=1, **WASHER)
        .track(9, "/checkout", "Checkout Started", value=399.0, products=[WASHER])
        .identify(8, "/checkout", email="boris@corp.example", city="Kazan")
        .track(8, "/checkout/contact", "Contact Requested", email="boris@corp.example")
    )
    chen = (
        Visitor("v-chen", now)
        .track(6, "/dishwashers/301", "Product Viewed", **DISHWASHER)
        .identify(5, "/dishwashers/301", telegram="@chen_w", city="St Petersburg")
        .track(5, "/dishwashers/301", "Contact Requested", telegram="@chen_w")
    )
    dasha = (
        Visitor("v-dasha", now)
        .page(40, "/fridges")
        .track(39, "/fridges/101", "Product Viewed", **FRIDGE)
        .track(35, "/fridges/102", "Product Viewed", **BIG_FRIDGE)
        .track(33, "/fridges/101", "Product Added", quantity=1, **FRIDGE)
        .track(31, "/fridges/101", "Page Engaged", engaged_seconds=240, url=SHOP + "/fridges/101")
        .track(3, "/fridges/101", "Product Viewed", **FRIDGE)
    )
    egor = (
        Visitor("v-egor", now)
        .track(50, "/washing-machines/201", "Product Viewed", **WASHER)
        .identify(49, "/", email="egor@mail.example")
        .track(49, "/", "Subscribed", email="egor@mail.example")
        .track(5, "/dishwashers/301", "Product Viewed", **DISHWASHER)
    )
    fog = Visitor("v-fog", now).page(4, "/delivery")
    return [anna, boris, chen, dasha, egor, fog]


async def create_site(settings: Settings) -> sites_service.CreatedSite:
    engine = make_engine(settings)
    try:
        async with make_sessionmaker(engine)() as session:
            created = await onboarding.create_site(session, "Fridge shop")
            for person in TEAM:
                data = {**person, "password": PASSWORD, "working_hours": ALL_DAY}
                await team_service.create_user(session, created.site.id, UserCreate(**data))
            # The site's bot, stored as setting it would (no Telegram here): people can link.
            checked = CheckedBot(BOT_USERNAME, digest("screenshots only"))
            box = secret_box(settings)
            await channel_service.store_bot(
                session, created.site.id, BOT_TOKEN, "webhook", checked, box, datetime.now(UTC)
            )
            await session.commit()
            return created
    finally:
        await engine.dispose()


def seed(server: LiveServer, site: sites_service.CreatedSite) -> None:
    events = [e for v in visitors(datetime.now(UTC)) for e in v.events]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        sent = client.post("/v1/batch", auth=(site.write_key, ""), json={"batch": events})
        sent.raise_for_status()
        auth = {"Authorization": f"Bearer {site.secret_key}"}
        leads = client.get("/v1/leads", headers=auth).json()["data"]
        chen = next(lead for lead in leads if "telegram" in lead["contacts"])
        contact = {"channel": "messenger", "by": "Olga"}
        client.post(f"/v1/leads/{chen['id']}/contacts", headers=auth, json=contact)
        # A second version, for the rules page's versions and diff.
        rules = client.get("/v1/rules", headers=auth).json()
        rules["behaviour"][1]["points"] = 5
        rules["fit"][0]["options"][1]["values"].append("St Petersburg")
        note = {"note": "Product views count more; St Petersburg spelt as our leads do"}
        client.put("/v1/rules", headers=auth, params=note, json=rules).raise_for_status()


def shoot(server: LiveServer, site: sites_service.CreatedSite) -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1360, "height": 960})
        page.goto(f"{server.url}/dashboard")
        page.get_by_test_id("secret-key").fill(site.secret_key)
        page.get_by_test_id("sign-in").click()
        page.get_by_test_id("lead-row").nth(5).wait_for()
        page.get_by_test_id("speed-tile").first.wait_for()
        page.screenshot(path=OUT / "dashboard-leads.png")
        page.set_viewport_size({"width": 1360, "height": 1400})
        page.get_by_test_id("open-lead").first.click()
        page.get_by_test_id("timeline-item").first.wait_for()
        page.screenshot(path=OUT / "dashboard-lead-detail.png")
        shoot_rules(page)
        shoot_audiences(page)
        shoot_team(browser, server)
        browser.close()


def sign_in(browser: Any, server: LiveServer, email: str) -> Any:
    page = browser.new_page(viewport={"width": 1360, "height": 960})
    page.goto(f"{server.url}/dashboard")
    page.get_by_test_id("email").fill(email)
    page.get_by_test_id("password").fill(PASSWORD)
    page.get_by_test_id("sign-in-password").click()
    page.get_by_test_id("sign-out").wait_for()
    return page


def shoot_team(browser: Any, server: LiveServer) -> None:
    """A manager's "My leads" (hot ones by round-robin, one claimed), and the team page with
    a manager just invited."""
    page = sign_in(browser, server, TEAM[1]["email"])
    page.get_by_test_id("my-lead-list").get_by_test_id("lead-row").first.wait_for()
    page.get_by_test_id("speed-tile").first.wait_for()
    page.screenshot(path=OUT / "dashboard-my-leads.png")
    # Her settings: email on, Telegram being linked (the link shown, waiting for Start).
    page.get_by_test_id("settings-open").click()
    page.get_by_test_id("email-switch").check()
    page.get_by_test_id("email-test").wait_for()
    page.get_by_test_id("telegram-link-button").click()
    page.get_by_test_id("telegram-link-url").wait_for()
    page.get_by_test_id("settings-channels").screenshot(path=OUT / "dashboard-channels.png")
    page.close()
    page = sign_in(browser, server, TEAM[0]["email"])
    page.get_by_test_id("nav-team").click()
    page.get_by_test_id("person").first.wait_for()
    page.get_by_test_id("invite-email").fill("maria@fridges.example")
    page.get_by_test_id("invite-name").fill("Maria Ivanova")
    page.get_by_test_id("invite-submit").click()
    page.get_by_test_id("invited-password").wait_for()
    page.locator("[data-testid=person][data-email='maria@fridges.example']").wait_for()
    page.get_by_test_id("bot-username").wait_for()
    page.set_viewport_size({"width": 1360, "height": 900})
    page.screenshot(path=OUT / "dashboard-team.png")
    page.get_by_test_id("nav-numbers").click()
    page.locator("[data-testid=numbers-row][data-owner='anna@fridges.example']").wait_for()
    page.screenshot(path=OUT / "dashboard-numbers.png")
    page.close()


def shoot_rules(page: Any) -> None:
    """The rules page: a draft that adds a rule on a misspelt event and lowers the warm
    threshold, previewed against the active rule set; the diff of the last publish."""
    page.goto(page.url.split("#")[0] + "#rules")
    editor = page.get_by_test_id("rules-editor")
    page.get_by_test_id("rules-valid").wait_for()
    draft = json.loads(editor.input_value())
    draft["behaviour"].insert(
        3,
        {
            "id": "wishlist",
            "label": "Added to wishlist",
            "event": "Product Wishlisted",
            "points": 5,
            "cap": 10,
        },
    )
    draft["behaviour"][4]["event"] = "Prodcut Removed"
    draft["thresholds"] = {"warm": 20, "hot": 35}
    editor.fill(json.dumps(draft, indent=2, ensure_ascii=False) + "\n")
    editor.evaluate("(e) => { e.scrollTop = 0; e.setSelectionRange(0, 0); }")
    page.get_by_test_id("rules-preview").click()
    page.get_by_test_id("preview-summary").wait_for()
    editor.evaluate("(e) => { e.scrollTop = 16 * parseFloat(getComputedStyle(e).lineHeight); }")
    page.get_by_test_id("diff-show").click()
    page.get_by_test_id("diff-changed").first.wait_for()
    page.set_viewport_size({"width": 1360, "height": 1250})
    page.screenshot(path=OUT / "dashboard-rules.png")


def shoot_audiences(page: Any) -> None:
    """The audiences page: one defined here, its members, and its filters in the form."""
    page.goto(page.url.split("#")[0] + "#audiences")
    page.set_viewport_size({"width": 1360, "height": 1000})
    page.get_by_test_id("aud-row").first.wait_for()
    page.get_by_test_id("aud-name").fill("Fridges, 2+ views")
    page.get_by_test_id("aud-interest-category").fill("fridges")
    page.get_by_test_id("aud-interest-views").fill("2")
    page.get_by_test_id("aud-last_seen_within_hours").fill("24")
    page.get_by_test_id("aud-save").click()
    page.get_by_test_id("aud-member").nth(1).wait_for()
    page.get_by_test_id("aud-edit-selected").click()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=OUT / "dashboard-audiences.png")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/screenshots.db"
        upgrade(url)
        settings = Settings(
            database_url=url,
            create_demo_site=False,
            ingestion=IngestionSettings(write_key_cache_seconds=0),
            scoring=ScoringSettings(rule_set_cache_seconds=0),
        )
        site = asyncio.run(create_site(settings))
        with LiveServer(create_app(settings)) as server:
            seed(server, site)
            shoot(server, site)
    print(
        f"wrote {OUT}/dashboard-leads.png, dashboard-lead-detail.png, dashboard-rules.png,"
        " dashboard-my-leads.png, dashboard-channels.png, dashboard-team.png,"
        " dashboard-audiences.png and dashboard-numbers.png"
    )


if __name__ == "__main__":
    main()
