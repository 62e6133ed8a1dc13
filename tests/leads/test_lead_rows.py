"""The lead row type (LeadRow) says what the `leads` table holds: the same columns, in table
order, optional exactly where a column is nullable; and a new profile is a whole row."""

import types
import typing
import uuid
from datetime import UTC, datetime

from app.domain.lead_rows import LeadRow
from app.leads.models import Lead
from app.leads.profile import new_profile


def _optional(annotation: object) -> bool:
    return isinstance(annotation, types.UnionType) and type(None) in typing.get_args(annotation)


def test_the_lead_row_has_every_column_of_leads_in_table_order():
    columns = [c.name for c in Lead.__table__.columns]
    assert list(typing.get_type_hints(LeadRow)) == columns
    assert LeadRow.__required_keys__ == frozenset(columns)


def test_a_lead_row_column_is_optional_exactly_where_the_table_allows_null():
    hints = typing.get_type_hints(LeadRow)
    optional = {name for name, annotation in hints.items() if _optional(annotation)}
    nullable = {c.name for c in Lead.__table__.columns if c.nullable}
    assert optional == nullable


def test_a_new_profile_is_a_whole_lead_row():
    profile = new_profile(uuid.uuid4(), uuid.uuid4(), datetime(2026, 1, 1, tzinfo=UTC))
    assert list(profile) == list(typing.get_type_hints(LeadRow))
