"""Fit rules (docs/domain.md's criteria x coefficients x weight): match, range and contacts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.scoring.engine import CompiledRuleSet, LeadFacts, empty_state, evaluate
from tests.factories import T0, moment

from .helpers import compiled

CITY: dict[str, Any] = {
    "id": "geo",
    "label": "Geolocation",
    "type": "match",
    "field": "city",
    "weight": 20,
    "options": [
        {"values": ["Moscow"], "coefficient": 1.0},
        {"values": ["Kazan"], "coefficient": 0.8},
        {"values": ["St Petersburg", "Saint Petersburg"], "coefficient": 0.6},
        {"values": ["Yekaterinburg"], "coefficient": 0.5},
    ],
}
CONTACTS = {
    "id": "contacts",
    "type": "contacts",
    "weight": 10,
    "options": [
        {"values": ["email"], "coefficient": 0.5},
        {"values": ["phone"], "coefficient": 0.5},
        {"values": ["telegram", "whatsapp"], "coefficient": 0.3},
    ],
}


def _fit(rules: CompiledRuleSet, facts: LeadFacts, now: Any = T0) -> float:
    return evaluate(rules, empty_state(), facts, now).score


@pytest.mark.parametrize(
    ("city", "points"),
    [
        ("Moscow", 20.0),
        ("Kazan", 16.0),
        ("St Petersburg", 12.0),
        ("saint petersburg", 12.0),
        ("Yekaterinburg", 10.0),
        ("  MOSCOW ", 20.0),
        ("Paris", 0.0),
        (None, 0.0),
    ],
)
def test_city_table_from_domain_at_weight_20(city: str | None, points: float) -> None:
    assert _fit(compiled(fit=[CITY]), LeadFacts(city=city)) == points


def test_first_matching_option_wins() -> None:
    rule = {**CITY, "options": [{"values": ["Kazan"], "coefficient": 0.8}, *CITY["options"]]}
    assert _fit(compiled(fit=[rule]), LeadFacts(city="kazan")) == 16.0


def test_match_on_country_and_traits() -> None:
    country = {"id": "country", "type": "match", "field": "country", "weight": 10,
               "options": [{"values": ["RU", "Russia"], "coefficient": 1.0}]}  # fmt: skip
    company = {"id": "b2b", "type": "match", "field": "traits.plan", "weight": 10,
               "options": [{"values": ["business"], "coefficient": 0.7}]}  # fmt: skip
    rules = compiled(fit=[country, company])
    assert _fit(rules, LeadFacts(country="ru", traits={"plan": "Business"})) == 17.0
    assert _fit(rules, LeadFacts(country="DE", traits={"plan": ["business"]})) == 0.0


def test_match_on_interests_any_listed_category() -> None:
    rule = {"id": "interest", "type": "match", "field": "interests", "weight": 10,
            "options": [{"values": ["tv"], "coefficient": 0.5},
                        {"values": ["fridges", "ovens"], "coefficient": 1.0}]}  # fmt: skip
    rules = compiled(fit=[rule])
    assert _fit(rules, LeadFacts(interests={"Ovens": 2, "books": 9})) == 10.0
    assert _fit(rules, LeadFacts(interests={"tv": 1, "fridges": 4})) == 5.0  # first option wins
    assert _fit(rules, LeadFacts(interests={"fridges": 0})) == 0.0
    assert _fit(rules, LeadFacts()) == 0.0


@pytest.mark.parametrize(
    ("contacts", "points"),
    [
        ({}, 0.0),
        ({"email": "a@b.c"}, 5.0),
        ({"phone": "+7 900"}, 5.0),
        ({"telegram": "@a"}, 3.0),
        ({"telegram": "@a", "whatsapp": "+7"}, 3.0),  # one option counts once
        ({"email": "a@b.c", "phone": "+7"}, 10.0),
        ({"email": "a@b.c", "phone": "+7", "telegram": "@a"}, 10.0),  # capped at 1.0
        ({"email": "a@b.c", "phone": ""}, 5.0),  # an empty value is no contact
        ({"Email": "a@b.c"}, 5.0),
    ],
)
def test_contacts_sum_coefficients_capped_at_one(contacts: dict[str, str], points: float) -> None:
    assert _fit(compiled(fit=[CONTACTS]), LeadFacts(contacts=contacts)) == points


VISITS = {
    "id": "visits",
    "type": "range",
    "field": "visits",
    "weight": 5,
    "bands": [
        {"min": 2, "max": 3, "coefficient": 0.6},
        {"min": 3, "max": 5, "coefficient": 0.8},
        {"min": 5, "coefficient": 1.0},
    ],
}


@pytest.mark.parametrize(
    ("visits", "points"), [(0, 0.0), (1, 0.0), (2, 3.0), (3, 4.0), (4, 4.0), (5, 5.0), (80, 5.0)]
)
def test_range_bands_min_inclusive_max_exclusive(visits: int, points: float) -> None:
    assert _fit(compiled(fit=[VISITS]), LeadFacts(visits=visits)) == points


@pytest.mark.parametrize(
    ("field", "facts"),
    [
        ("page_views", LeadFacts(page_views=12)),
        ("time_on_site_seconds", LeadFacts(time_on_site_seconds=12.5)),
        ("orders", LeadFacts(orders=12)),
    ],
)
def test_range_over_each_numeric_field(field: str, facts: LeadFacts) -> None:
    rule = {"id": "r", "type": "range", "field": field, "weight": 10,
            "bands": [{"min": 10, "max": 20, "coefficient": 0.5}]}  # fmt: skip
    assert _fit(compiled(fit=[rule]), facts) == 5.0
    assert _fit(compiled(fit=[rule]), LeadFacts()) == 0.0


def test_recency_is_hours_from_last_seen_to_now() -> None:
    rule = {"id": "recency", "type": "range", "field": "recency_hours", "weight": 5,
            "bands": [{"max": 1, "coefficient": 1.0},
                      {"min": 1, "max": 24, "coefficient": 0.8}]}  # fmt: skip
    rules = compiled(fit=[rule])
    seen = LeadFacts(last_seen_at=T0)
    assert _fit(rules, seen, T0) == 5.0
    assert _fit(rules, seen, moment(minutes=59)) == 5.0
    assert _fit(rules, seen, moment(hours=1)) == 4.0
    assert _fit(rules, seen, moment(hours=24)) == 0.0
    assert _fit(rules, seen, T0 - timedelta(hours=2)) == 5.0  # seen "after now": as recent
    assert _fit(rules, LeadFacts(), T0) == 0.0


def test_fit_points_do_not_decay() -> None:
    rules = compiled(decay={"half_life": "1d"}, fit=[CITY])
    assert _fit(rules, LeadFacts(city="Kazan"), moment(days=300)) == 16.0


def test_fit_rules_appear_in_the_breakdown_when_they_contribute() -> None:
    rules = compiled(fit=[CITY, CONTACTS])
    result = evaluate(rules, empty_state(), LeadFacts(city="Kazan"), T0)
    assert [(i.rule_id, i.kind, i.label, i.points, i.events) for i in result.breakdown] == [
        ("geo", "fit", "Geolocation", 16.0, 0)
    ]
