"""Prometheus metrics of the service (`GET /metrics`): searches and their latency, messages indexed, jobs and the
queue depth, watcher activity, HTTP requests, and the bytes used by the indexes. One registry per app, so several
apps in one process (tests) never collide."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ftsd import service
from ftsd.errors import FtsdError
from ftsd.indexer.jobs import Job, JobQueue
from ftsd.settings import Settings
from ftsd.store.maintenance import index_size

SEARCH_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INDEX_BYTES_TTL_S = 60.0  # walking every user's index directory is not done on each scrape


class Metrics:
    def __init__(self, settings: Settings, queue: JobQueue, users: Callable[[], Sequence[str]]) -> None:
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
        depth = Gauge("ftsd_job_queue_depth", "Jobs waiting in the queue", registry=r)
        depth.set_function(lambda: queue.counts()["queued"])
        running = Gauge("ftsd_jobs_running", "Jobs running", registry=r)
        running.set_function(lambda: queue.counts()["running"])
        self._settings, self._users = settings, users
        self._bytes, self._bytes_at = 0, 0.0
        self._lock = threading.Lock()
        size = Gauge("ftsd_index_bytes", "Bytes used by the indexes of all users (refreshed every minute)", registry=r)
        size.set_function(self._index_bytes)

    def job_finished(self, job: Job) -> None:
        self.jobs.labels(job.kind, job.state).inc()
        if job.result:
            self.messages_indexed.inc(int(job.result.get("indexed", 0)))
            self.messages_removed.inc(int(job.result.get("removed", 0)))

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

    def _index_bytes(self) -> float:
        with self._lock:
            if time.monotonic() - self._bytes_at > INDEX_BYTES_TTL_S:
                total = 0
                for name in self._users():
                    try:
                        total += index_size(service.index_path(service.get_user(self._settings, name)))
                    except (FtsdError, OSError):
                        continue
                self._bytes, self._bytes_at = total, time.monotonic()
            return float(self._bytes)
