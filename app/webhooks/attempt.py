"""One HTTP delivery attempt, safely: http(s) only, no redirects, a bounded response read, a
per-attempt timeout, and no connections to loopback, private, link-local or metadata
addresses unless allowed.

The address check is made on the address actually connected to: the host is resolved here,
checked, and the request goes to that IP with the original Host header and TLS SNI (and the
certificate checked against the host name). A DNS answer that changes between a check and the
connection (DNS rebinding) cannot slip through.
"""

import asyncio
import email.utils
import ipaddress
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from app.config import WebhookSettings


class RefusedAddress(Exception):
    """The URL may not be delivered to (scheme, or an address not on the public internet)."""


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    status_code: int | None
    response_body: str | None
    error: str | None
    duration_ms: float
    retry_after_seconds: float | None = None
    # What the target said of its own, beyond an HTTP status (a channel: the Bot API's
    # `ok`, an SMTP server's acceptance); None: the status alone says.
    accepted: bool | None = None
    # The target is gone for good (a webhook's 410, a Telegram chat that blocked the bot):
    # why, and the target is disabled at once.
    gone: str | None = None

    @property
    def succeeded(self) -> bool:
        if self.accepted is not None:
            return self.accepted
        return self.status_code is not None and 200 <= self.status_code < 300


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Only globally routable unicast: not loopback, private, link-local (cloud metadata at
    169.254.169.254), CGNAT, multicast, reserved or unspecified."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, allow_private: bool) -> httpx.URL:
    """Refuse what can be refused without DNS (scheme, literal internal addresses)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise RefusedAddress(f"not a valid URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise RefusedAddress("only http and https URLs are allowed")
    if not parsed.host:
        raise RefusedAddress("the URL has no host")
    if parsed.userinfo:
        raise RefusedAddress("credentials in the URL are not allowed")
    if not allow_private:
        if parsed.host.lower() in ("localhost", "localhost.localdomain"):
            raise RefusedAddress("loopback addresses are not allowed")
        try:
            ip = ipaddress.ip_address(parsed.host)
        except ValueError:
            return parsed
        if not is_public(ip):
            raise RefusedAddress(f"{ip} is not a public address")
    return parsed


async def _pinned(url: httpx.URL) -> tuple[httpx.URL, dict[str, str], dict[str, str]]:
    """Resolve the host, refuse internal addresses, and aim the request at the IP."""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            url.host, port, type=socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        raise RefusedAddress(f"cannot resolve {url.host}: {exc}") from exc
    ips = [ipaddress.ip_address(info[4][0]) for info in infos]
    refused = [ip for ip in ips if not is_public(ip)]
    if not ips or refused:
        raise RefusedAddress(f"{url.host} resolves to {refused[0]}, not a public address")
    host_header = url.host if url.port is None else f"{url.host}:{url.port}"
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return url.copy_with(host=str(ips[0])), {"host": host_header}, extensions


def retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds (a number of seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        at = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(0.0, (at - now).total_seconds())


class Sender:
    """Sends attempts over one connection pool (per process)."""

    def __init__(self, settings: WebhookSettings) -> None:
        self._settings = settings
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,  # never through an environment proxy: it would bypass the check
            timeout=settings.attempt_timeout_seconds,
            limits=httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=32),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, url: str, headers: dict[str, str], body: bytes) -> AttemptOutcome:
        started = time.perf_counter()
        status: int | None = None
        text: str | None = None
        error: str | None = None
        wait: float | None = None
        try:
            async with asyncio.timeout(self._settings.attempt_timeout_seconds):
                status, text, wait = await self._post(url, headers, body)
        except RefusedAddress as exc:
            error = f"refused: {exc}"
        except TimeoutError:
            error = "timeout"
        except httpx.TimeoutException:
            error = "timeout"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        except OSError as exc:
            error = f"connection error: {exc}"[:500]
        duration = round((time.perf_counter() - started) * 1000, 2)
        return AttemptOutcome(status, text, error, duration, wait)

    async def _post(
        self, url: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, float | None]:
        allow = self._settings.allow_private_networks
        target = check_url(url, allow)
        extra: dict[str, str] = {}
        extensions: dict[str, str] = {}
        if not allow:
            target, extra, extensions = await _pinned(target)
        request = self._client.build_request(
            "POST", target, headers={**headers, **extra}, content=body, extensions=extensions
        )
        response = await self._client.send(request, stream=True)
        try:
            limit = self._settings.response_body_bytes
            kept = bytearray()
            async for chunk in response.aiter_raw():
                kept.extend(chunk[: limit - len(kept)])
                if len(kept) >= limit:
                    break
        finally:
            await response.aclose()
        wait = None
        if response.status_code in (429, 503):
            wait = retry_after(response.headers.get("retry-after"), datetime.now(UTC))
        return response.status_code, kept.decode("utf-8", "replace"), wait
