"""Standard Webhooks signing (https://www.standardwebhooks.com), with the maintained
`standardwebhooks` package: no hand-written crypto here."""

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A fresh signing secret in the spec's form: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def message_id(raw: object) -> str:
    """The `webhook-id` of a message (stable over every attempt and endpoint)."""
    return f"msg_{getattr(raw, 'hex', raw)}"


def signature_header(signing_secrets: list[str], msg_id: str, at: datetime, body: str) -> str:
    """`webhook-signature`: one `v1,<base64>` per secret, space separated (rotation)."""
    return " ".join(
        Webhook(s).sign(msg_id=msg_id, timestamp=at, data=body) for s in signing_secrets
    )


def headers(signing_secrets: list[str], msg_id: str, at: datetime, body: str) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature_header(signing_secrets, msg_id, at, body),
        "content-type": "application/json",
        "user-agent": "Leadheat-Webhooks/1.0",
    }
