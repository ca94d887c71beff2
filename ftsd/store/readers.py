"""The reader pool: idle Searchers kept open between searches, per index directory.

A Xapian Database object is not thread-safe, so a reader is checked out by one search at a time and given back
afterwards (`with pool.reader(path) as searcher`); bounded by the number of idle readers (open files).
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


class ReaderPool:
    """Idle readers by index path, least recently used closed first beyond `max_idle`."""

    def __init__(self, lexicons: Lexicons, max_idle: int = 64) -> None:
        self.lexicons = lexicons
        self.max_idle = max_idle
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
            while sum(len(v) for v in self._idle.values()) > self.max_idle:
                closing += self._idle.popitem(last=False)[1]
        for old in closing:
            old.close()

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
