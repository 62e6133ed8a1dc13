"""The team's storage rules: people, personal API tokens, sign-in sessions and the sign-in
rate limit. Who a request acts as is resolved in app.sites.dependencies, from these tables."""

import asyncio
import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.db import utcnow, writer
from app.errors import Conflict
from app.team import passwords
from app.team.models import ApiToken, SignInFailure, User, UserSession
from app.team.schemas import UserCreate

TOKEN_PREFIX = "lh_pat_"
SESSION_COOKIE = "leadheat_session"
SESSION_LIFETIME = timedelta(days=14)
# Failed sign-ins allowed per email and per client address within the window; the next one is
# refused (429) until the oldest failure leaves the window. A successful sign-in clears the
# email's count.
FAILURES_ALLOWED = 5
FAILURE_WINDOW = timedelta(minutes=15)


def digest(secret: str) -> str:
    """The stored form of a random token or session id (256 bits: a fast hash suffices)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def create_user(session: AsyncSession, site_id: uuid.UUID, data: UserCreate) -> User:
    """A new person of the site; 409 if the site has one with this email (in any case)."""
    password_hash = await asyncio.to_thread(passwords.hash_password, data.password)
    user = User(
        site_id=site_id,
        email=normalize_email(data.email),
        name=data.name,
        password_hash=password_hash,
        role=data.role,
        time_zone=data.time_zone,
        working_hours=data.working_hours.model_dump(mode="json"),
        on_duty=data.on_duty,
        max_open_hot_leads=data.max_open_hot_leads,
        on_call=data.on_call,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # the request's transaction is rolled back with the 409
        raise Conflict(
            f"This site already has a person with the email {user.email}.", code="email_taken"
        ) from exc
    return user


async def list_users(session: AsyncSession, site_id: uuid.UUID) -> list[User]:
    return list(
        await session.scalars(select(User).where(User.site_id == site_id).order_by(User.email))
    )


async def list_colleagues(session: AsyncSession, site_id: uuid.UUID) -> list[User]:
    """The site's active people, whom a lead can be handed to."""
    query = select(User).where(User.site_id == site_id, User.active).order_by(User.name, User.email)
    return list(await session.scalars(query))


async def get_user(session: AsyncSession, site_id: uuid.UUID, user_id: uuid.UUID) -> User | None:
    return await session.scalar(
        select(User).where(User.id == user_id, User.site_id == site_id).with_for_update()
    )


async def update_user(session: AsyncSession, user: User, changes: dict[str, Any]) -> None:
    """Apply a profile or admin patch; deactivating ends every session and token of the
    person at once (the check on each request would refuse them anyway; deleting them means a
    reactivated person signs in afresh)."""
    password = changes.pop("password", None)
    if changes.get("max_open_hot_leads") == 0:  # a null in a patch means "no change"
        changes["max_open_hot_leads"] = None
    if password is not None:
        await set_password(session, user, password)
    for field, value in changes.items():
        setattr(user, field, value)
    if changes.get("active") is False:
        await end_sessions(session, user.id)
        await session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
    await session.flush()


async def set_password(
    session: AsyncSession, user: User, password: str, keep_session: str | None = None
) -> None:
    """A new password; every session of the person ends but `keep_session` (the id digest of
    the one that changed it), so that whoever knew the old password is signed out."""
    user.password_hash = await asyncio.to_thread(passwords.hash_password, password)
    query = delete(UserSession).where(UserSession.user_id == user.id)
    if keep_session is not None:
        query = query.where(UserSession.id_hash != keep_session)
    await session.execute(query)


async def count_active_admins(session: AsyncSession, site_id: uuid.UUID) -> int:
    """The site's active admins, their rows locked to the end of the transaction: two admins
    demoting each other at once cannot both see the other still there."""
    query = (
        select(User.id)
        .where(User.site_id == site_id, User.role == "admin", User.active)
        .with_for_update()
    )
    return len(list(await session.scalars(query)))


# Tokens


@dataclass(frozen=True, slots=True)
class CreatedToken:
    token: ApiToken
    secret: str


async def create_token(session: AsyncSession, user_id: uuid.UUID, name: str) -> CreatedToken:
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user_id, name=name, token_hash=digest(secret))
    session.add(token)
    await session.flush()
    return CreatedToken(token=token, secret=secret)


async def list_tokens(session: AsyncSession, user_id: uuid.UUID) -> Sequence[ApiToken]:
    return (
        await session.scalars(
            select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at)
        )
    ).all()


async def revoke_token(session: AsyncSession, user_id: uuid.UUID, token_id: uuid.UUID) -> bool:
    """Deleted: the next request with it is refused (tokens are looked up on every request)."""
    result = await session.execute(
        delete(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.user_id == user_id)
        .returning(ApiToken.id)
    )
    return result.first() is not None


# Sessions


