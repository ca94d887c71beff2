"""The HTTP API (FastAPI): thin routes over the service facade, run in the thread pool; the job runner and the
Maildir watcher start and stop with the app (lifespan). OpenAPI at /docs. Contract: design §3.3.

    POST /v1/users/{user}/search     {"mailbox": "INBOX", "query": "..."} -> {"mailbox", "uidvalidity", "uids"}
                                     {"mailboxes": ["*"], "query": "..."} -> {"results": [...]}
    POST /v1/users/{user}/index | /rescan | /optimize                     -> 202 {"job": ID}
    GET  /v1/jobs/{id}   GET /v1/users/{user}/status[?mailbox=&uid=]   GET /healthz   GET /metrics
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import APIRouter, FastAPI, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from ftsd import __version__, service
from ftsd.api.errors import ApiError, install_error_handlers, status_of
from ftsd.api.metrics import Metrics
from ftsd.api.middleware import OPEN_PATHS, Guard
from ftsd.api.models import (
    ErrorResponse,
    Health,
    IndexRequest,
    JobCreated,
    JobInfo,
    MailboxUids,
    SearchRequest,
    SearchResults,
    UserStatus,
    search_response,
)
from ftsd.api.solr import solr_router
from ftsd.api.token import service_token
from ftsd.daemon.jobs import JobQueue, JobRunner
from ftsd.daemon.watcher import MaildirWatcher
from ftsd.errors import FtsdError
from ftsd.indexer.pool import WorkerOptions
from ftsd.maildir import validate_mailbox_name
from ftsd.runtime import Runtime
from ftsd.search import MailboxResult
from ftsd.settings import Settings
from ftsd.userdb import Userdb

if TYPE_CHECKING:
    from ftsd.cluster.node import ClusterNode

log = logging.getLogger(__name__)
T = TypeVar("T")

_ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorResponse} for s in (400, 401, 404, 413, 422, 503)
}


@dataclass(slots=True)
class ServiceState:
    """What the routes share: settings, the runtime (caches, readers), the job queue and its runner, the watcher,
    the metrics."""

    settings: Settings
    runtime: Runtime
    queue: JobQueue
    runner: JobRunner
    watcher: MaildirWatcher | None
    metrics: Metrics
    cluster: ClusterNode | None = None  # cluster mode: the shared queue and the writer leases


def _state(request: Request) -> ServiceState:
    state = getattr(request.app.state, "ftsd", None)
    if not isinstance(state, ServiceState):
        raise ApiError(503, "starting", "the service is starting or stopping")
    return state


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(fn, *args, **kwargs)


router = APIRouter(responses=_ERRORS)


@router.post("/v1/users/{user}/search", response_model=MailboxUids | SearchResults, tags=["search"])
async def search(user: str, body: SearchRequest, request: Request) -> MailboxUids | SearchResults:
    """Matching UIDs (ascending) of one mailbox, or of several with `mailboxes` (`["*"]` = every mailbox)."""
    st = _state(request)
    # while a job of this user runs it holds the writer: no autoindex (the search reads unindexed mail instead)
    autoindex = False if st.runner.busy(user) else body.autoindex
    with _timed(st.metrics, user):
        results = await _call(_search, st, user, body, autoindex)
    return search_response(results, body.multi)


@router.post("/v1/users/{user}/index", status_code=202, response_model=JobCreated, tags=["jobs"])
async def index(user: str, request: Request, body: IndexRequest | None = None) -> JobCreated:
    """Queue an index job: new mail in, expunged mail out (default: every mailbox not excluded)."""
    return await _submit(_state(request), "index", user, body.mailboxes if body else [])


@router.post("/v1/users/{user}/rescan", status_code=202, response_model=JobCreated, tags=["jobs"])
async def rescan(user: str, request: Request) -> JobCreated:
    """Queue a rescan job: reconcile index and mail, drop vanished mailboxes (never deletes everything)."""
    return await _submit(_state(request), "rescan", user, [])


@router.post("/v1/users/{user}/optimize", status_code=202, response_model=JobCreated, tags=["jobs"])
async def optimize(user: str, request: Request) -> JobCreated:
    """Queue an optimize job: compact the user's index."""
    return await _submit(_state(request), "optimize", user, [])


@router.get("/v1/jobs/{job_id}", response_model=JobInfo, tags=["jobs"])
async def job(job_id: int, request: Request) -> JobInfo:
    """State of a job: queued, running (with progress), done or failed (with a result summary)."""
    st = _state(request)
    found = await _call(st.queue.get, job_id)
    if found is None:
        raise ApiError(404, "unknown_job", f"no job {job_id}")
    return JobInfo.of(found, st.runner.progress(job_id))


@router.get("/v1/users/{user}/status", response_model=UserStatus | dict[str, Any], tags=["status"])
async def status(user: str, request: Request, mailbox: str = Query("INBOX"),
                 uid: int | None = Query(None, ge=1)) -> UserStatus | dict[str, Any]:
    """Per-mailbox counts (messages, indexed, last UID); with `uid`, how that message was decoded and indexed."""
    st = _state(request)
    if uid is not None:
        return await _call(service.message_status, st.settings, user, mailbox, uid, runtime=st.runtime)
    return UserStatus.model_validate(await _call(service.status, st.settings, user, runtime=st.runtime))


@router.get("/healthz", response_model=Health, tags=["status"])
async def healthz(request: Request) -> Health:
    st = _state(request)
    counts = await _call(st.queue.counts)
    watcher = st.watcher
    return Health(status="ok", version=__version__, jobs=counts, watcher=watcher.mode if watcher else "off",
                  watcher_ready=watcher.ready.is_set() if watcher else False)


