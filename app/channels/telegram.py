"""A small client of the Telegram Bot API (https://core.telegram.org/bots/api): one method
call is one POST of JSON to `<base>/bot<token>/<method>`, answered `{"ok": true, "result":
...}` or `{"ok": false, "error_code": ..., "description": ..., "parameters": {"retry_after":
...}}`. The base is configurable (LEADHEAT_TELEGRAM_API_BASE), so tests talk to a local fake.

The token is in the URL path: it never goes into a log line or an error message."""

import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

RESPONSE_KEPT = 2048


@dataclass(frozen=True, slots=True)
class BotAnswer:
    status_code: int | None  # the HTTP status (None: no answer)
    ok: bool
    result: Any
    description: str | None
    retry_after: float | None
    error: str | None
    duration_ms: float
    body: str | None


class BotApi:
    def __init__(self, base_url: str, timeout: float) -> None:
        self._base = base_url.rstrip("/")
        self._client = httpx.AsyncClient(trust_env=False, timeout=timeout, follow_redirects=False)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def call(
        self, token: str, method: str, params: dict[str, Any], timeout: float | None = None
    ) -> BotAnswer:
        started = time.perf_counter()
        url = f"{self._base}/bot{token}/{method}"
        extra = {} if timeout is None else {"timeout": timeout}
        try:
            response = await self._client.post(url, json=params, **extra)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}".replace(token, "<token>")[:500]
            return BotAnswer(None, False, None, None, None, error, _ms(started), None)
        body = response.text[:RESPONSE_KEPT]
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            return BotAnswer(
                response.status_code, False, None, None, None, None, _ms(started), body
            )
        parameters = answer.get("parameters") or {}
        retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
        return BotAnswer(
            response.status_code,
            bool(answer.get("ok")) and response.is_success,
            answer.get("result"),
            answer.get("description"),
            float(retry_after) if isinstance(retry_after, int | float) else None,
            None,
            _ms(started),
            body,
        )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
