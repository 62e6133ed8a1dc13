"""When the first-contact clock starts outside everybody's working hours: the next opening of a
person's hours, read in their time zone (daylight-saving jumps included), and the earliest of
the team's openings."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from app.team.escalation import Shift, clock_start
from app.team.schemas import WEEKDAYS, Interval, WorkingHours

ZONES = ("UTC", "Europe/Moscow", "Europe/Berlin", "America/New_York", "Asia/Kathmandu")


@st.composite
def intervals(draw: st.DrawFn) -> Interval | None:
    if draw(st.booleans()):
        return None
    start = draw(st.integers(0, 22 * 4)) * 15  # minutes, quarter-hours
    length = draw(st.integers(2, (24 * 60 - 1 - start) // 15)) * 15
    end = min(start + length, 23 * 60 + 59)

    def clock(minutes: int) -> str:
        return f"{minutes // 60:02d}:{minutes % 60:02d}"

    return Interval(start=clock(start), end=clock(end))


hours_strategy = st.builds(
    lambda days: WorkingHours(**dict(zip(WEEKDAYS, days, strict=True))),
    st.lists(intervals(), min_size=7, max_size=7),
)
moments = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=30, deadline=2000)
@given(hours=hours_strategy, zone=st.sampled_from(ZONES), at=moments)
def test_the_next_opening_is_the_first_working_moment_from_now(hours, zone, at):
    opening = hours.next_opening(at, zone)
    if all(getattr(hours, day) is None for day in WEEKDAYS):
        assert opening is None
        return
    assert opening is not None
    assert opening >= at
    assert hours.is_working(opening, zone)
    assert opening - at < timedelta(days=8)
    # Nobody works in between: every interval is at least 30 minutes long, so a working
    # stretch between the two would contain one of these samples.
    probe = at
    while probe < opening:
        assert not hours.is_working(probe, zone), probe
        probe += timedelta(minutes=10)


def test_inside_the_hours_the_clock_starts_at_once_and_after_them_at_the_next_start():
    office = Interval(start="09:00", end="18:00")
    weekdays = WorkingHours(mon=office, tue=office, wed=office, thu=office, fri=office)
    moscow = ZoneInfo("Europe/Moscow")
    tuesday_noon = datetime(2026, 12, 8, 12, 0, tzinfo=moscow)
    assert weekdays.next_opening(tuesday_noon, "Europe/Moscow") == tuesday_noon
    friday_evening = datetime(2026, 12, 11, 19, 0, tzinfo=moscow)
    monday_nine = datetime(2026, 12, 14, 9, 0, tzinfo=moscow)
    assert weekdays.next_opening(friday_evening, "Europe/Moscow") == monday_nine


def test_a_start_skipped_by_the_spring_jump_opens_just_after_it():
    # Berlin, 29 March 2026: 02:00 jumps to 03:00; hours from 02:30 open at 03:30 local.
    night = WorkingHours(sun=Interval(start="02:30", end="06:00"))
    at = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    opening = night.next_opening(at, "Europe/Berlin")
    assert opening == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST
    assert night.is_working(opening, "Europe/Berlin")


def test_the_clock_starts_at_the_earliest_opening_of_the_team():
    office = Interval(start="09:00", end="18:00")
    moscow = Shift(
        WorkingHours(mon=office, tue=office, wed=office, thu=office, fri=office), "Europe/Moscow"
    )
    new_york = Shift(WorkingHours(sat=Interval(start="10:00", end="14:00")), "America/New_York")
    saturday_noon = datetime(2026, 12, 12, 12, 0, tzinfo=UTC)
    # New York opens Saturday 10:00 EST (15:00 UTC), Moscow on Monday 09:00 MSK.
    assert clock_start(saturday_noon, [moscow, new_york]) == datetime(
        2026, 12, 12, 15, 0, tzinfo=UTC
    )
    assert clock_start(saturday_noon, [moscow]) == datetime(2026, 12, 14, 6, 0, tzinfo=UTC)
    assert clock_start(saturday_noon, []) == saturday_noon  # nobody has hours: at once
