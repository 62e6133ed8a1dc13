"""The default rule set: fits an online shop out of the box (the signals and figures of
docs/domain.md).

Tuned so that a one-page bounce is cold, several product views over two visits are warm,
cart add + checkout started + a phone is hot, and a contact request is hot at once. Every value
is configuration: a shop edits its own copy through the rule-set API.
"""

from __future__ import annotations

import copy
from typing import Any

from app.scoring.schemas import RuleSet, parse_rule_set

DEFAULT_RULE_SET: dict[str, Any] = {
    "version": 1,
    "name": "Online shop (default)",
    "max_score": 100,
    # A week: last week's browsing still says something, last month's says little.
    "decay": {"half_life": "7d"},
    "behaviour": [
        # Browsing is the weakest signal: 1 point each, at most 10 so reading alone never warms.
        {"id": "page-view", "label": "Page view", "event": "page", "points": 1, "cap": 10},
        # Product pages show what they want ("fridges"); five views reach the cap.
        {
            "id": "product-viewed",
            "label": "Viewed a product",
            "event": "Product Viewed",
            "points": 3,
            "cap": 15,
        },
        # A cart add is intent (a warm signal in docs/domain.md): with the product view before it,
        # recency and a contact left it reaches warm; two adds are the most that count.
        {
            "id": "product-added",
            "label": "Added to cart",
            "event": "Product Added",
            "points": 15,
            "cap": 30,
        },
        # Taking something out of the cart cools a little, never more than 9 points in all.
        {
            "id": "product-removed",
            "label": "Removed from cart",
            "event": "Product Removed",
            "points": -3,
            "cap": 9,
        },
        # The first hot signal in docs/domain.md: with a cart add, a product view and recency it is
        # 58, so a contact or a few minutes on the site tip it over 60. Carts go stale in days
        # ("a follow-up the next day works, one a month later does not"): half-life 3d.
        {
            "id": "checkout-started",
            "label": "Started checkout",
            "event": "Checkout Started",
            "points": 35,
            "cap": 35,
            "half_life": "3d",
        },
        # Abandoned at the last step: hot and slipping away; the hard rule handles the urgency.
        {
            "id": "cart-abandoned",
            "label": "Abandoned cart",
            "event": "Cart Abandoned",
            "points": 15,
            "cap": 15,
            "half_life": "3d",
        },
        # "Bought from us before" is warm (docs/domain.md), not hot: repeat orders add a little.
        {
            "id": "order-completed",
            "label": "Completed an order",
            "event": "Order Completed",
            "points": 10,
            "cap": 20,
        },
        # Subscribing is a warm signal, but only the first time means anything.
        {
            "id": "subscribed",
            "label": "Subscribed",
            "event": "Subscribed",
            "points": 10,
            "frequency": "once_per_lead",
        },
        # Unsubscribing is a refusal: it outweighs the subscription it undoes.
        {
            "id": "unsubscribed",
            "label": "Unsubscribed",
            "event": "Unsubscribed",
            "points": -15,
            "cap": 15,
        },
        # Asking to be contacted is the hottest signal; the hard rule makes it hot at once.
        {
            "id": "contact-requested",
            "label": "Requested a contact",
            "event": "Contact Requested",
            "points": 40,
            "cap": 40,
        },
        # Coming back is how interest shows (repeat visits are docs/domain.md's first warm signal):
        # 5 points per return visit, up to three of them.
        {
            "id": "return-visit",
            "label": "Came back",
            "event": "*",
            "conditions": [{"field": "visit", "op": "gte", "value": 2}],
            "points": 5,
            "frequency": "once_per_visit",
            "cap": 15,
        },
    ],
    "fit": [
        # Where the lead is (docs/domain.md): the head-office city is worth the full weight, a
        # city with regular deliveries 0.8, one near the warehouse 0.6; elsewhere nothing. The
        # cities are an example: a shop names its own (publishing warns about a city none of
        # its recent leads has).
        {
            "id": "city",
            "label": "City (delivery area)",
            "type": "match",
            "field": "city",
            "weight": 20,
            "options": [
                {"values": ["Moscow"], "coefficient": 1.0},
                {"values": ["Kazan", "Saint Petersburg"], "coefficient": 0.8},
                {"values": ["Tula"], "coefficient": 0.6},
            ],
        },
        # Reachable leads are worth more; several channels beat one (docs/domain.md).
        {
            "id": "contacts",
            "label": "Contacts left",
            "type": "contacts",
            "weight": 10,
            "options": [
                {"values": ["email"], "coefficient": 0.5},
                {"values": ["phone"], "coefficient": 0.5},
                {
                    "values": ["telegram", "whatsapp", "viber", "messenger", "vk", "social"],
                    "coefficient": 0.3,
                },
            ],
        },
        # Repeat visits: the second visit already shows interest, five or more a lot.
        {
            "id": "visits",
            "label": "Visits",
            "type": "range",
            "field": "visits",
            "weight": 5,
            "bands": [
                {"min": 2, "max": 3, "coefficient": 0.6},
                {"min": 3, "max": 5, "coefficient": 0.8},
                {"min": 5, "coefficient": 1.0},
            ],
        },
        # Long sessions mean comparing offers; under a minute is a bounce.
        {
            "id": "time-on-site",
            "label": "Time on site",
            "type": "range",
            "field": "time_on_site_seconds",
            "weight": 5,
            "bands": [
                {"min": 60, "max": 300, "coefficient": 0.4},
                {"min": 300, "max": 900, "coefficient": 0.7},
                {"min": 900, "coefficient": 1.0},
            ],
        },
        # Speed to lead: a visitor here within the hour is worth calling now; a week later less.
        {
            "id": "recency",
            "label": "Seen recently",
            "type": "range",
            "field": "recency_hours",
            "weight": 5,
            "bands": [
                {"max": 1, "coefficient": 1.0},
                {"min": 1, "max": 24, "coefficient": 0.8},
                {"min": 24, "max": 72, "coefficient": 0.5},
                {"min": 72, "max": 168, "coefficient": 0.2},
            ],
        },
    ],
    "hard": [
        # A callback request must be answered within 5 minutes: hot for a day whatever the score.
        {
            "id": "contact-request",
            "label": "Asked to be contacted",
            "steps": [{"event": "Contact Requested"}],
            "hold": "24h",
        },
        # Left at the last step: react while the trail is hot (docs/domain.md), within the hour.
        {
            "id": "checkout-abandoned",
            "label": "Abandoned checkout",
            "steps": [{"event": "Checkout Started"}, {"event": "Cart Abandoned"}],
            "within": "1h",
            "hold": "1h",
        },
    ],
    # docs/domain.md: 20-30% of visitors are warm, ~1% hot; 30/60 separate browsing from intent.
    "thresholds": {"warm": 30, "hot": 60},
    # A lead hovering at the line must not flip hot/warm (and fire webhooks) with every event.
    "hysteresis_points": 5,
    # Long enough for a salesperson to act on a hot lead before it can cool down.
    "min_hold": "30m",
}


def default_rule_set() -> RuleSet:
    """The default rule set, validated."""
    return parse_rule_set(copy.deepcopy(DEFAULT_RULE_SET))
