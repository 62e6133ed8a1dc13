"""The lead row type (LeadRow) says what the `leads` table holds: the same columns, in table
order, optional exactly where a column is nullable; a new profile is a whole row; and one
module writes the table."""

import re
import types
import typing
import uuid
from datetime import UTC, datetime
from pathlib import Path

import app as app_package
from app.domain.lead_rows import LeadRow
from app.domain.profile import new_profile
from app.domain.tables import Lead


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


# Ways code writes to `leads`: Core statements on the table or the model, SQL text, COPY, and
# assignments to a loaded lead's attributes (flushed by the session).
LEAD_WRITES = re.compile(
    r"\b_?(?:update|insert\w*|delete)\(\s*(?:_?leads|Lead)\b"
    r"|\b(?:UPDATE|INSERT INTO|DELETE FROM|COPY)\s+leads\b"
    r"|copy\w*\([^)]*[\"']leads[\"']"
    r"|\blead\.\w+\s*=[^=]|setattr\(\s*lead\b"
)


def test_only_lead_writes_writes_to_leads():
    app = Path(app_package.__file__).parent
    owner = app / "domain" / "lead_writes.py"
    writers = {
        f"{path.relative_to(app)}:{n}: {line.strip()}"
        for path in app.rglob("*.py")
        if path != owner and path.relative_to(app).parts[0] != "migrations"  # the schema's own
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if LEAD_WRITES.search(line)
    }
    assert not writers, "write to leads through app.domain.lead_writes"
    assert LEAD_WRITES.search(owner.read_text())  # the patterns still match its own writes
