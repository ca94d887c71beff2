"""The per-user writer lease: at most one node writes a user's index, cluster-wide.

A lease is a session-level PostgreSQL advisory lock (pg_try_advisory_lock on a 64-bit hash of the user) taken on
this node's dedicated lease connection. PostgreSQL releases it when that session ends, so a node that dies
(SIGKILL, power loss, a partition longer than the keepalive timeout) loses its leases without anyone acting.

Fencing without tokens: the holder checks its lease before every message it writes (`valid`: the connection
generation it was granted on is still the current one and its socket has nothing unexpected to read); a broken
session marks every lease of the node lost at once. After the coordinator restarts, every session (and lock) is
gone at once while old holders may still be between two checks: no lease is granted until `lease_grace_s` after
PostgreSQL's start, by which time every old holder has seen the break and stopped. Xapian's own write lock on the
shared index stays as the second line of defence.

Every grant, release and loss is appended to `cluster.lease_log` when set ("epoch node event user"): the grant
line is written after the lock is taken and before any write, the release line after the last write and before
the unlock, so the logged intervals contain every write and can be checked for overlaps.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from pathlib import Path
from typing import Any

from ftsd.cluster.db import NOW, Db, create_schema, user_key
from ftsd.errors import ClusterError

log = logging.getLogger(__name__)

LOST = -1  # generation of a lease whose loss its holder has logged
PENDING = -2  # being asked for
_TRY = ("SELECT CASE WHEN clock_timestamp() >= pg_postmaster_start_time() + make_interval(secs => %s) "
        "THEN pg_try_advisory_lock(%s) END")


class Leases:
    """This node's leases and its registration (heartbeat) in `ftsd_nodes`."""

    def __init__(self, dsn: str, node: str, *, grace_s: float, log_path: Path | None = None) -> None:
        self.node = node
        self.grace_s = grace_s
        self.log_path = log_path
        self.started = time.time()
        self._held: dict[str, int] = {}  # user -> connection generation it was granted on
        self._generation = 0
        self._state = threading.Lock()
        self.db = Db(dsn, f"lease {node}", on_connect=self._registered)
        self.granted = 0  # counters for the metrics and the bench
        self.refused = 0

    def _registered(self, conn: Any) -> None:
        """A new session: nothing is held on it; (re)register the node with the session's pid."""
        create_schema(conn)
        conn.execute(
            f"INSERT INTO ftsd_nodes (node, started, heartbeat, lease_pid, lease_started) "
            f"SELECT %s, %s, {NOW}, pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid() "
            "ON CONFLICT (node) DO UPDATE SET heartbeat = excluded.heartbeat, lease_pid = excluded.lease_pid, "
            "lease_started = excluded.lease_started", (self.node, self.started))
        with self._state:
            self._generation += 1

    def held(self) -> list[str]:
        """Users whose lease this node holds or has not yet given up (those are not granted to it again)."""
        with self._state:
            return sorted(self._held)

    def try_acquire(self, user: str) -> bool:
        """Take the user's lease if no session (this node's included) holds it; never waits."""
        with self._state:
            if user in self._held:
                return False
            self._held[user] = PENDING  # advisory locks are re-entrant per session: one local taker at a time
        granted = False
        try:
            with self.db.locked() as conn:
                self.db.queries += 1
                granted = bool(conn.execute(_TRY, (self.grace_s, user_key(user))).fetchone()[0])
                if granted:
                    with self._state:
                        self._held[user] = self._generation
                    self._log("grant", user)
        except ClusterError:
            pass
        except Exception as exc:  # the session broke: whatever this node held is gone
            self.lose_all(f"lease connection broken: {exc}")
        finally:
            if not granted:
                with self._state:
                    self._held.pop(user, None)
        if granted:
            self.granted += 1
        else:
            self.refused += 1
        return granted

    def valid(self, user: str) -> bool:
        """True while the lease is still held: checked before each message written (a syscall, no round trip)."""
        with self._state:
            generation = self._held.get(user)
            current = generation == self._generation
        if current:
            with self.db.locked() as conn:
                try:  # an idle session never has data to read: a server shutdown notice or EOF means it is gone
                    ready, _, _ = select.select([conn.pgconn.socket], [], [], 0)
                except Exception:
                    ready = [True]
                with self._state:
                    current = generation == self._generation  # not a session opened since
            if ready:
                self.lose_all("lease session closed by the server")
            elif current:
                return True
        self._forget(user)
        return False

    def release(self, user: str) -> None:
        """Give the lease back (after the last write). A lease already lost is only forgotten."""
        with self._state:
            current = self._held.get(user) == self._generation
        if not current:
            self._forget(user)
            with self._state:
                self._held.pop(user, None)
            return
        self._log("release", user)
        with self._state:
            self._held.pop(user, None)
        try:
            with self.db.locked() as conn:
                self.db.queries += 1
                conn.execute("SELECT pg_advisory_unlock(%s)", (user_key(user),))
        except Exception as exc:
            self.lose_all(f"lease connection broken on release: {exc}")

    def _forget(self, user: str) -> None:
        """The holder has learnt that its lease is gone (its session ended): log it once, now that it stops."""
        with self._state:
            generation = self._held.get(user)
            if generation is None or generation == LOST:
                return
            self._held[user] = LOST
        self._log("lost", user)

    def heartbeat(self) -> None:
        """Refresh this node's row (and so check the lease session); reconnect after a break."""
        try:
            with self.db.locked() as conn:
                self.db.queries += 1
                conn.execute(f"UPDATE ftsd_nodes SET heartbeat = {NOW} WHERE node = %s", (self.node,))
        except ClusterError as exc:
            log.warning("%s", exc)
        except Exception as exc:
            self.lose_all(f"heartbeat failed: {exc}")

    def leave(self) -> None:
        """Clean stop: release everything and remove the node's row."""
        for user in self.held():
            self.release(user)
        try:
            with self.db.locked() as conn:
                conn.execute("DELETE FROM ftsd_nodes WHERE node = %s", (self.node,))
        except Exception as exc:
            log.info("cluster: leaving without unregistering: %s", exc)
        self.db.close()

    def lose_all(self, why: str) -> None:
        """The session is gone: every lease granted on it is void (each holder logs the loss when it learns it)."""
        with self._state:
            lost = sum(1 for g in self._held.values() if g == self._generation)
            self._generation += 1
        if lost:
            log.warning("cluster: %s: %d lease(s) lost (their jobs stop and are queued again)", why, lost)
        self.db.drop()

    def _log(self, event: str, user: str) -> None:
        if self.log_path is None:
            return
        line = f"{time.time():.6f} {self.node} {event} {user}\n".encode()
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line)  # one write of a short line with O_APPEND: lines of several nodes never interleave
        finally:
            os.close(fd)
