"""One-click links in messages (claim, contacted): signed (itsdangerous), expiring, and naming
the person they were sent to, the lead and the action. Single use is kept by the table of used
links (`used_action_links`), by the link's own id."""

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.crypto import SecretBox

ACTIONS = ("claim", "contacted")
_PURPOSE = "leadheat.channels.action-link"


class LinkInvalid(Exception):
    """Not a link of ours (bad signature or shape)."""


class LinkExpired(Exception):
    """A link of ours, too old."""


@dataclass(frozen=True, slots=True)
class ActionLink:
    link_id: str
    user_id: uuid.UUID
    lead_id: uuid.UUID
    action: str
    issued_at: datetime


class LinkSigner:
    def __init__(self, box: SecretBox, max_age: timedelta) -> None:
        # itsdangerous signs with the last key and checks with every one.
        keys = list(reversed(box.derived_keys(_PURPOSE)))
        self._serializer = URLSafeTimedSerializer(keys, salt="action")
        self.max_age = max_age

    def sign(self, user_id: uuid.UUID, lead_id: uuid.UUID, action: str) -> str:
        assert action in ACTIONS
        link_id = secrets.token_urlsafe(12)
        return str(self._serializer.dumps([link_id, str(user_id), str(lead_id), action]))

    def load(self, token: str) -> ActionLink:
        try:
            payload, signed_at = self._serializer.loads(
                token, max_age=int(self.max_age.total_seconds()), return_timestamp=True
            )
        except SignatureExpired as exc:
            raise LinkExpired from exc
        except BadSignature as exc:
            raise LinkInvalid from exc
        try:
            link_id, user_id, lead_id, action = payload
            if action not in ACTIONS:
                raise ValueError(action)
            return ActionLink(
                str(link_id),
                uuid.UUID(user_id),
                uuid.UUID(lead_id),
                action,
                signed_at.astimezone(UTC),
            )
        except (TypeError, ValueError) as exc:
            raise LinkInvalid from exc
