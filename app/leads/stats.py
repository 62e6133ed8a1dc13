"""A site's lead statistics over a period [start, end).

The sales funnel of the leads first seen in it: temperatures, statuses, the steps first touch
-> lead -> contacted -> qualified -> won with conversion between them, and why leads were
lost. Spam is not a lead: it is counted apart and left out of everything else.

The funnel reads the rollup (app.leads.rollup) for the whole UTC days of the period that are
rolled up: their counts plus the deltas written since by the changing transactions (so the
answer is always that of the leads themselves), and the leads for the rest: the partial days
at its edges and the days not rolled up yet (today). One statement, so that it sees the counts
and the deltas of one moment.

Speed to lead of the leads that turned hot in it: hot to first contact (median, p90), the
share contacted within each mark, won and lost (with reasons), and the leads overdue now; for
the team (the site) and, asked for, per owner. It reads its rollup as the funnel does (counts
of whole rolled-up days by the day a lead turned hot, with the deltas since, in one statement
with the hot leads of the edges through ix_leads_site_id_became_hot_at_contacted), the waits
as per-day histograms of bounded buckets (app.leads.waits); the overdue ones through
ix_leads_site_id_contact_by_new (docs/performance.md)."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import WebhookSettings
from app.domain.tables import Lead
from app.leads import waits
from app.leads.models import (
    FunnelCount,
    FunnelDelta,
    FunnelRollup,
    SpeedCount,
    SpeedDelta,
    TemperatureMove,
)
from app.leads.rollup import ceil_day, floor_day, speed_groups
from app.leads.schemas import LOST_REASONS, STATUSES, TEMPERATURES
from app.team.models import User

SPAM_NOTE = (
    "Spam (leads lost with reason 'spam') is not a lead: it is counted only in 'spam' and left "
    "out of every other count and of the conversion rates' denominators."
)
STEPS_NOTE = (
    "Each step counts the leads that reached it or a later one: lead = a contact is known, "
    "contacted = status contacted or later, or a first contact was recorded (lost leads "
    "included), qualified = qualified or won. The steps follow the order a lead's status "
    "moves in (new, contacted, qualified, won)."
)


def _rate(count: int, previous: int) -> float | None:
    return round(count / previous, 4) if previous else None


def _counted(site_id: uuid.UUID, *where: ColumnElement[bool]) -> Select:
    """The live leads matching `where`, counted by what the funnel groups them on."""
    groups = (
        Lead.temperature,
        Lead.status,
        Lead.lost_reason,
        Lead.identified,
        Lead.first_contacted_at.is_not(None),
    )
    return (
        select(*groups, func.count())
        .where(Lead.site_id == site_id, Lead.merged_into_id.is_(None), *where)
        .group_by(*groups)
    )


def live_funnel_rows(site_id: uuid.UUID, start: datetime, end: datetime) -> Select:
    """The funnel's rows counted from the leads of the whole period."""
    return _counted(site_id, Lead.first_seen_at >= start, Lead.first_seen_at < end)


async def funnel_rows(
    session: AsyncSession, site_id: uuid.UUID, start: datetime, end: datetime
) -> list[tuple[Any, ...]]:
    """(temperature, status, lost_reason, identified, contacted, leads) of the leads first seen
    in [start, end), from the rollup where it can (a group may come in several rows)."""
    rolled_until = await session.scalar(
        select(FunnelRollup.rolled_until).where(FunnelRollup.site_id == site_id)
    )
    # The whole days of the period that are rolled up: [days_start, days_end).
    days_start = ceil_day(start)
    days_end = min(floor_day(end), rolled_until) if rolled_until is not None else days_start
    if days_end <= days_start:
        return [tuple(row) for row in await session.execute(live_funnel_rows(site_id, start, end))]
    rolled = [
        select(
            table.temperature,
            table.status,
            table.lost_reason,
            table.identified,
            table.contacted,
            table.leads,
        ).where(table.site_id == site_id, table.day >= days_start, table.day < days_end)
        for table in (FunnelCount, FunnelDelta)
    ]
    parts: list[Select] = rolled
    if start < days_start:
        parts.append(
            _counted(site_id, Lead.first_seen_at >= start, Lead.first_seen_at < days_start)
        )
    if days_end < end:
        parts.append(_counted(site_id, Lead.first_seen_at >= days_end, Lead.first_seen_at < end))
    both = union_all(*parts).subquery("parts")
    keys = list(both.c)[:5]
    rows = await session.execute(select(*keys, func.sum(list(both.c)[5])).group_by(*keys))
    # A group whose changes cancel out (a lead moved away and back) sums to 0: not a row.
    return [(*row[:5], int(row[5])) for row in rows if row[5]]


