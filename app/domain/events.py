"""The event vocabulary every domain shares: a validated event, how to read its properties,
its page URL, and which visit of its lead it belongs to."""

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any


@dataclass(slots=True)
class IngestEvent:
    """A validated event, ready to store. `timestamp` is corrected for client clock skew."""

    message_id: str
    type: str
    name: str | None
    anonymous_id: str | None
    user_id: str | None
    previous_id: str | None
    timestamp: datetime
    original_timestamp: datetime | None
    sent_at: datetime | None
    received_at: datetime
    properties: dict[str, Any]
    traits: dict[str, Any]
    context: dict[str, Any]
    is_bot: bool = False
    lead_id: uuid.UUID | None = field(default=None)

    @property
    def url(self) -> str | None:
        return page_url(self.context, self.properties)


def page_url(context: Mapping[str, Any] | None, properties: Mapping[str, Any] | None) -> str | None:
    """The page an event happened on: `context.page.url` (Segment's libraries), else
    `properties.url` (page calls); None when the one found is not text."""
    page = (context or {}).get("page")
    url = page.get("url") if isinstance(page, dict) else None  # JSON: dicts (cheaper test)
    url = url or (properties or {}).get("url")
    return url if isinstance(url, str) else None


def visit_number(
    visits: int, last_seen_at: datetime | None, at: datetime, visit_timeout: timedelta
) -> int:
    """The visit an event at `at` belongs to, for a lead with `visits` visits whose latest
    event was at `last_seen_at`: a new one after more than `visit_timeout` without events
    (or for its first event). An event older than the latest one opens no visit."""
    if last_seen_at is None or at - last_seen_at > visit_timeout:
        return visits + 1
    return visits


def property_number(value: Any) -> float | None:
    """A property's value as a number, as shops send them: 499, 499.5 and "499" alike; true,
    false, NaN, infinities and anything else are not numbers."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, int | float | str) else None
    except (ValueError, OverflowError):  # "abc"; an int too large for a float
        return None
    # "NaN" and "Infinity" parse, but add nothing a shop means (and NaN would stick to sums).
    return number if number is not None and math.isfinite(number) else None
