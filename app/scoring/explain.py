"""A breakdown line in words, from its numbers (`BreakdownItem.why`, computed by the engine):

    City: Kazan matched option 'Kazan' x 0.8 x weight 20 = 16
    Page views: 8 x 1 = 8, capped at 5
    Product Added: 10, half-life 7 days, 3 days ago -> 7.43

Pure, like the engine: the lead card and anything else that shows a breakdown call `sentence`.
"""

from datetime import datetime

from app.scoring.types import BreakdownItem, Why

_NEGATIVE = " (negative: takes points away)"
_UNITS = (("day", 86_400.0), ("hour", 3_600.0), ("minute", 60.0), ("second", 1.0))


def sentence(item: BreakdownItem) -> str:
    """The line as a person reads it: the rule's label, then why, in words and numbers."""
    why = item.why
    if item.kind == "behaviour":
        return f"{item.label}: {_behaviour(item, why)}"
    if item.kind == "fit":
        return f"{item.label}: {_fit(why, item.points)}"
    if item.kind == "hard":
        count = why.count or item.events
        until = f"hot until {_moment(item.hot_until)}" if item.hot_until else "hot"
        return f"{item.label}: {until} ({_plural(count, 'event')} in sequence)"
    bound = "at most" if (why.limit or 0.0) > 0.0 else "at least"
    return (
        f"{item.label}: the rules add up to {number(why.rules_total or 0.0)}, "
        f"the score is {bound} {number(why.limit or 0.0)}"
    )


def number(value: float) -> str:
    """2 decimals at most, none when whole: 16, 7.43, -0.5."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def duration(seconds: float) -> str:
    """The largest unit that fits, to a tenth: '7 days', '1.5 hours', '30 seconds'."""
    for unit, size in _UNITS:
        if seconds >= size or unit == "second":
            amount = round(seconds / size, 1)
            return _plural(amount, unit)
    raise AssertionError("unreachable")


def _behaviour(item: BreakdownItem, why: Why) -> str:
    count, each = why.count or 0, why.points_each or 0.0
    head = number(each) if count == 1 else f"{count} x {number(each)} = {number(why.total or 0)}"
    if why.frequency == "once_per_lead":
        head += " (once per lead)"
    elif why.frequency == "once_per_visit":
        head += " (once per visit)"
    if why.half_life is not None:
        head += f", half-life {duration(why.half_life)}"
        if count != 1:
            head += f", {number(why.value_at_last_event or 0.0)} at the last event"
        head += f", {_ago(why.age or 0.0)} -> {number(why.decayed or 0.0)}"
    if why.capped:
        head += f", capped at {number(item.points)}"
    return head + (_NEGATIVE if item.points < 0 else "")


def _fit(why: Why, points: float) -> str:
    coefficient, weight = number(why.coefficient or 0.0), number(why.weight or 0.0)
    tail = f" x {coefficient} x weight {weight} = {number(points)}"
    if why.criterion == "range":
        value = why.value if isinstance(why.value, float | int) else 0.0
        if why.field == "recency_hours":
            head = (
                f"last seen {_ago(value * 3600.0)}, in {_band(why.band_min, why.band_max, 'hour')}"
            )
        else:
            head = f"{number(value)} in {_band(why.band_min, why.band_max)}"
    elif why.criterion == "contacts":
        head = f"{', '.join(why.option or ())} -> coefficient {coefficient}"
        tail = f" x weight {weight} = {number(points)}"
    else:
        lead = why.value
        shown = ", ".join(lead) if isinstance(lead, tuple) else str(lead)
        head = f"{shown} matched option '{' / '.join(why.option or ())}'"
    return head + tail + (_NEGATIVE if points < 0 else "")


def _band(low: float | None, high: float | None, unit: str = "") -> str:
    def end(value: float) -> str:
        return _plural(value, unit) if unit else number(value)

    if low is None and high is None:
        return "any value"
    if low is None:
        return f"the band under {end(high or 0.0)}"
    if high is None:
        return f"the band {end(low)} and more"
    return f"the band {number(low)} to {end(high)}"


def _ago(seconds: float) -> str:
    return "just now" if seconds < 1.0 else f"{duration(seconds)} ago"


def _plural(amount: float, unit: str) -> str:
    shown = number(amount)
    return f"{shown} {unit}" + ("" if shown == "1" else "s")


def _moment(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")
