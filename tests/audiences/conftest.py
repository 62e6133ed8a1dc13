"""Every webhook message these tests queue is checked against the documented payloads."""

from tests.webhooks.conftest import _every_message_is_as_documented

__all__ = ["_every_message_is_as_documented"]
