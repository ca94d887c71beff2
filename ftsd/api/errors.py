"""HTTP errors: statuses from the one table of errors.py (OUTCOMES), and the handlers that turn every error
(library, validation, routing, unexpected) into JSON `{"error": {"code", "message"}}`. No response ever carries a
traceback or an absolute path (public_message: the log keeps the full text); unexpected exceptions are logged with
their traceback and answered with a 500 and a fixed message."""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ftsd.errors import OUTCOMES, FtsdError, outcome_of

log = logging.getLogger(__name__)

# The status table is errors.OUTCOMES (shared with the CLI's exit codes), looked up along each error's MRO.
STATUS: dict[type[FtsdError], tuple[int, str]] = {cls: (o.status, o.code) for cls, o in OUTCOMES.items()}

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
               413: "body_too_large", 415: "unsupported_media_type", 422: "invalid_request", 503: "unavailable"}


class ApiError(Exception):
    """An error of the API layer itself (unknown job id, service not ready), with its status and code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# An absolute path: a '/' that does not follow a word, a '/' or a ':' (URLs, mailbox names), then its components.
_PATH = re.compile(r"(?<![\w/:.~-])/(?:[^\s'\"/:,;()\[\]<>]+/)*([^\s'\"/:,;()\[\]<>]*)")


MAX_MESSAGE_CHARS = 2000  # an error quoting a hostile query of megabytes is cut


def public_message(text: str) -> str:
    """The text with every absolute path cut to its last component (`.../name`): error bodies must not tell a
    client where the mail, the indexes or the service's files live. Long texts are cut."""
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[:MAX_MESSAGE_CHARS] + f"... ({len(text)} characters)"
    return _PATH.sub(lambda m: ".../" + m[1], text)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one place every JSON error body is made (paths are cut here)."""
    return JSONResponse({"error": {"code": code, "message": public_message(message)}}, status_code=status,
                        headers=headers)


def status_of(exc: FtsdError) -> tuple[int, str]:
    """(HTTP status, error code) of a library error, from errors.OUTCOMES."""
    outcome = outcome_of(exc)
    return outcome.status, outcome.code


async def _ftsd_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FtsdError)
    status, code = status_of(exc)
    if status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc)
    headers = {"Retry-After": "5"} if status in (429, 503) else None
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
