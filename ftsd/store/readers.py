"""The reader pool: idle Searchers kept open between searches, per index directory.

A Xapian Database object is not thread-safe, so a reader is checked out by one search at a time and given back
afterwards (`with pool.reader(path) as searcher`); bounded by the number of idle readers (open files) and by the
bytes their caches hold (a reader of a 100k-message index keeps ~1 MB of docid -> UID table and ~100 bytes per
message of each mailbox it searched: 64 such readers would be hundreds of MB).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ftsd.errors import NoIndexError, StoreError, UnusableIndexError
from ftsd.store.lexicon import Lexicons
from ftsd.store.searcher import Searcher

log = logging.getLogger(__name__)


MAX_IDLE_BYTES = 128_000_000  # caches of idle readers kept by a process


class ReaderPool:
    """Idle readers by index path, least recently used closed first beyond `max_idle` readers or `max_bytes` of
    their caches (the reader given back last is always kept: the next search of that user needs it most)."""

    def __init__(self, lexicons: Lexicons, max_idle: int = 64, max_bytes: int = MAX_IDLE_BYTES) -> None:
        self.lexicons = lexicons
        self.max_idle = max_idle
        self.max_bytes = max_bytes
        self._idle: OrderedDict[Path, list[Searcher]] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, path: Path) -> Searcher | None:
        """A reader of the index at `path` at its latest commit, or None when there is none yet or it cannot be
        read now (search then reads the mail). Give it back with release(). Raises: UnusableIndexError (damaged
        or incompatible: the caller's UserIndex moves it aside)."""
        with self._lock:
            idle = self._idle.get(path)
            searcher = idle.pop() if idle else None
        if searcher is not None:
            try:
                if not searcher.replaced():
                    searcher.reopen()
                    return searcher
            except StoreError as exc:  # damaged or gone since: open afresh, which tells which
                log.info("%s: idle reader unusable, reopening: %s", path.parent.name, exc)
            searcher.close()
        try:
            return Searcher(path, self.lexicons)
        except NoIndexError:
            return None
        except UnusableIndexError:
            raise
        except StoreError as exc:
            log.warning("%s: searching without index: %s", path.parent.name, exc)
            return None

    def release(self, searcher: Searcher | None) -> None:
        if searcher is None:
            return
        searcher.released()
        closing: list[Searcher] = []
        with self._lock:
            self._idle.setdefault(searcher.path, []).append(searcher)
            self._idle.move_to_end(searcher.path)
            while self._over():
                if len(self._idle) > 1:  # the least recently used index's readers
                    closing += self._idle.popitem(last=False)[1]
                elif len(readers := self._idle[searcher.path]) > 1:  # one index only: its oldest readers
                    closing.append(readers.pop(0))
                else:
                    break
        for old in closing:
            old.close()

    def _over(self) -> bool:
        idle = [s for readers in self._idle.values() for s in readers]
        return len(idle) > self.max_idle or sum(s.cache_bytes() for s in idle) > self.max_bytes

    @contextmanager
    def reader(self, path: Path) -> Iterator[Searcher | None]:
        """`with pool.reader(path) as searcher:` -- given back to the pool however the block ends."""
        searcher = self.acquire(path)
        try:
            yield searcher
        finally:
            self.release(searcher)

    def idle(self, path: Path) -> list[Searcher]:
        """The idle readers of one index (a copy: for tests and status)."""
        with self._lock:
            return list(self._idle.get(path, ()))

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, OrderedDict()
        for readers in idle.values():
            for searcher in readers:
                searcher.close()
