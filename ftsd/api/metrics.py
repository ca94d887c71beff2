"""Prometheus metrics of the service (`GET /metrics`): searches and their latency, messages indexed, jobs and the
queue depth, watcher activity, HTTP requests, users, and the bytes used by the indexes. One registry per app, so
several apps in one process (tests) never collide.

A scrape does no per-user work: counters are incremented as things happen, and the gauges read cached values.
The index sizes are measured by a background thread (every user once at start, again every
INDEX_BYTES_REFRESH_S) and again for a user whenever one of its jobs finishes; the queue is counted at most once
per QUEUE_TTL_S. So a scrape costs the same at 10 users and at 10,000.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ftsd.daemon.jobs import Job, JobQueue
from ftsd.errors import FtsdError
from ftsd.settings import Settings
from ftsd.store.index import index_path
from ftsd.store.maintenance import index_size
from ftsd.userdb import Userdb

log = logging.getLogger(__name__)

SEARCH_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INDEX_BYTES_REFRESH_S = 600.0  # a full walk of every user's index directory, in the background
QUEUE_TTL_S = 1.0


class Metrics:
    def __init__(self, settings: Settings, queue: JobQueue, users: Callable[[], Sequence[str]],
                 userdb: Userdb, *, refresh_s: float = INDEX_BYTES_REFRESH_S,
                 users_ready: threading.Event | None = None) -> None:
        self.registry = r = CollectorRegistry()
        self.searches = Counter("ftsd_searches", "Searches answered, by outcome", ["outcome"], registry=r)
        self.search_seconds = Histogram("ftsd_search_seconds", "Search latency including autoindex",
                                        buckets=SEARCH_BUCKETS, registry=r)
        self.messages_indexed = Counter("ftsd_messages_indexed", "Messages indexed by jobs or sent by Dovecot",
                                        registry=r)
        self.messages_removed = Counter("ftsd_messages_removed", "Expunged messages dropped by jobs or by Dovecot",
                                        registry=r)
        self.jobs = Counter("ftsd_jobs", "Jobs finished, by kind and state", ["kind", "state"], registry=r)
        self.watcher_jobs = Counter("ftsd_watcher_jobs", "Index jobs queued by the Maildir watcher", registry=r)
        self.requests = Counter("ftsd_http_requests", "HTTP requests answered", ["method", "status"], registry=r)
        # Dovecot's fts_solr: per route (select, update), so the fts_solr set-up is visible where ftsd writes nothing
        self.solr_requests = Counter("ftsd_solr_requests", "Solr requests from Dovecot, by route and outcome",
                                     ["route", "outcome"], registry=r)
        self.solr_seconds = Histogram("ftsd_solr_seconds", "Latency of Solr requests, by route", ["route"],
                                      buckets=SEARCH_BUCKETS, registry=r)
        self.solr_documents = Counter("ftsd_solr_documents", "Documents Dovecot added or deleted through Solr",
                                      ["op"], registry=r)
        self._queue = queue
        self._counts: dict[str, int] = {}
        self._counts_at = float("-inf")
        Gauge("ftsd_job_queue_depth", "Jobs waiting in the queue", registry=r).set_function(
            lambda: self._queue_count("queued"))
        Gauge("ftsd_jobs_running", "Jobs running", registry=r).set_function(lambda: self._queue_count("running"))
        self._settings, self._users, self._userdb = settings, users, userdb
        self._sizes: dict[str, int] = {}
        self._lock = threading.Lock()
        self._measured = threading.Event()  # the first walk over every user is done
        Gauge("ftsd_index_bytes", "Bytes used by the indexes of all users (walked in the background every "
              f"{refresh_s:.0f} s, and per user after each of its jobs)", registry=r).set_function(self._index_bytes)
        Gauge("ftsd_users", "Users found by the last walk of the index sizes", registry=r).set_function(
            self._user_count)
        self._refresh_s = refresh_s
        self._users_ready = users_ready  # the watcher lists the users in the background: walk once it has
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Measure the index sizes in the background (the first scrape does not wait for it)."""
        self._thread = threading.Thread(target=self._refresh_loop, name="ftsd-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def job_finished(self, job: Job) -> None:
        self.jobs.labels(job.kind, job.state).inc()
        if job.result:
            self.messages_indexed.inc(int(job.result.get("indexed", 0)))
            self.messages_removed.inc(int(job.result.get("removed", 0)))
        self._measure(job.user)

    def solr(self, route: str, outcome: str, seconds: float, added: int = 0, deleted: int = 0) -> None:
        self.solr_requests.labels(route, outcome).inc()
        self.solr_seconds.labels(route).observe(seconds)
        if added:
            self.solr_documents.labels("add").inc(added)
            self.messages_indexed.inc(added)
        if deleted:
            self.solr_documents.labels("delete").inc(deleted)
            self.messages_removed.inc(deleted)

    def request(self, method: str, status: int) -> None:
        self.requests.labels(method, str(status)).inc()

    def wait_measured(self, timeout_s: float) -> bool:
        return self._measured.wait(timeout_s)

    def _queue_count(self, state: str) -> float:
        with self._lock:
            if time.monotonic() - self._counts_at > QUEUE_TTL_S:
                self._counts, self._counts_at = self._queue.counts(), time.monotonic()
            return float(self._counts.get(state, 0))

    def _index_bytes(self) -> float:
        with self._lock:
            return float(sum(self._sizes.values()))

    def _user_count(self) -> float:
        with self._lock:
            return float(len(self._sizes))

    def _measure(self, name: str) -> None:
        try:
            size = index_size(index_path(self._userdb.lookup(name)))
        except (FtsdError, OSError):
            size = 0
        with self._lock:
            self._sizes[name] = size

    def _refresh_loop(self) -> None:
        while self._users_ready is not None and not self._users_ready.is_set():
            if self._stop.wait(0.5):
                return
        while not self._stop.is_set():
            try:
                names = list(self._users())
                for name in names:
                    if self._stop.is_set():
                        return
                    self._measure(name)
                with self._lock:  # users gone since: forget their sizes
                    for gone in set(self._sizes) - set(names):
                        del self._sizes[gone]
            except Exception:  # the gauge keeps its last value; the next round tries again
                log.exception("metrics: measuring the index sizes failed")
            self._measured.set()
            if self._stop.wait(self._refresh_s):
                return