async def funnel(
    session: AsyncSession, site_id: uuid.UUID, start: datetime, end: datetime
) -> dict[str, Any]:
    """The funnel of the site's leads first seen in [start, end)."""
    return summarize_funnel(await funnel_rows(session, site_id, start, end), start, end)


READY_INTERESTED_COLD = {"hot": "ready", "warm": "interested", "cold": "cold"}


async def moves(
    session: AsyncSession, site_id: uuid.UUID, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """Leads that moved between temperatures in [start, end), by kind of move: the period's
    rows of `temperature_moves` by its (site, at) index: an hour's sum for ended hours (to
    the hour at the period's edges), a row per kind and transaction for the current one."""
    m = TemperatureMove
    rows = await session.execute(
        select(m.from_temperature, m.to_temperature, func.sum(m.leads))
        .where(m.site_id == site_id, m.at >= start, m.at < end)
        .group_by(m.from_temperature, m.to_temperature)
    )
    order = {t: i for i, t in enumerate(TEMPERATURES)}
    return sorted(
        ({"from_": a, "to": b, "leads": int(n)} for a, b, n in rows if n),
        key=lambda move: (order.get(move["from_"], 9), order.get(move["to"], 9)),
    )


def summarize_funnel(rows: list[tuple[Any, ...]], start: datetime, end: datetime) -> dict[str, Any]:
    by_temperature = dict.fromkeys(TEMPERATURES, 0)
    by_status = dict.fromkeys(STATUSES, 0)
    lost_by_reason = {reason: 0 for reason in LOST_REASONS if reason != "spam"}
    reached = dict.fromkeys(("first_touch", "lead", "contacted", "qualified", "won"), 0)
    spam = 0
    for temperature, status, reason, identified, was_contacted, count in rows:
        if status == "lost" and reason == "spam":
            spam += count
            continue
        by_temperature[temperature] = by_temperature.get(temperature, 0) + count
        by_status[status] = by_status.get(status, 0) + count
        if status == "lost":
            key = reason or "unknown"
            lost_by_reason[key] = lost_by_reason.get(key, 0) + count
        won = status == "won"
        qualified = won or status == "qualified"
        contacted = qualified or status == "contacted" or bool(was_contacted)
        reached["first_touch"] += count
        reached["won"] += count * won
        reached["qualified"] += count * qualified
        reached["contacted"] += count * contacted
        reached["lead"] += count * (contacted or bool(identified))
    steps = []
    previous = None
    for step, count in reached.items():
        steps.append(
            {
                "step": step,
                "count": count,
                "conversion_rate": None if previous is None else _rate(count, previous),
            }
        )
        previous = count
    return {
        "from_": start,
        "to": end,
        "leads": reached["first_touch"],
        "by_temperature": by_temperature,
        "shares": {
            name: _rate(by_temperature.get(temperature, 0), reached["first_touch"])
            for temperature, name in READY_INTERESTED_COLD.items()
        },
        "by_status": by_status,
        "funnel": steps,
        "overall_conversion_rate": _rate(reached["won"], reached["first_touch"]),
        "lost_by_reason": lost_by_reason,
        "spam": spam,
        "notes": [SPAM_NOTE, STEPS_NOTE],
    }


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * q
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    value = sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)
    return round(value, 1)


