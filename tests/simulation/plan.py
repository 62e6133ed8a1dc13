"""Persons (one or two devices, identified or not, crawlers) and the lanes that send them."""

import random
from datetime import datetime, timedelta
from typing import Any

from tests.simulation.shop import CITIES, CRAWLER_UAS, Plan, Request, _Device, _Visitor


def _at(event: dict[str, Any]) -> str:
    return str(event["timestamp"])  # ISO with milliseconds and "Z": sorts as time does


def _some_time(rng: random.Random, starts: list[datetime]) -> datetime:
    return rng.choice(starts) + timedelta(seconds=rng.randint(20, 200), milliseconds=1)


def _carry_user_id(events: list[dict[str, Any]], user_id: str) -> None:
    """After a device identifies (or is aliased), its calls carry the userId, as Segment's
    libraries and the tracker send them."""
    known = False
    for event in sorted(events, key=_at):
        if event["type"] in ("identify", "alias"):
            known = True
        elif known:
            event["userId"] = user_id


def person_events(rng: random.Random, index: int, window: tuple[datetime, datetime]) -> tuple:
    """(each device's events, crawler anonymousId or None, (userId, anonymousIds) or None)
    of one person."""
    if rng.random() < 0.06:
        crawler = _Device(f"crawler-{index}", user_agent=rng.choice(CRAWLER_UAS))
        bot = _Visitor(rng, "", crawler, window)
        bot.sessions(rng.randint(1, 3), 0.0)
        return [bot.events], crawler.anonymous_id, None
    user_id = f"user-{index}"
    intent = rng.choice([0.0, 0.05, 0.2, 0.5, 0.8])
    main = _Visitor(rng, user_id, _Device(f"anon-{index}-a"), window)
    starts = main.sessions(rng.randint(1, 4), intent)
    traits: dict[str, Any] = {"email": f"{user_id}@mail.example", "city": rng.choice(CITIES)}
    if rng.random() < 0.5:
        traits["phone"] = f"+7900{index:07d}"
    if rng.random() < 0.1:
        main.track(_some_time(rng, starts), "Contact Requested", phone=f"+7901{index:07d}")
    if rng.random() < 0.12:
        main.track(_some_time(rng, starts), "Subscribed", email=traits["email"])
        if rng.random() < 0.35:
            main.track(_some_time(rng, starts) + timedelta(hours=2), "Unsubscribed")
    if rng.random() > 0.45:
        return [main.events], None, None
    main.identify(_some_time(rng, starts), traits)
    _carry_user_id(main.events, user_id)
    devices = [main.device.anonymous_id]
    if rng.random() < 0.35:  # the same person on a second device: a merge
        other = _Visitor(rng, user_id, _Device(f"anon-{index}-b"), window)
        other_starts = other.sessions(rng.randint(1, 2), intent)
        at = _some_time(rng, other_starts)
        if rng.random() < 0.6:
            other.identify(at, {"email": traits["email"]})
        else:
            other.emit(at, "alias", userId=user_id, previousId=other.device.anonymous_id)
        _carry_user_id(other.events, user_id)
        devices.append(other.device.anonymous_id)
        return [main.events, other.events], None, (user_id, devices)
    return [main.events], None, (user_id, devices)


def lane_requests(rng: random.Random, events: list[dict[str, Any]]) -> tuple[list[Request], int]:
    """A lane's requests: single calls and batches of what is due together, in time order,
    with some events (or whole requests) sent again a few requests later. Returns the
    requests and the number of re-sent event copies."""
    events = sorted(events, key=_at)
    requests: list[Request] = []
    resends: list[tuple[int, list[dict[str, Any]]]] = []  # (due request index, copies)
    copies = 0
    i = 0
    while i < len(events) or resends:
        more = i < len(events)
        due = [c for when, c in resends if when <= len(requests) or not more]
        resends = [(when, c) for when, c in resends if when > len(requests) and more]
        again = [e for chunk in due for e in chunk]
        copies += len(again)
        identity = more and events[i]["type"] in ("identify", "alias")
        if more and rng.random() < (0.3 if identity else 0.6):  # a batch, with retries
            chunk = events[i : i + rng.randint(2, 20)]
            i += len(chunk)
            requests.append(_request(again + chunk))
        else:
            if again:
                requests.append(_request(again, resent=True))
            if more:
                requests.append(_request([events[i]]))
                i += 1
        if not more or requests[-1].resent:
            continue
        sent = requests[-1].body.get("batch") or [requests[-1].body]
        roll = rng.random()
        if roll < 0.03:  # the client never saw the answer: the whole request again
            resends.append((len(requests) + rng.randint(1, 4), list(sent)))
        elif roll < 0.1:
            resends.append((len(requests) + rng.randint(1, 4), [rng.choice(sent)]))
    return requests, copies


def _request(events: list[dict[str, Any]], resent: bool = False) -> Request:
    ids = [str(e["messageId"]) for e in events]
    if len(events) == 1 and events[0]["type"] in ("track", "page", "identify", "alias"):
        return Request(f"/v1/{events[0]['type']}", dict(events[0]), ids, resent)
    return Request("/v1/batch", {"batch": [dict(e) for e in events]}, ids, resent)


def make_plan(seed: int, visitors: int, lanes: int, now: datetime, days: float = 3.0) -> Plan:
    """The traffic of `visitors` persons over the `days` before `now`, sent by `lanes`
    concurrent clients."""
    rng = random.Random(seed)
    window = (now - timedelta(days=days + 0.25), now - timedelta(hours=6))
    by_lane: list[list[dict[str, Any]]] = [[] for _ in range(lanes)]
    plan = Plan(lanes=[], events={}, bots=set(), crawler_ids=set(), persons={}, resent=0)
    for index in range(visitors):
        devices, crawler, person = person_events(rng, index, window)
        for n, events in enumerate(devices):
            # Half the second devices send through another client (a phone and a laptop):
            # their events reach the merged lead in no particular order.
            far = n and rng.random() < 0.5
            by_lane[(index + far) % lanes].extend(events)
        for event in (e for events in devices for e in events):
            plan.events[event["messageId"]] = event
            if crawler:
                plan.bots.add(event["messageId"])
        if crawler:
            plan.crawler_ids.add(crawler)
        if person:
            plan.persons[person[0]] = person[1]
    for lane_events in by_lane:
        requests, copies = lane_requests(rng, lane_events)
        plan.lanes.append(requests)
        plan.resent += copies
    return plan