@router.get("/metrics", tags=["status"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text format."""
    body = await _call(generate_latest, _state(request).metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _search(st: ServiceState, user: str, body: SearchRequest, autoindex: bool | None) -> list[MailboxResult]:
    settings, cluster, rt = st.settings, st.cluster, st.runtime
    query = body.node(settings.limits)
    if cluster is None or autoindex is False or (autoindex is None and not settings.fts.autoindex):
        return service.search(settings, user, body.targets(), query, autoindex=autoindex, runtime=rt)
    cluster.touch(user)
    with cluster.writer_lease(user) as held:  # autoindex only with the lease; never waits for another node
        return service.search(settings, user, body.targets(), query, autoindex=None if held else False,
                              runtime=rt)


async def _submit(st: ServiceState, kind: str, user: str, mailboxes: Sequence[str]) -> JobCreated:
    """Check the user and mailbox names (404 now rather than a failed job later), then queue."""
    await _call(service.get_user, st.settings, user)
    names = [validate_mailbox_name(m) for m in mailboxes]
    created = await _call(st.runner.submit, kind, user, names)
    return JobCreated(job=created.id)


class _timed:
    """Count and time one search in the metrics, by outcome (ok or the error code)."""

    def __init__(self, metrics: Metrics, user: str = "") -> None:
        self.metrics, self.user = metrics, user

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        outcome = "ok" if exc is None else status_of(exc)[1] if isinstance(exc, FtsdError) else "internal_error"
        seconds = time.perf_counter() - self.start
        self.metrics.searches.labels(outcome).inc()
        self.metrics.search_seconds.observe(seconds)
        detail = f": {exc}" if exc is not None and outcome != "ok" else ""
        log.info("search %s: %s in %.1f ms%s", self.user, outcome, seconds * 1000, detail,
                 extra={"user": self.user, "outcome": outcome, "duration_ms": round(seconds * 1000, 1)})


def _start(settings: Settings, runtime: Runtime, watch: bool, force_polling: bool) -> ServiceState:
    cluster = None
    if settings.cluster.dsn:
        from ftsd.cluster.node import ClusterNode

        cluster = ClusterNode(settings, runtime)
        queue: JobQueue = cluster.queue
    else:
        queue = JobQueue(settings.resolve(settings.server.state_dir) / "jobs.sqlite")
    runner = JobRunner(settings, queue, runtime, threads=settings.server.job_threads,
                       time_slice_s=settings.server.job_time_slice_s)
    watcher = None
    if watch and settings.fts.writer == "ftsd":  # fts.writer = dovecot: Dovecot's fts_solr is the only writer
        def submit(user: str, mailboxes: list[str]) -> None:
            runner.submit("index", user, mailboxes)
            counters.watcher_jobs.inc()

        watcher = MaildirWatcher(settings, runtime.userdb, submit, force_polling=force_polling,
                                 users_every_s=settings.server.users_rescan_s)
    counters = Metrics(settings, queue, watcher.users if watcher else lambda: _users_or_none(runtime.userdb),
                       runtime.userdb, users_ready=watcher.ready if watcher else None)
    runner.on_finish = counters.job_finished
    runner.start()
    counters.start()
    if watcher:
        watcher.start()
    if cluster:
        cluster.start(lambda user, boxes: runner.submit("index", user, boxes), counters.registry)
    return ServiceState(settings, runtime, queue, runner, watcher, counters, cluster)


def _stop(state: ServiceState) -> None:
    if state.watcher:
        state.watcher.stop()
    state.metrics.stop()
    state.runner.stop()  # running jobs stop at their next mailbox and stay queued
    if state.cluster:
        state.cluster.stop()  # leaves the cluster: leases released, node row removed
    else:
        state.queue.close()
    state.runtime.close()


def _users_or_none(userdb: Userdb) -> list[str]:
    try:
        return userdb.names()
    except FtsdError as exc:
        log.warning("cannot list users: %s", exc)
        return []


def create_app(settings: Settings, *, watch: bool = True, force_polling: bool = False) -> FastAPI:
    """The ASGI app. Job workers and the watcher run while the app's lifespan does (uvicorn starts it)."""
    # the service runs threads: indexer workers start from a fork server, never forked from it
    runtime = Runtime(settings, WorkerOptions(start_method="forkserver"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.ftsd = await run_in_threadpool(_start, settings, runtime, watch, force_polling)
        try:
            yield
        finally:
            state, app.state.ftsd = app.state.ftsd, None
            await run_in_threadpool(_stop, state)

    app = FastAPI(title="ftsd", version=__version__, lifespan=lifespan,
                  description="Full-text search for Dovecot Maildirs: IMAP SEARCH over per-user Xapian indexes.")
    app.include_router(router)
    app.include_router(solr_router(settings, runtime))
    install_error_handlers(app)
    app.state.ftsd = None
    token = service_token(settings)  # made at the first start when missing
    if not token:
        log.warning("server.auth is off: any process that can reach %s may read and write every user's index",
                    settings.server.listen or "the TCP listener")
    open_paths = OPEN_PATHS if settings.server.metrics_auth else OPEN_PATHS | {"/metrics"}
    app.add_middleware(Guard, token=token, max_body_bytes=settings.server.max_body_bytes,
                       max_update_bytes=settings.limits.update_bytes, open_paths=open_paths,
                       on_response=lambda method, code: _count_request(app, method, code))
    return app


def _count_request(app: FastAPI, method: str, status: int) -> None:
    state = getattr(app.state, "ftsd", None)
    if isinstance(state, ServiceState):
        state.metrics.request(method, status)

