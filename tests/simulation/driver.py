"""Sends a plan to a real server: one asyncio task per lane, each lane's requests in order."""

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.simulation.shop import Plan, Request


@dataclass
class Answer:
    lane: int
    index: int  # the request's place in its lane
    request: Request
    status: int
    body: Any


@dataclass
class Outcome:
    answers: list[Answer] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # transport errors (no HTTP answer)
    seconds: float = 0.0

    @property
    def statuses(self) -> Counter[int]:
        return Counter(a.status for a in self.answers)

    def acknowledged(self) -> list[Answer]:
        return [a for a in self.answers if 200 <= a.status < 300]

    def totals(self) -> Counter[str]:
        """The answers' counts summed: accepted, duplicates, rejected, bots."""
        out: Counter[str] = Counter()
        for a in self.acknowledged():
            for key in ("accepted", "duplicates", "rejected", "bots"):
                out[key] += int(a.body.get(key, 0))
        return out

    @property
    def events_sent(self) -> int:
        return sum(len(a.request.message_ids) for a in self.answers)


async def _lane(
    client: httpx.AsyncClient,
    lane: int,
    requests: list[Request],
    out: Outcome,
    until: float | None,
) -> None:
    for index, request in enumerate(requests):
        if until is not None and time.monotonic() > until:
            return  # out of time: what was answered so far is checked
        try:
            response = await client.post(request.path, json=request.body)
        except httpx.HTTPError as exc:
            out.errors.append(f"lane {lane} request {index}: {exc!r}")
            continue
        try:
            body = response.json()
        except ValueError:
            body = {"not_json": response.text[:200]}
        out.answers.append(Answer(lane, index, request, response.status_code, body))


async def send_plan(
    base_url: str,
    write_key: str,
    plan: Plan,
    timeout: float = 60.0,
    duration: float | None = None,
) -> Outcome:
    """Every lane concurrently, through one connection pool (a connection per lane); with a
    `duration`, lanes send no new request after that many seconds."""
    out = Outcome()
    limits = httpx.Limits(max_connections=len(plan.lanes) + 2)
    started = time.monotonic()
    until = None if duration is None else started + duration
    async with httpx.AsyncClient(
        base_url=base_url, auth=(write_key, ""), timeout=timeout, limits=limits
    ) as client:
        await asyncio.gather(
            *(_lane(client, i, lane, out, until) for i, lane in enumerate(plan.lanes))
        )
    out.seconds = time.monotonic() - started
    return out
