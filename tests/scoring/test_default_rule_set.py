"""The default rule set's promises: bounce cold, browsing warm, checkout with a phone hot,
a contact request hot at once."""

from __future__ import annotations

from app.scoring.defaults import default_rule_set
from app.scoring.engine import LeadFacts, compile_rule_set, evaluate
from tests.factories import T0, moment

from .helpers import apply_all, event

RULES = compile_rule_set(default_rule_set())


def test_a_one_page_bounce_is_cold() -> None:
    facts = LeadFacts(visits=1, page_views=1, time_on_site_seconds=8, last_seen_at=T0)
    result = apply_all(RULES, [event("page", T0, url="/")], facts)
    assert (result.score, result.temperature) == (6.0, "cold")
    later = evaluate(RULES, result.state, facts, moment(days=2))
    assert later.temperature == "cold"


def test_several_products_over_two_visits_is_warm() -> None:
    day_one = [
        event("page", T0, url="/"),
        event("Product Viewed", moment(minutes=1), category="fridges"),
        event("Product Viewed", moment(minutes=3), category="fridges"),
        event("Product Viewed", moment(minutes=5), category="fridges"),
    ]
    day_two = [
        event("page", moment(days=1), visit=2, url="/"),
        event("Product Viewed", moment(days=1, minutes=2), visit=2, category="fridges"),
        event("Product Viewed", moment(days=1, minutes=4), visit=2, category="fridges"),
    ]
    facts = LeadFacts(
        visits=2,
        page_views=7,
        time_on_site_seconds=540,
        last_seen_at=moment(days=1, minutes=4),
        interests={"fridges": 5},
    )
    result = apply_all(RULES, [*day_one, *day_two], facts)
    assert result.temperature == "warm"
    assert 30 <= result.score < 45
    assert {i.rule_id for i in result.breakdown} == {
        "page-view", "product-viewed", "return-visit", "visits", "time-on-site", "recency",
    }  # fmt: skip
    after_a_quiet_week = evaluate(RULES, result.state, facts, moment(days=8))
    assert after_a_quiet_week.temperature == "cold"


def test_cart_add_checkout_and_a_phone_is_hot() -> None:
    events = [
        event("page", T0, url="/"),
        event("Product Viewed", moment(minutes=1), category="fridges", price=700),
        event("Product Added", moment(minutes=3), category="fridges", price=700),
        event("identify", moment(minutes=4), phone="+7 900 000 00 00"),
        event("Checkout Started", moment(minutes=5), value=700),
    ]
    facts = LeadFacts(
        visits=1,
        page_views=3,
        time_on_site_seconds=300,
        last_seen_at=moment(minutes=5),
        contacts={"phone": "+7 900 000 00 00"},
    )
    result = apply_all(RULES, events, facts)
    assert (result.temperature, result.changed, result.became_hot_at) == (
        "hot",
        True,
        moment(minutes=5),
    )
    assert result.score >= 60
    assert all(item.kind != "hard" for item in result.breakdown)  # hot on points alone
    without_checkout = apply_all(RULES, events[:-1], facts)
    assert without_checkout.temperature == "warm"  # a cart add with a phone is warm


def test_contact_requested_is_hot_immediately() -> None:
    events = [event("page", T0, url="/"), event("Contact Requested", moment(minutes=1))]
    facts = LeadFacts(
        visits=1, page_views=1, last_seen_at=moment(minutes=1), contacts={"phone": "+7"}
    )
    result = apply_all(RULES, events, facts)
    assert result.temperature == "hot"
    assert result.became_hot_at == moment(minutes=1)
    assert "contact-request" in {i.rule_id for i in result.breakdown if i.kind == "hard"}
    next_day = evaluate(RULES, result.state, facts, moment(days=1, minutes=2))
    assert next_day.temperature == "warm"  # the hold is over; the points remain


def test_checkout_then_abandon_within_the_hour_is_hot_for_an_hour() -> None:
    events = [
        event("Checkout Started", T0),
        event("Cart Abandoned", moment(minutes=20)),
    ]
    result = apply_all(RULES, events, LeadFacts())
    assert result.temperature == "hot"
    assert "checkout-abandoned" in {i.rule_id for i in result.breakdown if i.kind == "hard"}


def test_unsubscribing_outweighs_subscribing() -> None:
    result = apply_all(RULES, [event("Subscribed", T0), event("Unsubscribed", moment(minutes=1))])
    assert result.score == 0.0
