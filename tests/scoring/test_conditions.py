"""Behaviour-rule conditions: every operator, on properties, nested properties, url and visit."""

from __future__ import annotations

from typing import Any

import pytest

from app.scoring.engine import ScoringEvent
from tests.factories import T0

from .helpers import apply_all, compiled, event, rule


def _fires(condition: dict[str, Any], item: ScoringEvent) -> bool:
    rules = compiled(behaviour=[rule("r", item.kind, 1, conditions=[condition])])
    return apply_all(rules, [item]).score == 1.0


@pytest.mark.parametrize(
    ("op", "value", "properties", "expected"),
    [
        ("eq", "fridges", {"category": "Fridges"}, True),
        ("eq", "fridges", {"category": "ovens"}, False),
        ("eq", "fridges", {}, False),
        ("eq", 100, {"category": "100"}, True),
        ("eq", 100, {"category": 100.0}, True),
        ("eq", True, {"category": True}, True),
        ("eq", True, {"category": 1}, False),
        ("ne", "fridges", {"category": "ovens"}, True),
        ("ne", "fridges", {"category": "FRIDGES"}, False),
        ("ne", "fridges", {}, True),
        ("in", ["fridges", "ovens"], {"category": "Ovens"}, True),
        ("in", ["fridges", "ovens"], {"category": "tv"}, False),
        ("in", [1, 2], {"category": 2}, True),
        ("in", [1, 2], {"category": "2"}, True),
        ("in", [True], {"category": True}, True),
        ("in", [1], {"category": True}, False),
        ("not_in", ["fridges", "ovens"], {"category": "tv"}, True),
        ("not_in", ["fridges", "ovens"], {"category": "ovens"}, False),
        ("not_in", ["fridges"], {}, True),
        ("gt", 100, {"category": 150}, True),
        ("gt", 100, {"category": 100}, False),
        ("gt", 100, {"category": "150.5"}, True),
        ("gt", 100, {"category": "lots"}, False),
        ("gt", 0, {"category": True}, False),
        ("gt", 100, {}, False),
        ("gte", 100, {"category": 100}, True),
        ("gte", 100, {"category": 99.99}, False),
        ("lt", 100, {"category": 99.5}, True),
        ("lt", 100, {"category": 100}, False),
        ("lte", 100, {"category": 100}, True),
        ("lte", 100, {"category": 101}, False),
        ("contains", "fridge", {"category": "Big FRIDGE deals"}, True),
        ("contains", "fridge", {"category": "ovens"}, False),
        ("contains", "Sale", {"category": ["new", "sale"]}, True),
        ("contains", "sale", {"category": ["new"]}, False),
        ("contains", "1", {"category": 1}, False),
        ("matches", r"^SKU-\d+$", {"category": "SKU-42"}, True),
        ("matches", r"^SKU-\d+$", {"category": "sku-42"}, False),
        ("matches", r"(?i)^sku-\d+$", {"category": "sku-42"}, True),
        ("matches", r"\d", {"category": 5}, False),
        ("exists", True, {"category": "x"}, True),
        ("exists", True, {"category": None}, False),
        ("exists", True, {}, False),
        ("exists", False, {}, True),
        ("exists", False, {"category": 0}, False),
    ],
)
def test_property_operators(
    op: str, value: Any, properties: dict[str, Any], expected: bool
) -> None:
    condition = {"field": "properties.category", "op": op, "value": value}
    assert _fires(condition, event("Product Viewed", **properties)) is expected


def test_exists_defaults_to_true() -> None:
    condition = {"field": "properties.coupon", "op": "exists"}
    assert _fires(condition, event("Order Completed", coupon="X1"))
    assert not _fires(condition, event("Order Completed"))


def test_nested_property_path() -> None:
    condition = {"field": "properties.product.category", "op": "eq", "value": "tv"}
    assert _fires(condition, event("Product Viewed", product={"category": "TV"}))
    assert not _fires(condition, event("Product Viewed", product="tv"))
    assert not _fires(condition, event("Product Viewed"))


def test_url_prefers_page_url_then_properties_url() -> None:
    condition = {"field": "url", "op": "matches", "value": r"/product/\d+$"}
    assert _fires(condition, event("page", url="https://shop.example/product/42"))
    from_properties = ScoringEvent("m-url", "page", {"url": "/product/7"}, T0, 1)
    assert _fires(condition, from_properties)
    assert not _fires(condition, event("page", url="https://shop.example/cart"))
    assert not _fires(condition, event("page"))


def test_visit_number_condition() -> None:
    condition = {"field": "visit", "op": "gte", "value": 2}
    assert _fires(condition, event("page", visit=2))
    assert not _fires(condition, event("page", visit=1))


def test_all_conditions_must_hold() -> None:
    conditions = [
        {"field": "properties.category", "op": "eq", "value": "fridges"},
        {"field": "properties.price", "op": "gte", "value": 500},
    ]
    rules = compiled(behaviour=[rule("r", "Product Viewed", 5, conditions=conditions)])
    cheap = event("Product Viewed", category="fridges", price=100)
    other = event("Product Viewed", category="tv", price=900)
    pricey = event("Product Viewed", category="Fridges", price=900)
    assert apply_all(rules, [cheap, other]).score == 0.0
    assert apply_all(rules, [cheap, other, pricey]).score == 5.0


def test_event_kind_is_exact_and_star_matches_any() -> None:
    rules = compiled(behaviour=[rule("exact", "Product Viewed", 2), rule("any", "*", 1)])
    result = apply_all(rules, [event("product viewed", T0), event("Product Viewed", T0)])
    assert {i.rule_id: i.events for i in result.breakdown} == {"exact": 1, "any": 2}
