"""The rules page of the dashboard, in Chromium: an admin edits the active rule set, sees a
schema error where it is, previews a draft (a background job) with a warning naming the rule,
publishes it with a note, compares two versions and restores the first; a manager has no
rules page."""

import copy
import json
from typing import Any

import httpx
import pytest

from app.config import ScoringSettings, Settings
from app.scoring.defaults import DEFAULT_RULE_SET
from app.scoring.rule_set_schema import rule_set_json_schema
from tests.browser.pw import expect
from tests.conftest import make_settings
from tests.factories import basic_auth, bearer, track
from tests.team.helpers import PASSWORD, make_user

pytestmark = pytest.mark.browser
ADMIN = "ada@shop.example"


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Preview jobs run in the server's own loop, picked up within a tenth of a second.
    scoring = ScoringSettings(
        rule_set_cache_seconds=0,
        rescore_processes=0,
        preview_processes=0,
        rescore_poll_seconds=0.1,
    )
    return make_settings(database_url, scoring=scoring)


def document(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DEFAULT_RULE_SET)
    del doc["version"]
    doc.update(changes)
    return doc


def as_text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def line_of(text: str, needle: str) -> int:
    (line,) = [n for n, row in enumerate(text.splitlines(), 1) if needle in row]
    return line


def schema_keywords(node: Any) -> set[str]:
    """The keywords a JSON Schema uses (not the names of its properties and definitions)."""
    if not isinstance(node, dict):
        return set()
    found = set(node)
    for key, sub in node.items():
        if key in ("properties", "$defs"):
            found |= {k for s in sub.values() for k in schema_keywords(s)}
        elif key in ("items", "additionalProperties"):
            found |= schema_keywords(sub)
        elif key in ("anyOf", "oneOf", "allOf"):
            found |= {k for s in sub for k in schema_keywords(s)}
    return found


def _set(path: str, value: Any) -> dict[str, Any]:
    """The default document with the value at a dotted path set (or, `...`, removed)."""
    doc = document()
    *parents, last = path.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is ...:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


# Drafts the editor must refuse, each at one path with one message, as the service does.
REFUSED = [
    (_set("behaviour.4.half_life", "7x"), "behaviour.4.half_life", "not in the expected form"),
    (_set("behaviour.0.cap", -1), "behaviour.0.cap", "must be at least 0"),
    (_set("behaviour.10.conditions.0.op", "between"), "behaviour.10.conditions.0.op", "one of"),
    (_set("behaviour.10.conditions.0.op", "in"), "behaviour.10.conditions.0.value", "a list"),
    (_set("fit.0.type", "matchh"), "fit.0.type", 'one of "contacts", "match", "range"'),
    (_set("fit.0.weight", ...), "fit.0", '"weight" is required'),
    (_set("thresholds.hot", ...), "thresholds", '"hot" is required'),
    (_set("name", ""), "name", "must not be empty"),
]


async def sign_in(new_context: Any, live_server: Any, email: str) -> Any:
    context = await new_context(viewport={"width": 1360, "height": 1000})
    await context.add_init_script("window.LEADHEAT_DASHBOARD = {pollMs: 1000, jobPollMs: 100};")
    page = await context.new_page()
    page.errors = []  # the page's uncaught errors: none expected
    page.on("pageerror", lambda error: page.errors.append(error))
    await page.goto(f"{live_server.url}/dashboard#rules")
    await page.get_by_test_id("email").fill(email)
    await page.get_by_test_id("password").fill(PASSWORD)
    await page.get_by_test_id("sign-in-password").click()
    await expect(page.get_by_test_id("sync-status")).to_contain_text("live")
    return page