async def speed_to_lead(
    session: AsyncSession,
    site_id: uuid.UUID,
    start: datetime,
    end: datetime,
    settings: WebhookSettings,
    now: datetime,
    *,
    by_owner: bool = False,
    rollup: bool = True,
) -> dict[str, Any]:
    """Hot -> first contact for the site's leads that turned hot in [start, end); overdue at
    `now`. `by_owner`: also how many of them were won and lost (and why), and all of it per
    owner (the lead's current owner; unowned leads under a null owner). From the rollup where
    it can (`rollup=False`: from the leads alone, the figures the rollup's are checked on)."""
    live = and_(Lead.site_id == site_id, Lead.merged_into_id.is_(None))
    marks = sorted({settings.first_contact_window_minutes, *settings.escalation_marks_minutes})
    period = and_(live, Lead.became_hot_at >= start, Lead.became_hot_at < end)
    people = (
        await _grouped_from_rollup(session, site_id, start, end, marks, by_owner=by_owner)
        if rollup
        else None
    )
    if people is None:
        in_database = session.get_bind().dialect.name == "postgresql"
        summarize = _grouped_in_database if in_database else _grouped_counted_here
        people = await summarize(session, period, marks, by_owner=by_owner)
    team = people.pop(TEAM, None) or _empty(marks, outcomes=by_owner)
    # Overdue: ix_leads_site_id_contact_by_new (its condition is this one's).
    awaiting = and_(
        live, Lead.contact_by < now, Lead.first_contacted_at.is_(None), Lead.status == "new"
    )
    overdue_by: dict[Key, int] = {
        owner: int(n)
        for owner, n in await session.execute(
            select(Lead.owner_id if by_owner else literal(TEAM), func.count())
            .where(awaiting)
            .group_by(Lead.owner_id if by_owner else None)
        )
    }
    out = {"from_": start, "to": end, **team, "overdue_now": sum(overdue_by.values())}
    if by_owner:
        owners: dict[Key, dict[str, Any]] = {
            row.id: {"id": row.id, "name": row.name, "email": row.email}
            for row in await session.execute(
                select(User.id, User.name, User.email).where(
                    User.id.in_([o for o in {*people, *overdue_by} if o is not None])
                )
            )
        }
        out["by_owner"] = [
            {
                "owner": owners.get(owner) if owner is not None else None,
                "owner_id": owner,
                **people.get(owner, _empty(marks)),
                "overdue_now": overdue_by.get(owner, 0),
            }
            for owner in sorted({*people, *overdue_by}, key=lambda o: (o is None, str(o)))
        ]
    return out


TEAM = "team"  # the key of the whole team's figures, next to each owner's id
Key = uuid.UUID | str | None


def _empty(marks: list[float], outcomes: bool = True) -> dict[str, Any]:
    return _summary(0, [], marks, 0 if outcomes else None, {})


def _summary(
    hot_leads: int,
    waits: list[float],
    marks: list[float],
    won: int | None,
    lost: dict[str, int],
) -> dict[str, Any]:
    """The figures of a group of leads counted in Python (`waits` sorted, in seconds); won
    and lost when `won` is given."""
    figures = {
        "hot_leads": hot_leads,
        "contacted": len(waits),
        "median_seconds": percentile(waits, 0.5),
        "p90_seconds": percentile(waits, 0.9),
        "within_minutes": {
            f"{m:g}": round(sum(1 for w in waits if w <= m * 60) / hot_leads, 4)
            if hot_leads
            else 0.0
            for m in marks
        },
    }
    return {**figures, **_outcomes(won, lost)}


def _outcomes(won: int | None, lost: dict[str, int]) -> dict[str, Any]:
    if won is None:
        return {"won": None, "lost": None, "lost_by_reason": None}
    return {"won": won, "lost": sum(lost.values()), "lost_by_reason": dict(sorted(lost.items()))}


async def _grouped_counted_here(
    session: AsyncSession, period: ColumnElement[bool], marks: list[float], *, by_owner: bool
) -> dict[Key, dict[str, Any]]:
    """The period's hot leads' figures, summarized in Python (SQLite): the team's (under
    TEAM) and, `by_owner`, each owner's."""
    rows = (
        await session.execute(
            select(
                Lead.owner_id,
                Lead.became_hot_at,
                Lead.first_contacted_at,
                Lead.status,
                Lead.lost_reason,
            ).where(period)
        )
    ).all()
    groups: dict[Key, list[Any]] = {TEAM: list(rows)} if rows else {}
    for row in rows if by_owner else ():
        groups.setdefault(row.owner_id, []).append(row)
    out = {}
    for key, group in groups.items():
        waits = sorted(
            max(0.0, (r.first_contacted_at - r.became_hot_at).total_seconds())
            for r in group
            if r.first_contacted_at and r.became_hot_at is not None  # never None: the query
        )
        lost: dict[str, int] = {}
        for r in group:
            if r.status == "lost":
                lost[r.lost_reason or "unknown"] = lost.get(r.lost_reason or "unknown", 0) + 1
        won = sum(1 for r in group if r.status == "won") if by_owner else None
        out[key] = _summary(len(group), waits, marks, won, lost)
    return out


