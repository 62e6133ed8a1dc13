"""The lead profile, kept current one event at a time (pure: no I/O, no clock).

A profile is the dict of a `leads` row's columns. `apply_event` folds one event into it;
`merge_profiles` folds a lead that turned out to be the same person into another.
"""

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import orjson

from app.domain.events import IngestEvent, property_number, visit_number
from app.domain.lead_rows import LeadRow

# The lead card's (and webhooks') recently viewed products; every view stays in the timeline
# and counts in the interests. Each one is JSON that PostgreSQL parses again at every update
# of the lead, so the list is kept short (docs/performance.md).
MAX_PRODUCTS_VIEWED = 10
# A `Page Engaged` report larger than this is a stuck tab, not attention.
MAX_ENGAGED_SECONDS_PER_REPORT = 30 * 60
MESSENGER_TRAITS = (
    "telegram",
    "whatsapp",
    "viber",
    "messenger",
    "wechat",
    "signal",
    "skype",
    "vk",
    "instagram",
    "facebook",
    "twitter",
    "line",
)
CONTACT_TRAITS = ("email", "phone", *MESSENGER_TRAITS)


def new_profile(lead_id: uuid.UUID, site_id: uuid.UUID, now: datetime) -> LeadRow:
    return {
        "id": lead_id,
        "site_id": site_id,
        "merged_into_id": None,
        "user_id": None,
        "created_at": now,
        "updated_at": now,
        "first_seen_at": None,
        "last_seen_at": None,
        "visit_started_at": None,
        "visits": 0,
        "page_views": 0,
        "events_count": 0,
        "session_seconds": 0.0,
        "engaged_seconds": 0.0,
        "orders": 0,
        "revenue": 0.0,
        "identified": False,
        "city": None,
        "country": None,
        "last_url": None,
        "contacts": {},
        "traits": {},
        "interests": {},
        "products_viewed": [],
        "cart": {},
        "subscribed": None,
        "status": "new",
        "status_changed_at": None,
        "lost_reason": None,
        "lost_note": None,
        "score": 0.0,
        "temperature": "cold",
        "score_state": None,
        "rule_set_version": None,
        "scored_at": None,
        "became_hot_at": None,
        "contact_by": None,
        "first_contacted_at": None,
        "next_check_at": None,
        "owner_id": None,
        "owner_assigned_at": None,
    }


def _iso(at: datetime) -> str:
    """`at.isoformat()` (RFC 3339), as orjson writes it, which is faster: this runs once or
    more per event folded in."""
    return orjson.dumps(at)[1:-1].decode()


def time_on_site(profile: Mapping[str, Any]) -> float:
    """Visible time the tracker measured; for clients that do not measure it, time between
    events within visits."""
    return float(profile["engaged_seconds"] or profile["session_seconds"] or 0.0)


def _text(value: Any, limit: int = 255) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text[:limit] or None


def _product_key(props: dict[str, Any]) -> str | None:
    for key in ("product_id", "sku", "id", "name"):
        value = _text(props.get(key))
        if value:
            return value
    return None


def _absorb_traits(profile: LeadRow, traits: dict[str, Any]) -> None:
    if not traits:
        return
    profile["traits"] = {**profile["traits"], **traits}
    contacts = dict(profile["contacts"])
    for key in CONTACT_TRAITS:
        value = _text(traits.get(key))
        if value:
            contacts[key] = value
    profile["contacts"] = contacts
    address = traits.get("address")
    city = traits.get("city") or (address.get("city") if isinstance(address, dict) else None)
    country = traits.get("country") or (
        address.get("country") if isinstance(address, dict) else None
    )
    if _text(city):
        profile["city"] = _text(city, 200)
    if _text(country):
        profile["country"] = _text(country, 200)
    profile["identified"] = bool(contacts)


def _cart_add(profile: LeadRow, props: dict[str, Any], at: datetime) -> None:
    key = _product_key(props)
    if key is None:
        return
    cart = dict(profile["cart"])
    items = dict(cart.get("items", {}))
    quantity = property_number(props.get("quantity")) or 1.0
    item = dict(items.get(key, {"quantity": 0}))
    item.update(
        {
            k: v
            for k, v in {
                "product_id": key,
                "name": _text(props.get("name")),
                "category": _text(props.get("category")),
                "price": property_number(props.get("price")),
            }.items()
            if v is not None
        }
    )
    item["quantity"] = item.get("quantity", 0) + quantity
    items[key] = item
    cart["items"] = items
    cart["updated_at"] = _iso(at)
    profile["cart"] = _with_totals(cart)


def _cart_remove(profile: LeadRow, props: dict[str, Any], at: datetime) -> None:
    key = _product_key(props)
    cart = dict(profile["cart"])
    items = dict(cart.get("items", {}))
    if key is None or key not in items:
        return
    quantity = property_number(props.get("quantity")) or items[key].get("quantity", 1)
    remaining = items[key].get("quantity", 0) - quantity
    if remaining <= 0:
        del items[key]
    else:
        items[key] = {**items[key], "quantity": remaining}
    cart["items"] = items
    cart["updated_at"] = _iso(at)
    profile["cart"] = _with_totals(cart)


def _with_totals(cart: dict[str, Any]) -> dict[str, Any]:
    items = cart.get("items", {})
    cart["item_count"] = sum(i.get("quantity", 0) for i in items.values())
    cart["value"] = round(
        sum((i.get("price") or 0) * i.get("quantity", 0) for i in items.values()), 2
    )
    return cart


