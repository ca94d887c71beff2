"""HTTP errors: the one table mapping the FtsdError tree to HTTP statuses, and the handlers that turn every error
(library, validation, routing, unexpected) into JSON `{"error": {"code", "message"}}`. No response ever carries a
traceback: unexpected exceptions are logged with theirs and answered with a 500 and a fixed message."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ftsd.errors import (
    ClusterError,
    ConfigError,
    DecodeError,
    FtsdError,
    IndexLockedError,
    MailboxError,
    QueryError,
    SchemaVersionError,
    StoreError,
    UnknownUserError,
    UsageError,
)

log = logging.getLogger(__name__)

# Most specific class first is not needed: the lookup walks each exception's MRO.
STATUS: dict[type[FtsdError], tuple[int, str]] = {
    QueryError: (400, "bad_query"),
    UsageError: (400, "bad_request"),
    UnknownUserError: (404, "unknown_user"),
    MailboxError: (404, "unknown_mailbox"),
    IndexLockedError: (503, "index_busy"),
    ClusterError: (503, "coordinator_unavailable"),
    SchemaVersionError: (503, "index_rebuilding"),
    StoreError: (500, "index_error"),
    DecodeError: (500, "decode_error"),
    ConfigError: (500, "config_error"),
    FtsdError: (500, "error"),
}

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
               413: "body_too_large", 415: "unsupported_media_type", 422: "invalid_request", 503: "unavailable"}


class ApiError(Exception):
    """An error of the API layer itself (unknown job id, service not ready), with its status and code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def status_of(exc: FtsdError) -> tuple[int, str]:
    """(HTTP status, error code) of a library error, from STATUS."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500, "error"


async def _ftsd_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FtsdError)
    status, code = status_of(exc)
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc)
    headers = {"Retry-After": "5"} if status == 503 else None
    return error_response(status, code, str(exc), headers)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "the request body is not valid JSON")
    parts = []
    for e in errors[:10]:
        where = ".".join(str(p) for p in e.get("loc", ()))
        parts.append(f"{where}: {e.get('msg', 'invalid')}")
    return error_response(422, "invalid_request", "; ".join(parts) or "invalid request")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s: unexpected error", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error; the service log has the details")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FtsdError, _ftsd_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
