"""The database away (refusing connections, missing): every route answers a JSON 503
storage_unavailable with Retry-After, management routes included; one classifier decides."""

import sqlite3

import asyncpg
import httpx
import pytest
from sqlalchemy import exc as sa_exc

from app.db import database_unavailable
from app.main import create_app
from tests.conftest import LiveServer
from tests.faults.helpers import assert_unavailable

BEARER = {"Authorization": "Bearer sk_unknown"}
WRITE_KEY = ("wk_unknown", "")


LEAD = "/v1/leads/5e1d0c4a-0000-4000-8000-00000000000b"  # no such lead; fixed: a test id (xdist)
MANAGEMENT = [
    ("GET", "/v1/leads", None),
    ("PATCH", LEAD, {"status": "qualified"}),
    ("POST", f"{LEAD}/contacts", {"channel": "phone"}),
    ("POST", "/v1/webhooks", {"url": "https://hooks.example.com/x"}),
    ("PUT", "/v1/rules", {"name": "x"}),
    ("GET", "/v1/stats/funnel", None),
]


@pytest.mark.parametrize(("method", "path", "body"), MANAGEMENT)
async def test_management_routes_answer_503_while_the_database_is_away(
    down_client, method, path, body
):
    assert_unavailable(await down_client.request(method, path, headers=BEARER, json=body))


async def test_ingestion_answers_503_while_the_database_is_away(down_client):
    batch = {"batch": [{"type": "track", "event": "x", "anonymousId": "v"}]}
    assert_unavailable(await down_client.post("/v1/batch", auth=WRITE_KEY, json=batch))


async def test_a_real_server_answers_503_in_json_while_the_database_is_away(unreachable):
    with LiveServer(create_app(unreachable)) as server:
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert_unavailable(await client.get("/v1/leads", headers=BEARER))
            assert_unavailable(await client.post(f"{LEAD}/contacts", headers=BEARER, json={}))


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.CrashShutdownError("terminating connection due to crash of another process"),
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        sa_exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"),
        sa_exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
        sa_exc.OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked")),
        sa_exc.OperationalError(
            None, None, sqlite3.OperationalError("unable to open database file")
        ),
    ],
    ids=repr,
)
def test_unavailability_is_recognised(exc):
    assert database_unavailable(exc)
    adapted = Exception("adapted")
    wrapped = sa_exc.DBAPIError("SELECT 1", {}, adapted)
    adapted.__cause__ = exc  # SQLAlchemy's asyncpg adapter keeps the original here
    assert database_unavailable(wrapped)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
        asyncpg.RaiseError("commit refused"),
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        sa_exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("FOREIGN KEY constraint")),
        sa_exc.OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: x")),
        ValueError("a bug"),
    ],
    ids=repr,
)
def test_other_errors_are_not_unavailability(exc):
    assert not database_unavailable(exc)
