"""Operations tests: metrics and logs of a real server, and a real webhook receiver."""

from tests.webhooks.conftest import clock, receiver  # noqa: F401 (the webhook tests' fixtures)