async def _grouped_in_database(
    session: AsyncSession, period: ColumnElement[bool], marks: list[float], *, by_owner: bool
) -> dict[Key, dict[str, Any]]:
    """The same figures aggregated by PostgreSQL (a row per group, not one per hot lead): a
    big site has tens of thousands of hot leads a month. The team's and the owners' figures,
    won and lost by reason included, come from one scan (GROUPING SETS). percentile_cont
    interpolates linearly between closest ranks, as `percentile` does."""
    seconds = func.extract("epoch", Lead.first_contacted_at - Lead.became_hot_at)
    # NULL when never contacted: the aggregates below skip those leads.
    wait = case((Lead.first_contacted_at.is_not(None), func.greatest(0.0, cast(seconds, Float))))
    # (owner, is the team's row): without by_owner, one row, the team's.
    group: list[Any] = [Lead.owner_id, func.grouping(Lead.owner_id)] if by_owner else []
    sets = [func.grouping_sets(Lead.owner_id, tuple_())] if by_owner else []
    reasons = [*LOST_REASONS, None]  # None: lost without a reason (before reasons existed)
    lost_with = [
        Lead.lost_reason.is_(None) if r is None else Lead.lost_reason == r for r in reasons
    ]
    outcomes = [
        func.count(case((Lead.status == "won", 1))),
        *(func.count(case((and_(Lead.status == "lost", reason), 1))) for reason in lost_with),
    ]
    rows = await session.execute(
        select(
            *group,
            func.count(),
            func.count(wait),
            func.percentile_cont(0.5).within_group(wait),
            func.percentile_cont(0.9).within_group(wait),
            *(func.count(case((wait <= m * 60, 1))) for m in marks),
            # Won and lost only per owner: the status is not in the covering index. Counted in
            # the same scan (a column per reason), which per owner visits the heap.
            *(outcomes if by_owner else []),
        )
        .where(period)
        .group_by(*sets)
    )
    out: dict[Key, dict[str, Any]] = {}
    for row in rows:
        values: tuple[Any, ...] = tuple(row)
        hot_leads, contacted, median, p90, *rest = values[2:] if by_owner else values
        within, counted = rest[: len(marks)], rest[len(marks) :]
        if not hot_leads:
            continue  # no group (the team's row of an empty period)
        won, by_reason = None, {}
        if by_owner:
            won, per_reason = counted[0], zip(reasons, counted[1:], strict=True)
            by_reason = {r or "unknown": int(n) for r, n in per_reason if n}
        out[_key(values, by_owner)] = {
            "hot_leads": hot_leads,
            "contacted": contacted,
            "median_seconds": None if median is None else round(median, 1),
            "p90_seconds": None if p90 is None else round(p90, 1),
            "within_minutes": {
                f"{m:g}": round(n / hot_leads, 4) if hot_leads else 0.0
                for m, n in zip(marks, within, strict=True)
            },
            **_outcomes(won, by_reason),
        }
    return out


def _speed_rows(site_id: uuid.UUID, start: datetime, end: datetime, dialect: str) -> Select:
    """Speed to lead's rows (owner, bucket, outcome, reason, hot leads, contacted) counted
    from the live leads that turned hot in [start, end), as the triggers write them."""
    groups = speed_groups(dialect)
    return (
        select(*groups, func.count(), func.count(Lead.first_contacted_at))
        .where(
            Lead.site_id == site_id,
            Lead.merged_into_id.is_(None),
            Lead.became_hot_at >= start,
            Lead.became_hot_at < end,
        )
        .group_by(*groups)
    )


def _histogram_rows(dialect: str) -> Select:
    """The counts' histograms ([[bucket, contacted], ...] a day and owner) as rows (owner,
    bucket, NULL, NULL, 0, contacted): summed by the database with the other rows, so that
    Python gets a row per bucket, not one per day and bucket."""
    pair = func.json_each(SpeedCount.waits)
    element = "json_extract(pair.value, '$[{}]')"
    if dialect == "postgresql":
        pair = func.jsonb_array_elements(SpeedCount.waits)
        element = "CAST(pair.value ->> {} AS INTEGER)"
    pairs = pair.table_valued("value").alias("pair")
    return select(
        SpeedCount.owner_id,
        literal_column(element.format(0), Integer()),
        null(),
        null(),
        literal(0),
        literal_column(element.format(1), Integer()),
    ).select_from(SpeedCount.__table__.join(pairs, true()))


