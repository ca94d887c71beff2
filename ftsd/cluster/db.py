"""One PostgreSQL connection shared by a node's threads (each use holds a lock), reconnected when it breaks.

psycopg 3 is imported lazily (the optional extra `ftsd[cluster]`): single-node mode never imports it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ftsd.errors import ClusterError, ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")

CONNECT_TIMEOUT_S = 5
# The server drops a silent client's session (and so its leases) after idle + interval * count seconds.
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
SESSION_KEEPALIVE = "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3"

SCHEMA = """
CREATE TABLE IF NOT EXISTS ftsd_jobs (
    id BIGSERIAL PRIMARY KEY,
    kind TEXT NOT NULL,
    username TEXT NOT NULL,
    mailboxes TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL,
    node TEXT,
    created DOUBLE PRECISION NOT NULL,
    started DOUBLE PRECISION,
    finished DOUBLE PRECISION,
    result TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS ftsd_jobs_state ON ftsd_jobs (state, username);
CREATE TABLE IF NOT EXISTS ftsd_users (
    username TEXT PRIMARY KEY,
    served BIGINT NOT NULL DEFAULT 0,
    active DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE SEQUENCE IF NOT EXISTS ftsd_turn;
CREATE TABLE IF NOT EXISTS ftsd_rescans (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS ftsd_nodes (
    node TEXT PRIMARY KEY,
    started DOUBLE PRECISION NOT NULL,
    heartbeat DOUBLE PRECISION NOT NULL,
    lease_pid INTEGER,
    lease_started TIMESTAMPTZ
);
"""
SCHEMA_LOCK = 0x66747364  # "ftsd": concurrent CREATE ... IF NOT EXISTS of starting nodes can still collide
NOW = "extract(epoch from clock_timestamp())"


def psycopg_module() -> Any:
    """psycopg, or a ConfigError naming the extra to install."""
    try:
        import psycopg
    except ImportError:
        raise ConfigError("cluster.dsn is set but psycopg is not installed: pip install 'ftsd[cluster]'") from None
    return psycopg


def user_key(user: str, space: str = "lease") -> int:
    """The 64-bit advisory lock key of a user (signed, as PostgreSQL's bigint); `space` keeps kinds of lock apart."""
    digest = hashlib.blake2b(f"{space}\0{user}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Db:
    """A connection in autocommit mode; `run(fn)` calls fn(conn) under the lock, reconnecting once if broken."""

    def __init__(self, dsn: str, name: str, on_connect: Callable[[Any], None] | None = None) -> None:
        self.dsn, self.name = dsn, name
        self.on_connect = on_connect
        self._psycopg = psycopg_module()
        self._lock = threading.RLock()
        self._conn: Any = None
        self.queries = 0  # statements sent (for the bench)

    def connect(self) -> Any:
        try:
            conn = self._psycopg.connect(self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                         application_name=f"ftsd {self.name}", **KEEPALIVE)
        except self._psycopg.Error as exc:
            raise ClusterError(f"cluster: cannot connect to PostgreSQL ({_first_line(exc)})") from exc
        conn.execute(SESSION_KEEPALIVE)
        if self.on_connect:
            self.on_connect(conn)
        return conn

    @property
    def conn(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = self.connect()
        return self._conn

    @contextmanager
    def locked(self) -> Iterator[Any]:
        """The connection, held by this thread for the block (no reconnect: for callers that handle breaks)."""
        with self._lock:
            yield self.conn

    def run(self, fn: Callable[[Any], T], *, retry_s: float = 0.0) -> T:
        """fn(connection) under the lock. A broken connection is reopened and fn called again (fn must be
        idempotent or a single transaction), for up to `retry_s` seconds. Raises: ClusterError."""
        deadline = time.monotonic() + retry_s
        delay = 0.1
        while True:
            with self._lock:
                try:
                    self.queries += 1
                    return fn(self.conn)
                except self._psycopg.OperationalError as exc:
                    self.drop()
                    if time.monotonic() >= deadline:
                        raise ClusterError(f"cluster: PostgreSQL unavailable ({_first_line(exc)})") from exc
                    log.info("cluster: %s connection lost (%s), reconnecting", self.name, _first_line(exc))
                except ClusterError:
                    if time.monotonic() >= deadline:
                        raise
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def drop(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except Exception:  # already broken: nothing to release
                    pass
            self._conn = None

    def close(self) -> None:
        self.drop()


def create_schema(conn: Any) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute(SCHEMA)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
