"""Reusable types for what a client sends (query, path and body values), bounded so that
every value that passes validation can also be stored, compared in SQL and computed with.

Without them, values pydantic accepts were 500s further in: a NUL character in a string
(PostgreSQL text cannot hold one), an integer past 64 bits (no database column holds one),
a datetime that leaves Python's range once converted to UTC or once a period is subtracted
from it (`to=0001-01-03T00:00:00Z` minus 30 days).
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, Field

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Far inside Python's datetime range (years 1..9999): room for the periods and windows the
# service subtracts or adds (a 30-day default period, rule-set durations, decay).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


def to_safe_utc(value: datetime) -> datetime:
    """The moment in UTC (a time without a zone is UTC), within [EARLIEST, LATEST]."""
    try:
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise ValueError(
            f"must be between {EARLIEST.isoformat()} and {LATEST.isoformat()} (UTC); "
            "a time without a zone is taken as UTC"
        )
    return moment


_DATETIME_DOC: dict[str, Any] = {
    "description": "ISO 8601; without a zone it is UTC; between 1900-01-01 and 9000-01-01",
}

# A datetime as the service stores and compares them: aware, UTC, within a safe range.
UtcDateTime = Annotated[datetime, AfterValidator(to_safe_utc), Field(**_DATETIME_DOC)]
# An integer any database column (BIGINT) can hold.
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
INT32_MAX = 2**31 - 1
# A number stored in an INTEGER column (a rule-set version): 1 .. the 32-bit maximum.
PositiveInt32 = Annotated[int, Field(ge=1, le=INT32_MAX)]


# A string without NUL characters; bound its length where it is used (`Query(max_length=)`,
# `Field(max_length=)`).
Text = Annotated[str, AfterValidator(no_nul)]
