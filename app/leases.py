"""Leases: which process does a piece of work that must run once per deployment (the
temperature refresher), however many API replicas and workers run. A lease is a row; a
process takes it when it is free or expired and keeps it by renewing it before it expires, so
a process that died hands it on within the lease's length."""

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import String, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class Lease(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    until: Mapped[datetime] = mapped_column(UTCDateTime)


async def take(
    engine: AsyncEngine, name: str, holder: str, now: datetime, length: timedelta
) -> bool:
    """Take or renew the lease `name` for `holder` until `now + length`; answers whether
    `holder` has it (False: another holder's lease has not expired)."""
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    t = cast(Table, Lease.__table__)
    statement = insert(t).values(name=name, holder=holder, until=now + length)
    statement = statement.on_conflict_do_update(
        index_elements=[t.c.name],
        set_={"holder": holder, "until": now + length},
        where=(t.c.holder == holder) | (t.c.until <= now),
    )
    async with engine.begin() as conn:
        result = await conn.execute(statement)
    return result.rowcount == 1


async def give_up(engine: AsyncEngine, name: str, holder: str) -> None:
    """Release the lease if `holder` has it (a process stopping cleanly hands it on at once)."""
    t = cast(Table, Lease.__table__)
    async with engine.begin() as conn:
        await conn.execute(t.delete().where(t.c.name == name, t.c.holder == holder))
