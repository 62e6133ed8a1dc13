"""Sites and their keys: the write key is public (it goes into the shop's pages), the secret
key is shown once and only its SHA-256 is stored (it is 256 random bits, so a slow password
hash would add nothing but latency to every dashboard poll)."""

import asyncio
import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.scoring import scorer
from app.sites.models import Site

WRITE_KEY_PREFIX = "wk_"
SECRET_KEY_PREFIX = "sk_"
WRITE_KEY_MAX_LENGTH = 64  # the column's length


def hash_secret_key(secret_key: str) -> str:
    return hashlib.sha256(secret_key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class CreatedSite:
    site: Site
    write_key: str
    secret_key: str


async def create_site(
    session: AsyncSession, name: str, allowed_origins: list[str] | None = None
) -> CreatedSite:
    """Create a site with fresh keys; the caller shows the secret key once."""
    write_key = WRITE_KEY_PREFIX + secrets.token_urlsafe(18)
    secret_key = new_secret_key()
    site = Site(
        name=name,
        write_key=write_key,
        secret_key_hash=hash_secret_key(secret_key),
        allowed_origins=[normalize_origin(o) for o in allowed_origins or []],
    )
    session.add(site)
    await session.flush()
    await scorer.publish_default(session, site.id)
    return CreatedSite(site=site, write_key=write_key, secret_key=secret_key)


async def count_sites(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Site)) or 0)


async def list_sites(session: AsyncSession) -> list[Site]:
    return list(await session.scalars(select(Site).order_by(Site.created_at)))


async def get_by_secret_key(session: AsyncSession, secret_key: str) -> Site | None:
    return await session.scalar(
        select(Site).where(Site.secret_key_hash == hash_secret_key(secret_key))
    )


def new_secret_key() -> str:
    return SECRET_KEY_PREFIX + secrets.token_urlsafe(32)


async def find_site(session: AsyncSession, ref: str) -> list[Site]:
    """The site with this id, else the sites with this name (names need not be unique)."""
    try:
        site = await session.get(Site, uuid.UUID(ref))
    except ValueError:
        site = None
    if site is not None:
        return [site]
    return list(await session.scalars(select(Site).where(Site.name == ref)))


async def rotate_secret_key(
    session: AsyncSession, site_id: uuid.UUID, current_hash: str
) -> str | None:
    """A new secret key for the site, in clear (to show once); the old one stops working as
    soon as this commits: keys are not cached, every request looks its hash up. None if the
    key was rotated meanwhile (`current_hash` no longer the site's): one of two concurrent
    rotations wins, and the other caller learns that its key is gone."""
    secret_key = new_secret_key()
    changed = await session.execute(
        update(Site)
        .where(Site.id == site_id, Site.secret_key_hash == current_hash)
        .values(secret_key_hash=hash_secret_key(secret_key))
        .returning(Site.id)
        .execution_options(synchronize_session=False)
    )
    return secret_key if changed.first() is not None else None


def normalize_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


@dataclass(frozen=True, slots=True)
class SiteRef:
    """What ingestion needs to know about a site, cached by write key."""

    id: uuid.UUID
    allowed_origins: frozenset[str]

    def allows_origin(self, origin: str | None) -> bool:
        """No origins listed means any origin may send (the write key is public anyway)."""
        if origin is None or not self.allowed_origins:
            return True
        return normalize_origin(origin) in self.allowed_origins


class WriteKeyCache:
    """Write key -> site, kept in memory for a short time so ingestion skips a query.

    One query per key at a time: when an entry expires under load, the requests that find it
    expired wait for the same query instead of each running one (before, under load, py-spy
    caught these queries at each expiry, and the pool opening connections for them)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], ttl_seconds: float) -> None:
        self._sessionmaker = sessionmaker
        self._ttl = ttl_seconds
        self._entries: dict[str, tuple[float, SiteRef | None]] = {}
        self._loading: dict[str, asyncio.Future[SiteRef | None]] = {}

    async def get(self, write_key: str) -> SiteRef | None:
        if "\x00" in write_key or len(write_key) > WRITE_KEY_MAX_LENGTH:
            # No site has such a key, and PostgreSQL refuses NUL in text: asking would be a
            # database error (it was a 503) for what is an unknown key.
            return None
        entry = self._entries.get(write_key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        loading = self._loading.get(write_key)
        if loading is None:
            loading = self._loading[write_key] = asyncio.ensure_future(self._load(write_key))
            loading.add_done_callback(lambda done: self._loaded(write_key, done))
        # Shielded: a request that goes away does not cancel the query the others wait for.
        return await asyncio.shield(loading)

    async def _load(self, write_key: str) -> SiteRef | None:
        async with self._sessionmaker() as session:
            site = await session.scalar(select(Site).where(Site.write_key == write_key))
        ref = (
            SiteRef(id=site.id, allowed_origins=frozenset(site.allowed_origins or []))
            if site
            else None
        )
        if len(self._entries) > 10_000:  # unknown keys must not grow memory without bound
            self._entries.clear()
        self._entries[write_key] = (time.monotonic() + self._ttl, ref)
        return ref

    def _loaded(self, write_key: str, done: asyncio.Future[SiteRef | None]) -> None:
        self._loading.pop(write_key, None)
        if not done.cancelled():
            done.exception()  # retrieved: every waiter has its own copy of a failure

    def invalidate(self) -> None:
        self._entries.clear()
