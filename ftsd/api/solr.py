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
from ftsd.api.errors import status_of
from ftsd.errors import FtsdError, QueryError
from ftsd.settings import Settings

log = logging.getLogger(__name__)

FEED_BYTES = 1 << 18  # body bytes handed to the parser per thread-pool call
_FORM = "application/x-www-form-urlencoded"


def _send(reply: solr.SolrReply) -> Response:
    headers = {"Retry-After": "1"} if reply.status == 503 else None
    return Response(reply.body, status_code=reply.status, media_type=reply.media_type, headers=headers)


def _failed(request: Request, exc: FtsdError) -> Response:
    status, _ = status_of(exc)
    (log.error if status >= 500 else log.info)("%s %s: %s", request.method, request.url.path, exc)
    return _send(solr.error_reply(status, str(exc)))


def _observe(request: Request, route: str, outcome: str, started: float, session: solr.UpdateSession | None = None
             ) -> None:
    """Count and time one Solr request per route, and log it at INFO with its latency."""
    seconds = time.monotonic() - started
    added, deleted = (session.added, session.deleted) if session is not None else (0, 0)
    metrics = getattr(getattr(request.app.state, "ftsd", None), "metrics", None)
    if metrics is not None:
        metrics.solr(route, outcome, seconds, added, deleted)
    extra = f" +{added} -{deleted} documents" if session is not None else ""
    log.info("solr %s %s%s in %.1f ms", route, outcome, extra, seconds * 1000)


def _params(raw: str) -> list[tuple[str, str]]:
    """Form decoding (`+` = space, %xx, UTF-8), as Dovecot builds its query strings. Raises: QueryError."""
    try:
        return parse_qsl(raw, keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise QueryError(f"undecodable request parameters: {exc}") from None


async def _stream(request: Request, session: solr.UpdateSession) -> None:
    """Feed the body to the session as it arrives. After an error the rest is still read, because Dovecot
    rejects a reply that comes before its upload has finished; then the error is raised."""
    error: FtsdError | None = None
    pending = bytearray()
    async for chunk in request.stream():
        if error is not None:
            continue
        pending += chunk
        if len(pending) >= FEED_BYTES:
            data, pending = bytes(pending), bytearray()
            try:
                await run_in_threadpool(session.feed, data)
            except FtsdError as exc:
                error = exc
    if error is not None:
        raise error
    await run_in_threadpool(session.feed, bytes(pending))


def solr_router(settings: Settings) -> APIRouter:
    """The Solr routes, bound to these settings."""
    router = APIRouter(tags=["solr"])

    @router.get("/solr/{core}/select", operation_id="solr_select_get")
    @router.post("/solr/{core}/select", operation_id="solr_select_post")
    async def select(core: str, request: Request) -> Response:
        """Search (Dovecot: last-UID lookup, single- and multi-mailbox search). Always XML unless wt=json."""
        started = time.monotonic()
        try:
            params = _params(request.url.query)
            if request.method == "POST" and request.headers.get("content-type", "").startswith(_FORM):
                params += _params((await request.body()).decode("utf-8", "surrogateescape"))
            reply = _send(await run_in_threadpool(solr.select, settings, params))
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
        session = cluster.update_session() if cluster else solr.UpdateSession(settings)  # cluster: under the lease
        try:
            await _stream(request, session)
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
