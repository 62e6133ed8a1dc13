"""The lead row: a `leads` row's columns as the dict the domains pass around.

Ingestion folds events into it, scoring records its score in it, webhooks describe it, and
the owner of the table (`app.domain.lead_writes`) writes it. A TypedDict: a plain dict at
run time (nothing to build or convert on the hot path), checked by mypy.
"""

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TypedDict, cast


class LeadRow(TypedDict):
    """Every column of `leads` (app.domain.tables.Lead), always present."""

    id: uuid.UUID
    site_id: uuid.UUID
    merged_into_id: uuid.UUID | None
    user_id: str | None
    created_at: datetime
    updated_at: datetime
    first_seen_at: datetime | None
    last_seen_at: datetime | None
    visit_started_at: datetime | None
    visits: int
    page_views: int
    events_count: int
    session_seconds: float
    engaged_seconds: float
    orders: int
    revenue: float
    identified: bool
    city: str | None
    country: str | None
    last_url: str | None
    contacts: dict[str, Any]
    traits: dict[str, Any]
    interests: dict[str, Any]
    products_viewed: list[dict[str, Any]]
    cart: dict[str, Any]
    subscribed: bool | None
    status: str
    status_changed_at: datetime | None
    lost_reason: str | None
    lost_note: str | None
    score: float
    temperature: str
    score_state: dict[str, Any] | None
    rule_set_version: int | None
    scored_at: datetime | None
    became_hot_at: datetime | None
    contact_by: datetime | None
    first_contacted_at: datetime | None
    next_check_at: datetime | None
    owner_id: uuid.UUID | None
    owner_assigned_at: datetime | None


def lead_row(columns: Mapping[Any, Any] | Iterable[tuple[str, Any]]) -> LeadRow:
    """A `leads` row read from the database (every column selected) as a LeadRow."""
    return cast(LeadRow, dict(columns))


def copy_columns(target: LeadRow, source: LeadRow, columns: tuple[str, ...]) -> None:
    """Copy the named columns of `source` into `target` (names from a table of columns, which
    mypy cannot check key by key)."""
    into, values = cast(dict[str, Any], target), cast(Mapping[str, Any], source)
    for column in columns:
        into[column] = values[column]
