"""Logging: one JSON object a line (or text for a person at a terminal), and the request id.

Every HTTP request has an id: the client's `X-Request-ID` when it sends a usable one, else a
new one; the response echoes it (app.metrics.ObservedRequests sets it). While the request
runs it is in `REQUEST_ID`, and every log record made meanwhile carries it as `request_id`
(`RequestIdFilter`). Work done later on the request's behalf carries its id explicitly: the
group commit logs the ids of the requests it stored, and an outbox message keeps the id of
the request that caused it, which its delivery attempts log.

The format is python-json-logger's (orjson): the standard record fields plus whatever a call
passes in `extra=`, so a line is `{"time", "level", "logger", "message", ...extra}`.
`leadheat serve` hands `logging_config` to uvicorn, which applies it in every worker
process; `leadheat worker` applies it itself.
"""

import itertools
import logging
import os
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.orjson import OrjsonFormatter

REQUEST_ID: ContextVar[str | None] = ContextVar("leadheat_request_id", default=None)

# A client's id is kept when it is short and plain (it ends up in logs and headers).
_USABLE_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")

# Record attributes that are not a line's fields: the standard ones, and uvicorn's colours.
_NOT_FIELDS = frozenset([*RESERVED_ATTRS, "color_message", "message", "asctime"])


# A new id is this process's random prefix and a count: unique across processes and replicas
# like a uuid4, without a uuid4's read of the system's random source on every request.
_PREFIX = os.urandom(8).hex()
_COUNT = itertools.count(1)


def new_request_id() -> str:
    """32 hex digits, unique (see `_PREFIX`)."""
    return f"{_PREFIX}{next(_COUNT):016x}"


def request_id_from(value: bytes | None) -> str:
    """The id of a request whose `X-Request-ID` header is `value` (None: it has none)."""
    if value is not None and _USABLE_ID.fullmatch(value):
        return value.decode("ascii")
    return new_request_id()


class RequestIdFilter(logging.Filter):
    """Adds the current request's id to a record that has none of its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = REQUEST_ID.get()
            if request_id is not None:
                record.request_id = request_id
        return True


class JsonFormatter(OrjsonFormatter):
    """python-json-logger's (orjson), its `time` in ISO 8601 UTC with milliseconds."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """For a person at a terminal: the usual line, then the extra fields as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _NOT_FIELDS and not key.startswith("_")
        )
        return f"{line}  {extra}" if extra else line


def resolve_format(log_format: str) -> str:
    """`auto`: text when stderr is a terminal (a person), else JSON (a collector)."""
    if log_format == "auto":
        return "text" if sys.stderr.isatty() else "json"
    return log_format


def logging_config(level: str, log_format: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` dict: the app's and uvicorn's loggers at `level`, other
    libraries' at WARNING (SQLAlchemy would log every statement at INFO, httpx every webhook
    request), all to stderr in `log_format` (json, text or auto); uvicorn's access log off
    (Leadheat's own request line is `access_log`'s, app.metrics)."""
    level = level.upper()
    formatter: dict[str, Any]
    if resolve_format(log_format) == "json":
        formatter = {
            "()": "app.logs.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "reserved_attrs": sorted(_NOT_FIELDS - {"message", "asctime"}),
        }
    else:
        formatter = {
            "()": "app.logs.TextFormatter",
            "fmt": "%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "app.logs.RequestIdFilter"}},
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["request_id"],
            }
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
        "loggers": {
            "app": {"level": level},
            "uvicorn": {"level": level},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }
