"""Resolving a group's events to leads by their ids, merging leads that turn out to be one
person (see `store.py`)."""

import uuid
from datetime import datetime
from typing import Any

from app.domain.events import IngestEvent


class Identities:
    """Resolves ids to leads for one group, merging leads when one event links two of them."""

    def __init__(self) -> None:
        self.known: dict[tuple[uuid.UUID, str, str], uuid.UUID] = {}
        self.parent: dict[uuid.UUID, uuid.UUID] = {}
        self.new_leads: dict[uuid.UUID, uuid.UUID] = {}  # lead id -> site id
        self.new_identities: list[tuple[uuid.UUID, str, str]] = []
        self.existing: set[uuid.UUID] = set()

    def load(self, found: list[tuple[tuple[uuid.UUID, str, str], uuid.UUID]]) -> None:
        for key, lead_id in found:
            self.known[key] = lead_id
            self.existing.add(lead_id)

    def find(self, lead_id: uuid.UUID) -> uuid.UUID:
        root = lead_id
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        return root

    def resolve(self, site_id: uuid.UUID, event: IngestEvent) -> uuid.UUID:
        keys: list[tuple[uuid.UUID, str, str]] = []
        if event.user_id:
            keys.append((site_id, "user", event.user_id))
        if event.anonymous_id:
            keys.append((site_id, "anonymous", event.anonymous_id))
        if event.previous_id:
            as_user = (site_id, "user", event.previous_id)
            keys.append(
                as_user if as_user in self.known else (site_id, "anonymous", event.previous_id)
            )
        # The user id's lead survives a merge: it is the customer card the others join.
        leads = [self.find(self.known[k]) for k in keys if k in self.known]
        if leads:
            target = leads[0]
            for other in leads[1:]:
                if other != target:
                    self.parent[other] = target
        else:
            target = uuid.uuid4()
            self.new_leads[target] = site_id
        for key in keys:
            if key not in self.known:
                self.known[key] = target
                self.new_identities.append(key)
        return target

    def merges(self) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """(loser, survivor) pairs among leads that already exist in the database."""
        return [(lead, self.find(lead)) for lead in self.parent if lead in self.existing]

    def rows(self, now: datetime) -> list[dict[str, Any]]:
        """The new identities, as rows pointing at their (surviving) leads."""
        return [
            {
                "site_id": key[0],
                "kind": key[1],
                "value": key[2],
                "lead_id": self.find(self.known[key]),
                "created_at": now,
            }
            for key in sorted(self.new_identities)
        ]