@dataclass(frozen=True, slots=True)
class CreatedSession:
    row: UserSession
    session_id: str  # the cookie's value; only its digest is stored


async def start_session(session: AsyncSession, user: User) -> CreatedSession:
    session_id = secrets.token_urlsafe(32)
    row = UserSession(
        id_hash=digest(session_id),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        expires_at=utcnow() + SESSION_LIFETIME,
    )
    session.add(row)
    # Expired sessions of this person go now; those of people who never sign in again, with
    # the sweep (sweep_expired_sessions).
    await session.execute(
        delete(UserSession).where(
            UserSession.user_id == user.id, UserSession.expires_at <= utcnow()
        )
    )
    await session.flush()
    return CreatedSession(row=row, session_id=session_id)


async def sweep_expired_sessions(engine: AsyncEngine, now: datetime, batch: int = 500) -> int:
    """Delete the sessions expired by `now`, `batch` a transaction (short locks however many
    piled up), until none is left; answers how many. Any process may run it at any time: a
    row deleted twice is no harm, and an expired session is refused on every request anyway
    (this is housekeeping, not security)."""
    total = 0
    while True:
        async with writer(engine).begin() as conn:
            expired = (
                select(UserSession.id_hash)
                .where(UserSession.expires_at <= now)
                .limit(batch)
                .scalar_subquery()
            )
            result = await conn.execute(delete(UserSession).where(UserSession.id_hash.in_(expired)))
        deleted = int(cast(Any, result).rowcount or 0)
        total += deleted
        if deleted < batch:
            return total


async def end_session(session: AsyncSession, id_hash: str) -> None:
    await session.execute(delete(UserSession).where(UserSession.id_hash == id_hash))


async def end_sessions(session: AsyncSession, user_id: uuid.UUID) -> None:
    await session.execute(delete(UserSession).where(UserSession.user_id == user_id))


# Sign-in and its rate limit


def failure_keys(email: str, client_ip: str | None) -> list[str]:
    keys = [digest("email:" + normalize_email(email))]
    if client_ip:
        keys.append(digest("ip:" + client_ip))
    return keys


async def too_many_failures(session: AsyncSession, keys: list[str], now: datetime) -> bool:
    """Whether any key (the email, the client address) has used up its failures."""
    counts = await session.execute(
        select(SignInFailure.key, func.count())
        .where(SignInFailure.key.in_(keys), SignInFailure.at > now - FAILURE_WINDOW)
        .group_by(SignInFailure.key)
    )
    return any(count >= FAILURES_ALLOWED for _key, count in counts)


async def record_failure(session: AsyncSession, keys: list[str], now: datetime) -> None:
    # Whatever has left the window goes, every key's: the table holds only the window's
    # failures, however many addresses and emails were tried.
    await session.execute(delete(SignInFailure).where(SignInFailure.at <= now - FAILURE_WINDOW))
    session.add_all(SignInFailure(key=key, at=now) for key in keys)
    await session.flush()


async def clear_failures(session: AsyncSession, email: str) -> None:
    key = digest("email:" + normalize_email(email))
    await session.execute(delete(SignInFailure).where(SignInFailure.key == key))


async def find_candidates(
    session: AsyncSession, email: str, site_ids: list[uuid.UUID] | None
) -> list[User]:
    """The active people with this email (of these sites, if given)."""
    query = select(User).where(User.email == normalize_email(email), User.active)
    if site_ids is not None:
        query = query.where(User.site_id.in_(site_ids))
    return list(await session.scalars(query.limit(10)))


def _verify(candidates: list[User], password: str) -> list[tuple[User, str | None]]:
    if not candidates:  # an unknown email costs one verification all the same
        passwords.verify_password(None, password)
        return []
    return [
        (
            user,
            passwords.hash_password(password)
            if passwords.needs_rehash(user.password_hash)
            else None,
        )
        for user in candidates
        if passwords.verify_password(user.password_hash, password)
    ]


async def verify_candidates(candidates: list[User], password: str) -> list[User]:
    """The candidates whose password this is. Argon2 takes a good tenth of a second of CPU on
    purpose: it runs in a thread (argon2-cffi releases the GIL), not on the event loop, and
    callers hold no transaction meanwhile (on SQLite, no write lock). A hash made with older
    parameters is replaced (written with the caller's next commit)."""
    matched = await asyncio.to_thread(_verify, candidates, password)
    for user, new_hash in matched:
        if new_hash is not None:
            user.password_hash = new_hash
    return [user for user, _ in matched]


async def check_password(
    session: AsyncSession, email: str, password: str, site_ids: list[uuid.UUID] | None
) -> list[User]:
    """The active people with this email (of these sites, if given) whose password it is."""
    return await verify_candidates(await find_candidates(session, email, site_ids), password)


async def get_session(session: AsyncSession, id_hash: str) -> UserSession | None:
    return await session.get(UserSession, id_hash)
