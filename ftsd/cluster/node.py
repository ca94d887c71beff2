"""ClusterNode: what `ftsd serve` runs in cluster mode besides the API: this node's leases (with a heartbeat
thread that keeps its registration fresh and notices a broken lease session), the shared queue, and the
periodic cheap rescan: every `cluster.rescan_active_s`, one node (the first to claim the period) queues an index
job for each user searched in the last `cluster.active_window_s` (mail delivered on another machine, which no
local watcher sees, is picked up then; merged with an identical queued job).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge

from ftsd.cluster.lease import Leases
from ftsd.cluster.queue import PgJobQueue
from ftsd.errors import ClusterError
from ftsd.runtime import Runtime
from ftsd.settings import Settings

if TYPE_CHECKING:
    from ftsd.cluster.solr import LeasedUpdateSession

log = logging.getLogger(__name__)

Submit = Callable[[str, list[str]], object]  # (user, mailboxes)
TOUCH_EVERY_S = 60.0  # a user searched again within this is not recorded again


def node_name(settings: Settings) -> str:
    """This process's name in the cluster: `cluster.node_name` (else the host name) and the pid."""
    return f"{settings.cluster.node_name or socket.gethostname()}-{os.getpid()}"


class ClusterNode:
    def __init__(self, settings: Settings, runtime: Runtime | None = None) -> None:
        c = settings.cluster
        self.settings = settings
        self.runtime = runtime
        self.name = node_name(settings)
        lease_log = settings.resolve(c.lease_log) if c.lease_log else None
        self.leases = Leases(c.dsn, self.name, grace_s=c.lease_grace_s, log_path=lease_log)
        self.leases.heartbeat()  # registers the node (the lease connection opens)
        self.queue = PgJobQueue(c.dsn, self.leases)
        self._stop = threading.Event()
        self._touched: dict[str, float] = {}  # user -> when last recorded as active
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, submit: Submit, registry: CollectorRegistry | None = None) -> None:
        """Start the heartbeat and the periodic rescan (which queues through `submit`); add the cluster gauges
        to the node's /metrics (the queue gauges of the service already count the shared queue)."""
        if registry is not None:
            Gauge("ftsd_cluster_leases", "Writer leases held by this node", registry=registry) \
                .set_function(lambda: len(self.leases.held()))
            Gauge("ftsd_cluster_leases_granted", "Writer leases granted to this node since start",
                  registry=registry).set_function(lambda: self.leases.granted)
            Gauge("ftsd_cluster_queue_lag_seconds", "Age of the oldest queued job, cluster-wide",
                  registry=registry).set_function(self._lag)
        self._threads = [threading.Thread(target=self._heartbeat_loop, name="ftsd-cluster-heartbeat", daemon=True)]
        if self.settings.cluster.rescan_active_s > 0:
            self._threads.append(threading.Thread(target=self._rescan_loop, args=(submit,),
                                                  name="ftsd-cluster-rescan", daemon=True))
        for thread in self._threads:
            thread.start()
        log.info("cluster: node %s joined", self.name)

    def stop(self) -> None:
        """After the job runner stopped: leave the cluster (leases released, node row removed)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self.leases.leave()
        self.queue.close()

    def update_session(self) -> LeasedUpdateSession:
        """An fts_solr update session that writes under the users' leases."""
        from ftsd.cluster.solr import LeasedUpdateSession

        return LeasedUpdateSession(self.settings, self.leases, self.runtime)

    def _lag(self) -> float:
        try:
            return self.queue.lag_s()
        except ClusterError:
            return float("nan")

    @contextmanager
    def writer_lease(self, user: str) -> Iterator[bool]:
        """Hold the user's lease for the block if it is free (True), else yield False at once: a search then
        answers without autoindex (unindexed mail is read from the Maildir) and never waits on another node."""
        granted = self.leases.try_acquire(user)
        try:
            yield granted
        finally:
            if granted:
                self.leases.release(user)

    def touch(self, user: str) -> None:
        """A search for this user: record it (batched, at most once a minute per user) for the rescan."""
        now = time.monotonic()
        with self._lock:
            if now - self._touched.get(user, -TOUCH_EVERY_S) >= TOUCH_EVERY_S:
                self._touched[user] = now
                self._pending.add(user)

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.settings.cluster.heartbeat_s):
            self.leases.heartbeat()
            with self._lock:
                pending, self._pending = sorted(self._pending), set()
            try:
                self.queue.touch(pending)
            except ClusterError as exc:
                log.info("cluster: active users not recorded: %s", exc)

    def _rescan_loop(self, submit: Submit) -> None:
        c = self.settings.cluster
        while not self._stop.wait(c.rescan_active_s):
            try:
                if not self.queue.claim_rescan(c.rescan_active_s):
                    continue  # another node did it this period
                users = self.queue.active_users(c.active_window_s)
            except ClusterError as exc:
                log.info("cluster: rescan of active users skipped: %s", exc)
                continue
            for user in users:
                submit(user, [])