async def _grouped_from_rollup(
    session: AsyncSession,
    site_id: uuid.UUID,
    start: datetime,
    end: datetime,
    marks: list[float],
    *,
    by_owner: bool,
) -> dict[Key, dict[str, Any]] | None:
    """The figures of `_grouped_in_database`, from the rollup's counts and deltas of the
    period's whole days before `speed_rolled_until` and the leads of the rest (the partial
    days at its edges, the days not rolled up), in one statement as the funnel's; None when
    the period has no such day (then the leads are read as before). The waits are those of
    their buckets (app.leads.waits)."""
    rolled_until = await session.scalar(
        select(FunnelRollup.speed_rolled_until).where(FunnelRollup.site_id == site_id)
    )
    days_start = ceil_day(start)
    days_end = min(floor_day(end), rolled_until) if rolled_until is not None else days_start
    if days_end <= days_start:
        return None
    dialect = session.get_bind().dialect.name
    whole_days = (SpeedCount.day >= days_start, SpeedCount.day < days_end)
    flat: list[Select] = [
        select(
            table.owner_id,
            table.wait_bucket,
            table.outcome,
            table.lost_reason,
            table.hot_leads,
            table.contacted,
        ).where(table.site_id == site_id, table.day >= days_start, table.day < days_end)
        for table in (SpeedCount, SpeedDelta)
    ]
    flat[0] = flat[0].where(SpeedCount.waits.is_(None))  # the counts' rows by outcome
    flat.append(_histogram_rows(dialect).where(SpeedCount.site_id == site_id, *whole_days))
    if start < days_start:
        flat.append(_speed_rows(site_id, start, days_start, dialect))
    if days_end < end:
        flat.append(_speed_rows(site_id, days_end, end, dialect))
    parts = union_all(*flat).subquery("parts")
    owner, wait, outcome, reason, hot, contacted = list(parts.c)
    keys = [owner, wait, outcome, reason] if by_owner else [wait, outcome, reason]
    rows = await session.execute(select(*keys, func.sum(hot), func.sum(contacted)).group_by(*keys))
    groups: dict[Key, _Tally] = {}
    for row in rows:
        values = tuple(row)
        if not by_owner:
            values = (None, *values)
        who, bucket, won_or_lost, why, hot_leads, waited = values
        for key in (TEAM, who) if by_owner else (TEAM,):
            tally = groups.setdefault(key, _Tally())
            tally.add(bucket, won_or_lost, why, int(hot_leads or 0), int(waited or 0))
    return {key: tally.summary(marks, by_owner) for key, tally in groups.items() if tally.hot_leads}


class _Tally:
    """A group's hot leads, outcomes and waits' histogram, summed from rollup rows."""

    def __init__(self) -> None:
        self.hot_leads = 0
        self.won = 0
        self.lost: dict[str, int] = {}
        self.waits: dict[int, int] = {}

    def add(
        self, bucket: int | None, outcome: str | None, reason: str | None, hot: int, waited: int
    ) -> None:
        self.hot_leads += hot
        if outcome == "won":
            self.won += hot
        elif outcome == "lost":
            key = reason or "unknown"
            self.lost[key] = self.lost.get(key, 0) + hot
        if bucket is not None:
            self.waits[bucket] = self.waits.get(bucket, 0) + waited

    def summary(self, marks: list[float], by_owner: bool) -> dict[str, Any]:
        histogram = sorted((value, n) for value, n in self.waits.items() if n)
        hot = self.hot_leads
        return {
            "hot_leads": hot,
            "contacted": sum(n for _, n in histogram),
            "median_seconds": waits.percentile(histogram, 0.5),
            "p90_seconds": waits.percentile(histogram, 0.9),
            "within_minutes": {
                f"{m:g}": round(waits.within(histogram, m * 60) / hot, 4) if hot else 0.0
                for m in marks
            },
            **_outcomes(
                self.won if by_owner else None,
                {r: n for r, n in self.lost.items() if n} if by_owner else {},
            ),
        }


def _key(row: tuple[Any, ...], by_owner: bool) -> Key:
    """A row's group: TEAM, or the owner (grouping(owner_id) = 1 on the team's rows)."""
    return row[0] if by_owner and not row[1] else TEAM


async def _waits_counted_here(
    session: AsyncSession, period: ColumnElement[bool], marks: list[float]
) -> dict[str, Any]:
    """All the period's hot leads' figures, counted in Python."""
    found = await _grouped_counted_here(session, period, marks, by_owner=False)
    return found.get(TEAM) or _empty(marks, outcomes=False)


async def _waits_in_database(
    session: AsyncSession, period: ColumnElement[bool], marks: list[float]
) -> dict[str, Any]:
    """All the period's hot leads' figures, aggregated by PostgreSQL."""
    found = await _grouped_in_database(session, period, marks, by_owner=False)
    return found.get(TEAM) or _empty(marks, outcomes=False)
