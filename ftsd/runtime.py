"""The runtime: what one ftsd process shares between its requests, jobs and threads, in one object created by
cli.main() and by api.app.create_app() and passed down beside Settings (never a module global).

Each part has its own lock and a clear():

    scans       maildir.ScanCache    scans of mailboxes whose directories did not change
    texts       search.TextCache     normalised texts of recently checked messages (fts.verify_cache_mb)
    lexicons    store Lexicons       the lexicon of each index, shared by its readers
    readers     store ReaderPool     idle index readers, checked out by one search at a time
    write_locks store WriteLocks     one in-process lock per index for its writers (Solr updates)
    workers     WorkerOptions        how indexer worker processes start (fork; forkserver in the service)
    userdb      userdb.Userdb        the users, read once and kept (passwd-file re-read when it changes)
    notices     Notices              conditions already logged once (a Maildir ftsd may not read, per user)
    searches    SearchSlots          searches running per user (limits.searches_per_user)
    decoders    DecoderSandbox       the decoder fork server, started on first bind() (as this process's user)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ftsd.decoders.sandbox import DecoderSandbox
from ftsd.errors import BusyError
from ftsd.indexer.pool import WorkerOptions
from ftsd.maildir import ScanCache
from ftsd.search import TextCache
from ftsd.settings import Settings
from ftsd.store.lexicon import Lexicons
from ftsd.store.locks import WriteLocks
from ftsd.store.readers import ReaderPool
from ftsd.userdb import Userdb, open_userdb


class Notices:
    """Keys of conditions already logged by this process: a lasting condition (a Maildir ftsd's user may not
    read) is said once at WARNING, not on every request. Bounded by what it is keyed on (users x reasons)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[str] = set()

    def first(self, key: str) -> bool:
        """True the first time `key` is seen (since the last clear())."""
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            return True

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()


class SearchSlots:
    """Searches running per user, at most `limit` each (0: no limit). Holds only the users searching now: its
    size is bounded by the concurrent requests, never by the number of users."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}

    @contextmanager
    def hold(self, user: str) -> Iterator[None]:
        """One slot of `user` for the duration of the block. Raises: BusyError when all are taken."""
        with self._lock:
            running = self._running.get(user, 0)
            if self.limit and running >= self.limit:
                raise BusyError(f"{user}: {running} searches running already (limits.searches_per_user = "
                                f"{self.limit}): try again when one has answered")
            self._running[user] = running + 1
        try:
            yield
        finally:
            with self._lock:
                running = self._running.pop(user) - 1
                if running:
                    self._running[user] = running


@dataclass(slots=True)
class Runtime:
    """Caches, reader pool, write locks and worker options of one process. `Runtime(settings)`; close() at exit."""

    settings: Settings
    workers: WorkerOptions = field(default_factory=WorkerOptions)
    scans: ScanCache = field(init=False)
    texts: TextCache = field(init=False)
    lexicons: Lexicons = field(init=False)
    readers: ReaderPool = field(init=False)
    write_locks: WriteLocks = field(init=False)
    userdb: Userdb = field(init=False)
    notices: Notices = field(init=False)
    searches: SearchSlots = field(init=False)
    decoders: DecoderSandbox = field(init=False)

    def __post_init__(self) -> None:
        self.userdb = open_userdb(self.settings)  # nothing is read until the first lookup
        self.scans = ScanCache()
        self.texts = TextCache(self.settings.fts.verify_cache_mb * 1_000_000)
        self.lexicons = Lexicons()
        self.readers = ReaderPool(self.lexicons)
        self.write_locks = WriteLocks()
        self.notices = Notices()
        self.searches = SearchSlots(self.settings.limits.searches_per_user)
        self.decoders = DecoderSandbox()

    def clear(self) -> None:
        """Drop every cached thing (the next request reads afresh)."""
        self.scans.clear()
        self.texts.clear()
        self.readers.clear()
        self.lexicons.clear()
        self.write_locks.clear()
        self.notices.clear()

    def close(self) -> None:
        """Close the idle readers and the userdb's connection, stop the decoder server; the runtime stays usable
        (they are opened or started again on demand)."""
        self.readers.clear()
        self.userdb.close()
        self.decoders.close()
