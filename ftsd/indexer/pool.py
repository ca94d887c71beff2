"""Worker pool: messages are parsed and analysed in worker processes, in parallel; the documents come back
serialised, in UID order, to the single writer of the user's index (Xapian allows one writer per database)."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterable, Iterator
from multiprocessing.pool import Pool
from pathlib import Path

from ftsd.indexer.pipeline import Outcome, index_message
from ftsd.settings import Settings

_settings: Settings | None = None
# fork: workers inherit the loaded modules and start in milliseconds (the CLI, scripts). The service switches to
# forkserver, since forking a multi-threaded process can copy a lock another thread holds.
_start_method = "fork"


def use_forkserver() -> None:
    """Start workers from a fork server from now on (call once in a multi-threaded process, before any pool)."""
    global _start_method
    _start_method = "forkserver"


def _init(settings: Settings) -> None:
    global _settings
    _settings = settings
    if settings.fts.worker_nice:  # parsing is bulk work: searches and the writer go first
        os.nice(settings.fts.worker_nice)


def _work(item: tuple[str, int, Path]) -> Outcome:
    assert _settings is not None
    guid, uid, path = item
    return index_message(guid, uid, path, _settings)


class WorkerPool:
    """`with WorkerPool(settings) as pool: for outcome in pool.map(items)`. One worker = in-process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.size = settings.fts.workers or os.cpu_count() or 1
        self._pool: Pool | None = None
        self._closing = threading.Event()

    def __enter__(self) -> WorkerPool:
        if self.size > 1:
            context = multiprocessing.get_context(_start_method)
            if _start_method == "forkserver":
                context.set_forkserver_preload(["ftsd.indexer.pipeline"])
            self._pool = context.Pool(self.size, _init, (self.settings,))
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()  # unblocks a feeder waiting for a slot, or terminate() would wait for it forever
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()

    def map(self, items: Iterable[tuple[str, int, Path]]) -> Iterator[Outcome]:
        """Outcomes in the order of `items`, with at most `in_flight` documents held in memory at a time."""
        if self._pool is None:
            for guid, uid, path in items:
                yield index_message(guid, uid, path, self.settings)
            return
        # Pool.imap reads its input eagerly; the semaphore makes the feeder wait for the writer, so a slow
        # writer cannot make finished documents pile up in memory.
        slots = threading.Semaphore(32 * self.size)

        def throttled() -> Iterator[tuple[str, int, Path]]:
            for item in items:
                while not slots.acquire(timeout=0.1):
                    if self._closing.is_set():
                        return
                yield item

        for outcome in self._pool.imap(_work, throttled(), chunksize=4):
            slots.release()
            yield outcome
