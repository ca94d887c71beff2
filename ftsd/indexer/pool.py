"""Worker pool: messages are parsed and analysed in worker processes, in parallel; the documents come back
serialised, in UID order, to the single writer of the user's index (Xapian allows one writer per database).

A worker that dies (killed by the OOM killer, a signal, a crash in a C extension) must cost one message, not hang
the run: concurrent.futures notices the death (BrokenProcessPool), where multiprocessing.Pool would wait forever
for the lost result. The pool is then started afresh, the messages of the chunk that was in flight are run one by
one to find the one that kills its worker (it is reported as failed, and retried by the next run), and the rest
are submitted again.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from ftsd.indexer.pipeline import Outcome, index_message
from ftsd.settings import Settings

Item = tuple[str, int, Path]  # (mailbox guid, uid, message file)
CHUNK = 4  # messages per task: amortises the inter-process round trip
IN_FLIGHT = 32  # messages per worker submitted ahead of the writer (bounds the memory of finished documents)
DIED = "the worker process died while indexing this message (killed, out of memory?)"

@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How worker processes start. fork: they inherit the loaded modules and start in milliseconds (the CLI,
    scripts). The service uses forkserver, since forking a multi-threaded process can copy a lock another thread
    holds."""

    start_method: str = "fork"


def _init(nice: int) -> None:
    if nice:  # parsing is bulk work: searches and the writer go first
        os.nice(nice)


def _work(chunk: list[Item], settings: Settings) -> list[Outcome]:
    return [index_message(guid, uid, path, settings) for guid, uid, path in chunk]


class WorkerPool:
    """`with WorkerPool(settings) as pool: for outcome in pool.map(items)`. One worker = in-process."""

    def __init__(self, settings: Settings, options: WorkerOptions | None = None) -> None:
        self.settings = settings
        self.options = options or WorkerOptions()
        self.size = settings.fts.workers or os.cpu_count() or 1
        self._executor: ProcessPoolExecutor | None = None
        self.restarts = 0

    def __enter__(self) -> WorkerPool:
        if self.size > 1:
            self._executor = self._start()
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if self._executor is not None:
            # on an error (or a time slice that ends the run early) pending chunks are dropped, not waited for
            self._executor.shutdown(wait=kind is None, cancel_futures=True)
            self._executor = None

    def _start(self) -> ProcessPoolExecutor:
        method = self.options.start_method
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            context.set_forkserver_preload(["ftsd.indexer.pipeline"])
        return ProcessPoolExecutor(self.size, mp_context=context, initializer=_init,
                                   initargs=(self.settings.fts.worker_nice,))

    def _restart(self) -> ProcessPoolExecutor:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self.restarts += 1
        self._executor = self._start()
        return self._executor

    def map(self, items: Iterable[Item]) -> Iterator[Outcome]:
        """Outcomes in the order of `items`, with at most IN_FLIGHT documents per worker held in memory."""
        if self._executor is None:
            for guid, uid, path in items:
                yield index_message(guid, uid, path, self.settings)
            return
        pending = iter(items)
        window: deque[tuple[list[Item], Future[list[Outcome]]]] = deque()

        def fill() -> None:
            assert self._executor is not None
            while len(window) * CHUNK < IN_FLIGHT * self.size:
                chunk = [item for _, item in zip(range(CHUNK), pending, strict=False)]
                if not chunk:
                    return
                window.append((chunk, self._executor.submit(_work, chunk, self.settings)))

        fill()
        while window:
            chunk, future = window.popleft()
            try:
                outcomes = future.result()
            except BrokenProcessPool:
                outcomes = self._recover(chunk, window)
            yield from outcomes
            fill()

    def _recover(self, chunk: list[Item], window: deque[tuple[list[Item], Future[list[Outcome]]]]) -> list[Outcome]:
        """A worker died: find the message of `chunk` that killed it (each alone in a fresh pool), then submit
        the rest of the window again (its futures died with the pool)."""
        outcomes = []
        executor = self._restart()
        for item in chunk:
            try:
                outcomes += executor.submit(_work, [item], self.settings).result()
            except BrokenProcessPool:
                outcomes.append(Outcome(item[1], failed=DIED))
                executor = self._restart()
        for n, (rest, _) in enumerate(window):
            window[n] = (rest, executor.submit(_work, rest, self.settings))
        return outcomes