async def test_an_admin_edits_previews_publishes_compares_and_restores_rules(
    new_context, live_server, session, site
):
    await make_user(session, site, "admin", email=ADMIN)
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        events = [track(f"v{n}", "Product Viewed", properties={"category": "tv"}) for n in (1, 2)]
        events.append(track("v2", "Product Added", properties={"category": "tv"}))
        r = await client.post("/v1/batch", auth=basic_auth(site.write_key), json={"batch": events})
        assert r.status_code == 200
    page = await sign_in(new_context, live_server, ADMIN)

    # The active rule set (the default, version 1) in the editor, checked and valid.
    rules = page.get_by_test_id("rules-page")
    await expect(rules).to_be_visible()
    await expect(page.get_by_test_id("lead-list")).to_be_hidden()
    await expect(page.get_by_test_id("rules-active")).to_contain_text("v1")
    editor = page.get_by_test_id("rules-editor")
    assert json.loads(await editor.input_value()) == document()
    await expect(page.get_by_test_id("rules-valid")).to_be_visible()
    # The validator knows every keyword the schema uses (a new one fails here, not silently).
    known = await page.evaluate("LeadheatRules.KEYWORDS.concat(LeadheatRules.ANNOTATIONS)")
    assert schema_keywords(rule_set_json_schema()) <= set(known)

    # The page's check and the service's agree: each of these is one error here, and a 422.
    schema = rule_set_json_schema()
    examples = await page.evaluate(
        """(schema) => Object.entries(schema.$defs).flatMap(([name, part]) =>
            (part.examples || []).map((example) => [name, LeadheatRules.validator(
                {$defs: schema.$defs, $ref: `#/$defs/${name}`})(example)]))""",
        schema,
    )
    assert len(examples) >= 5
    assert [(name, errors) for name, errors in examples if errors] == []
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        for doc, path, message in REFUSED:
            found = await page.evaluate(
                "([schema, doc]) => LeadheatRules.validator(schema)(doc)", [schema, doc]
            )
            assert [(e["path"], message in e["message"]) for e in found] == [(path, True)], found
            r = await client.post("/v1/rules/preview", headers=bearer(site.secret_key), json=doc)
            assert r.status_code == 422, path

    # A schema error is shown at its line and path, as one types.
    wrong = document()
    wrong["behaviour"][1]["points"] = "three"
    wrong["fit"][0]["colour"] = "red"
    text = as_text(wrong)
    await editor.fill(text)
    errors = page.get_by_test_id("rule-error")
    await expect(errors).to_have_count(2)
    points = errors.filter(has_text="behaviour.1.points")
    await expect(points).to_contain_text("must be a number")
    await expect(points).to_have_attribute("data-line", str(line_of(text, '"three"')))
    await expect(errors.filter(has_text="fit.0.colour")).to_contain_text('unknown field "colour"')
    bad_line = page.locator("#rules-gutter .is-error").first
    await expect(bad_line).to_have_text(str(line_of(text, '"three"')))
    await page.get_by_test_id("rules-preview").click()
    await expect(page.get_by_test_id("rules-status")).to_contain_text("Fix the errors")

    # What only the service checks (unique ids) is shown the same way, from its 422.
    twice = document()
    twice["behaviour"].append({"id": "page-view", "event": "Subscribed", "points": 1})
    text = as_text(twice)
    await editor.fill(text)
    await expect(page.get_by_test_id("rules-valid")).to_be_visible()
    await page.get_by_test_id("rules-preview").click()
    duplicate = errors.filter(has_text="duplicate rule id")
    await expect(duplicate).to_contain_text(f"behaviour.{len(twice['behaviour']) - 1}.id")
    second = [n for n, row in enumerate(text.splitlines(), 1) if '"id": "page-view"' in row][1]
    await expect(duplicate).to_have_attribute("data-line", str(second))

    # A valid draft with a misspelt event: the preview job's result and its warning.
    draft = document(thresholds={"warm": 5, "hot": 60})
    draft["behaviour"][1]["points"] = 5
    draft["behaviour"].append(
        {"id": "added-typo", "label": "Added (typo)", "event": "Prodcut Added", "points": 5}
    )
    await editor.fill(as_text(draft))
    await expect(page.get_by_test_id("rules-valid")).to_be_visible()
    await expect(page.get_by_test_id("rules-dirty")).to_be_visible()
    await page.get_by_test_id("rules-preview").click()
    result = page.get_by_test_id("preview-result")
    await expect(result.get_by_test_id("preview-summary")).to_contain_text("2 leads")
    warning = result.locator("[data-testid=rule-warning][data-rule=added-typo]")
    await expect(warning).to_contain_text("Added (typo) (added-typo)")
    await expect(warning).to_contain_text("Product Added")
    await expect(result.get_by_test_id("preview-changed")).to_have_text(
        "2 leads change temperature"
    )
    await expect(result.get_by_test_id("preview-change")).to_have_count(2)
    await expect(result.get_by_test_id("draft-warm")).to_have_text("2")
    assert await active_version(live_server, site) == 1  # a preview publishes nothing

    # Publish asks for a note, and the versions show it with the author.
    await page.get_by_test_id("rules-publish").click()
    await page.get_by_test_id("publish-confirm").click()
    await expect(page.get_by_test_id("note-error")).to_be_visible()
    await page.get_by_test_id("publish-note").fill("Warm from the first product views")
    await page.get_by_test_id("publish-confirm").click()
    await expect(page.get_by_test_id("rules-status")).to_contain_text("Published version 2")
    await expect(page.get_by_test_id("rules-active")).to_contain_text("v2")
    await expect(page.get_by_test_id("rules-dirty")).to_be_hidden()
    newest = page.get_by_test_id("rule-version").first
    await expect(newest).to_have_attribute("data-version", "2")
    await expect(newest.get_by_test_id("version-note")).to_have_text(
        "Warm from the first product views"
    )
    await expect(newest.get_by_test_id("version-author")).to_have_text(f"by {ADMIN}")
    assert await active_version(live_server, site) == 2

    # The diff between the two versions: added, changed field by field, settings.
    await page.get_by_test_id("diff-from").select_option("1")
    await page.get_by_test_id("diff-to").select_option("2")
    await page.get_by_test_id("diff-show").click()
    diff = page.get_by_test_id("diff")
    await expect(diff.get_by_test_id("diff-added")).to_contain_text("added-typo")
    changed = diff.locator("[data-testid=diff-changed][data-rule=product-viewed]")
    await expect(changed.get_by_test_id("diff-field")).to_have_text("points3→5")
    await expect(diff.get_by_test_id("diff-settings")).to_contain_text("thresholds.warm")
    await expect(diff.get_by_test_id("diff-removed")).to_have_count(0)

    # Restore version 1 as version 3, with the note it suggests.
    first = page.locator("[data-testid=rule-version][data-version='1']")
    await first.get_by_test_id("restore-version").click()
    await expect(page.get_by_test_id("publish-note")).to_have_value("restored from version 1")
    await page.get_by_test_id("publish-confirm").click()
    await expect(page.get_by_test_id("rules-active")).to_contain_text("v3")
    await expect(page.get_by_test_id("rule-version").first).to_contain_text(
        "restored from version 1"
    )
    assert json.loads(await editor.input_value()) == document()
    assert await active_version(live_server, site) == 3
    assert page.errors == []


async def active_version(live_server: Any, site: Any) -> int:
    async with httpx.AsyncClient(base_url=live_server.url) as client:
        r = await client.get("/v1/rules", headers=bearer(site.secret_key))
        return int(r.json()["version"])


async def test_a_manager_has_no_rules_page(new_context, live_server, session, site):
    await make_user(session, site, "manager", email="max@shop.example")
    page = await sign_in(new_context, live_server, "max@shop.example")
    await expect(page.get_by_test_id("nav-leads")).to_be_visible()
    await expect(page.get_by_test_id("nav-rules")).to_be_hidden()
    await expect(page.get_by_test_id("rules-page")).to_be_hidden()
    await expect(page.get_by_test_id("lead-empty")).to_be_visible()
