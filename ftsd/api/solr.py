"""Solr-compatible routes for Dovecot's stock `fts_solr` plugin: `/solr/{core}/select` and `/solr/{core}/update`.

Thin: decode parameters, stream the update body into ftsd.solr.UpdateSession chunk by chunk (so a batch of a
thousand messages is never held whole in memory), run the work in the thread pool, and turn library errors into
Solr-style XML errors with the status of api/errors.py's table. Any core name is accepted (`dovecot`, `core1`...):
the user named in each request picks the index. uvicorn answers `Expect: 100-continue` when the body is read.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from ftsd import solr
from ftsd.api.errors import error_response, public_message, status_of
from ftsd.errors import FtsdError, QueryError, TooLargeError
from ftsd.runtime import Runtime
from ftsd.settings import Settings

log = logging.getLogger(__name__)

FEED_BYTES = 1 << 18  # body bytes handed to the parser per thread-pool call
_FORM_FACTOR = 4  # a select form holds q, fq and a few short parameters, %-encoded
_FORM = "application/x-www-form-urlencoded"


def _send(reply: solr.SolrReply) -> Response:
    headers = {"Retry-After": "1"} if reply.status in (429, 503) else None
    return Response(reply.body, status_code=reply.status, media_type=reply.media_type, headers=headers)


def _failed(request: Request, exc: FtsdError) -> Response:
    status, code = status_of(exc)
    (log.error if status >= 500 else log.info)("%s %s: %s", request.method, request.url.path, exc)
    if isinstance(exc, TooLargeError):  # the body is not read to its end: close, and say which limit in JSON
        return error_response(status, code, public_message(str(exc)), {"Connection": "close"})
    return _send(solr.error_reply(status, public_message(str(exc))))


def _observe(request: Request, route: str, outcome: str, started: float, session: solr.UpdateSession | None = None
             ) -> None:
    """Count and time one Solr request per route, and log it at INFO with its latency."""
    seconds = time.monotonic() - started
    added, deleted = (session.added, session.deleted) if session is not None else (0, 0)
    metrics = getattr(getattr(request.app.state, "ftsd", None), "metrics", None)
    if metrics is not None:
        metrics.solr(route, outcome, seconds, added, deleted)
    extra = f" +{added} -{deleted} documents" if session is not None else ""
    fields = {"route": route, "outcome": outcome, "duration_ms": round(seconds * 1000, 1)}
    if session is not None:
        fields |= {"added": added, "deleted": deleted}
    log.info("solr %s %s%s in %.1f ms", route, outcome, extra, seconds * 1000, extra=fields)


def _params(raw: str) -> list[tuple[str, str]]:
    """Form decoding (`+` = space, %xx, UTF-8), as Dovecot builds its query strings. Raises: QueryError."""
    try:
        return parse_qsl(raw, keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise QueryError(f"undecodable request parameters: {exc}") from None


async def _stream(request: Request, session: solr.UpdateSession, limit: int) -> None:
    """Feed the body to the session as it arrives. After an error the rest is still read, because Dovecot
    rejects a reply that comes before its upload has finished; then the error is raised. Past `limit` bytes
    (limits.update_bytes) reading stops: the complete documents read so far are committed, then TooLargeError."""
    error: FtsdError | None = None
    pending = bytearray()
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            if error is None:
                await run_in_threadpool(session.flush)
            raise TooLargeError(f"Solr update body larger than limits.update_bytes = {limit} bytes; the "
                                "documents before it were committed")
        if error is not None:
            continue
        pending += chunk
        if len(pending) >= FEED_BYTES:
            data, pending = bytes(pending), bytearray()
            try:
                await run_in_threadpool(session.feed, data)
            except TooLargeError:  # reading on would cost what the limit is there to bound
                raise
            except FtsdError as exc:
                error = exc
    if error is not None:
        raise error
    await run_in_threadpool(session.feed, bytes(pending))


async def _form(request: Request, limit: int) -> str:
    """A select form body, read up to `limit` bytes (q and fq are bounded by limits.solr_query_chars)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLargeError(f"Solr select form body larger than {limit} bytes "
                                f"({_FORM_FACTOR} x limits.solr_query_chars + 64 KiB)")
    return body.decode("utf-8", "surrogateescape")


def _check_lengths(params: list[tuple[str, str]], limit: int) -> None:
    for name, value in params:
        if name in ("q", "fq") and len(value) > limit:
            raise QueryError(f"Solr {name} is {len(value)} characters long; limits.solr_query_chars = {limit}")


def solr_router(settings: Settings, runtime: Runtime | None = None) -> APIRouter:
    """The Solr routes, bound to these settings and the process's runtime (a router of its own without one)."""
    router = APIRouter(tags=["solr"])
    rt = runtime if runtime is not None else Runtime(settings)

    @router.get("/solr/{core}/select", operation_id="solr_select_get")
    @router.post("/solr/{core}/select", operation_id="solr_select_post")
    async def select(core: str, request: Request) -> Response:
        """Search (Dovecot: last-UID lookup, single- and multi-mailbox search). Always XML unless wt=json."""
        started = time.monotonic()
        try:
            params = _params(request.url.query)
            if request.method == "POST" and request.headers.get("content-type", "").startswith(_FORM):
                params += _params(await _form(request, _FORM_FACTOR * settings.limits.solr_query_chars + 65536))
            _check_lengths(params, settings.limits.solr_query_chars)
            reply = _send(await run_in_threadpool(solr.select, settings, params, rt))
        except FtsdError as exc:
            _observe(request, "select", status_of(exc)[1], started)
            return _failed(request, exc)
        _observe(request, "select", "ok", started)
        return reply

    @router.get("/solr/{core}/update", operation_id="solr_update_get")
    @router.post("/solr/{core}/update", operation_id="solr_update_post")
    async def update(core: str, request: Request) -> Response:
        """`<add>`, `<delete>`, `<commit>`, `<optimize>`; `?commit=true` / `?optimize=true` with no body."""
        started = time.monotonic()
        cluster = getattr(getattr(request.app.state, "ftsd", None), "cluster", None)
        session = cluster.update_session() if cluster else solr.UpdateSession(settings, rt)  # cluster: under the lease
        try:
            await _stream(request, session, settings.limits.update_bytes)
            await run_in_threadpool(session.close)
        except ClientDisconnect:  # what was committed stays; Dovecot re-sends the rest (its last UID did not move)
            log.info("%s %s: client went away during the upload", request.method, request.url.path)
            _observe(request, "update", "client_gone", started, session)
            return Response(status_code=400)
        except FtsdError as exc:
            _observe(request, "update", status_of(exc)[1], started, session)
            return _failed(request, exc)
        _observe(request, "update", "ok", started, session)
        return _send(solr.update_reply(started))

    return router
