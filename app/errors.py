"""One error hierarchy and one body shape for every error: `{"code", "message", "details"}`."""

import logging
import uuid
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.db import database_unavailable
from app.http import JSONResponse

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5


class AppError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        details: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.details = details or []
        self.headers = headers


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": 'Basic realm="leadheat"'})
        super().__init__(message, **kwargs)


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Conflict(AppError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"


class Unprocessable(AppError):
    status_code = 422
    code = "validation_error"


class TooManyRequests(AppError):
    status_code = 429
    code = "too_many_requests"


class DatabaseUnavailable(AppError):
    """The database cannot be reached or cannot serve now: nothing was changed, retry later."""

    status_code = 503
    code = "storage_unavailable"

    def __init__(
        self, message: str = "The database is unavailable; nothing was changed, retry later."
    ) -> None:
        super().__init__(message, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def error_body(code: str, message: str, details: list[Any] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details or []}


def error_response(exc: AppError) -> JSONResponse:
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details),
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def _app_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": list(err.get("loc", ())), "message": err.get("msg", ""), "type": err.get("type")}
        for err in exc.errors()
    ]
    return JSONResponse(
        error_body("validation_error", "The request is not valid.", details), status_code=422
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(code, str(exc.detail)),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def unexpected_error_response(exc: BaseException) -> JSONResponse:
    """The answer to an exception nothing else handled: a 503 if the database is unavailable,
    else a 500 whose body carries the id the error is logged under (`details[0].error_id`)."""
    if database_unavailable(exc):
        logger.warning("database unavailable: %s: %s", type(exc).__name__, exc)
        return error_response(DatabaseUnavailable())
    error_id = uuid.uuid4().hex
    logger.error("unexpected error, error id %s", error_id, exc_info=exc)
    body = error_body(
        "internal_error",
        f"Something went wrong (error id {error_id}).",
        [{"error_id": error_id}],
    )
    return JSONResponse(body, status_code=500)


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    return unexpected_error_response(exc)


async def _server_error(_request: Request, exc: Exception) -> JSONResponse:
    # Starlette re-raises after this answer, and the server then closes the connection:
    # the client is told, so that it does not send its next request on it.
    response = unexpected_error_response(exc)
    response.headers["Connection"] = "close"
    return response


class CatchAllMiddleware:
    """Answers any exception that escaped the routes and handlers with the JSON error shape,
    instead of Starlette's plain-text 500 (which also re-raises to the server, which then
    closes the connection)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:  # too late to answer: the server logs it and closes the connection
                raise
            await unexpected_error_response(exc)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Database errors: 503 + Retry-After when the database is away, else 500 (one classifier).
    for storage_error in (SQLAlchemyError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(storage_error, _unexpected_error)
    app.add_middleware(CatchAllMiddleware)
    # Starlette's outermost ServerErrorMiddleware uses this one for what escapes even the
    # middleware above (an error in another middleware): JSON there too, never plain text.
    app.add_exception_handler(Exception, _server_error)


class ErrorBody(BaseModel):
    """Every error's body, as OpenAPI documents it."""

    code: str = Field(description="machine-readable, e.g. validation_error, not_found")
    message: str = Field(description="for people")
    details: list[Any] = Field(description="per-field problems, for validation errors")