def _track(profile: LeadRow, event: IngestEvent) -> None:
    props = event.properties
    name = event.name
    at = event.timestamp
    if name in ("Product Viewed", "Product Added"):
        category = _text(props.get("category"), 100)
        if category:
            interests = dict(profile["interests"])
            interests[category] = interests.get(category, 0) + 1
            profile["interests"] = interests
    if name == "Product Viewed":
        product = {
            k: v
            for k, v in {
                "product_id": _product_key(props),
                "name": _text(props.get("name")),
                "category": _text(props.get("category")),
                "price": property_number(props.get("price")),
                "at": _iso(at),
            }.items()
            if v is not None
        }
        viewed = [
            p
            for p in profile["products_viewed"]
            if p.get("product_id") != product.get("product_id")
        ]
        profile["products_viewed"] = [product, *viewed][:MAX_PRODUCTS_VIEWED]
    elif name == "Product Added":
        _cart_add(profile, props, at)
    elif name == "Product Removed":
        _cart_remove(profile, props, at)
    elif name == "Checkout Started":
        profile["cart"] = {**profile["cart"], "checkout_started_at": _iso(at)}
    elif name == "Cart Abandoned":
        profile["cart"] = {**profile["cart"], "abandoned_at": _iso(at)}
    elif name == "Order Completed":
        profile["orders"] += 1
        for key in ("revenue", "total", "value"):
            amount = property_number(props.get(key))
            if amount is not None:
                profile["revenue"] = round(profile["revenue"] + amount, 2)
                break
        profile["cart"] = {"items": {}, "item_count": 0, "value": 0, "ordered_at": _iso(at)}
    elif name == "Subscribed":
        profile["subscribed"] = True
    elif name == "Unsubscribed":
        profile["subscribed"] = False
    elif name == "Contact Requested":
        _absorb_traits(profile, {k: v for k, v in props.items() if k in CONTACT_TRAITS})
    elif name == "Page Engaged":
        seconds = property_number(props.get("engaged_seconds"))
        if seconds and seconds > 0:
            seconds = min(seconds, MAX_ENGAGED_SECONDS_PER_REPORT)
            profile["engaged_seconds"] = round(profile["engaged_seconds"] + seconds, 1)


def apply_event(profile: LeadRow, event: IngestEvent, visit_timeout: timedelta) -> None:
    """Fold one event into the profile, in place. Events that arrive late (older than the
    last one seen) count, but do not reopen visits: ingestion rebuilds a lead that receives
    one from all of its events in time order (app.ingestion.store)."""
    at = event.timestamp
    profile["events_count"] += 1
    last_seen = profile["last_seen_at"]
    if profile["first_seen_at"] is None or at < profile["first_seen_at"]:
        profile["first_seen_at"] = at
    is_newest = last_seen is None or at >= last_seen
    visit = visit_number(profile["visits"], last_seen, at, visit_timeout)
    if visit != profile["visits"]:
        profile["visits"] = visit
        profile["visit_started_at"] = at
    elif last_seen is not None and at > last_seen:
        gap = at - last_seen
        profile["session_seconds"] = round(profile["session_seconds"] + gap.total_seconds(), 1)
    if is_newest:
        profile["last_seen_at"] = at
    if event.user_id:
        profile["user_id"] = event.user_id

    if event.type in ("page", "screen"):
        profile["page_views"] += 1
        if is_newest and event.url:
            profile["last_url"] = event.url[:2048]
    elif event.type == "track":
        _track(profile, event)
    if event.traits:
        _absorb_traits(profile, event.traits)
    location = event.context.get("location")
    if isinstance(location, dict):
        if not profile["city"] and _text(location.get("city")):
            profile["city"] = _text(location.get("city"), 200)
        if not profile["country"] and _text(location.get("country")):
            profile["country"] = _text(location.get("country"), 200)


def merge_profiles(survivor: LeadRow, other: LeadRow) -> None:
    """Fold `other` (the same person, known by another id) into `survivor`, in place."""
    for count in ("visits", "page_views", "events_count", "orders"):
        survivor[count] += other[count]
    for total in ("session_seconds", "engaged_seconds", "revenue"):
        survivor[total] = round(survivor[total] + other[total], 2)
    firsts = [t for t in (survivor["first_seen_at"], other["first_seen_at"]) if t]
    survivor["first_seen_at"] = min(firsts) if firsts else None
    s_last, o_last = survivor["last_seen_at"], other["last_seen_at"]
    other_is_newer = o_last is not None and (s_last is None or o_last > s_last)
    if other_is_newer:
        survivor["last_seen_at"] = o_last
        survivor["visit_started_at"] = other["visit_started_at"]
        survivor["last_url"] = other["last_url"] or survivor["last_url"]
    older, newer = (survivor, other) if other_is_newer else (other, survivor)
    survivor["traits"] = {**older["traits"], **newer["traits"]}
    survivor["contacts"] = {**older["contacts"], **newer["contacts"]}
    survivor["identified"] = bool(survivor["contacts"])
    for key in ("city", "country", "user_id", "subscribed"):
        survivor[key] = newer[key] if newer[key] is not None else older[key]
    interests = dict(survivor["interests"])
    for category, count in other["interests"].items():
        interests[category] = interests.get(category, 0) + count
    survivor["interests"] = interests
    seen = {p.get("product_id") for p in newer["products_viewed"]}
    survivor["products_viewed"] = (
        newer["products_viewed"]
        + [p for p in older["products_viewed"] if p.get("product_id") not in seen]
    )[:MAX_PRODUCTS_VIEWED]
    items = dict(older["cart"].get("items", {}))
    items.update(newer["cart"].get("items", {}))
    survivor["cart"] = _with_totals({**older["cart"], **newer["cart"], "items": items})
