"""Worker pool: messages are parsed and analysed in worker processes, in parallel; the documents come back
serialised, in UID order, to the single writer of the user's index (Xapian allows one writer per database).

A worker that dies (killed by the OOM killer, a signal, a crash in a C extension) must cost one message, not hang
the run: concurrent.futures notices the death (BrokenProcessPool), where multiprocessing.Pool would wait forever
for the lost result. The pool is then started afresh, the messages of the chunk that was in flight are run one by
one to find the one that kills its worker (it is indexed from its first MB as raw text, in this process, so that
searches do not read it again; counted as indexed partly), and the rest are submitted again. A worker's memory is
bounded (fts.worker_memory_mb, RLIMIT_DATA): a message that needs more raises MemoryError in that worker and is
indexed as raw text. Workers exit when the process that owns the pool dies (see _die_with_parent). The decoder
sandbox the workers send attachments to is the caller's (Runtime.decoders): its socket goes down to them in the
settings (decoders.sandbox).

Several users' writers may feed on one pool at once (`map` from several threads): the executor is shared, each
`map` keeps its own bounded window, and a death restarts the pool once (the caller whose executor broke first
restarts it, the others resubmit to the new one).
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import multiprocessing.connection
import os
import resource
import signal
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from ftsd.decoders.sandbox import DecoderSandbox, interpreter_problem
from ftsd.errors import UsageError
from ftsd.indexer.pipeline import Outcome, degraded, index_message
from ftsd.settings import Settings

Item = tuple[str, int, Path]  # (mailbox guid, uid, message file)
CHUNK = 4  # messages per task: amortises the inter-process round trip
IN_FLIGHT = 32  # messages per worker submitted ahead of the writer (bounds the memory of finished documents)
IN_FLIGHT_BYTES = 32 << 20  # and no more submitted while the finished documents waiting for the writer hold this
DIED = "the worker process died while indexing this message (killed, out of memory?)"

@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """How worker processes start. fork: they inherit the loaded modules and start in milliseconds (the CLI,
    scripts). The service uses forkserver, since forking a multi-threaded process can copy a lock another thread
    holds."""

    start_method: str = "fork"


def _init(nice: int, memory_mb: int, parent: int) -> None:
    _die_with_parent(parent)
    if memory_mb:  # a message that blows up raises MemoryError here, not in the whole host
        # on top of what the worker starts with: a forked worker's data segment counts its parent's heap too
        limit = (memory_mb << 20) + _data_bytes()
        hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
        resource.setrlimit(resource.RLIMIT_DATA, (limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
    if nice:  # parsing is bulk work: searches and the writer go first
        os.nice(nice)


def _data_bytes() -> int:
    """This process's data segment (what RLIMIT_DATA counts), 0 where /proc does not tell."""
    try:
        with open("/proc/self/status") as f:
            return next((int(line.split()[1]) << 10 for line in f if line.startswith("VmData:")), 0)
    except OSError:
        return 0


def _die_with_parent(parent: int) -> None:
    """Workers block on the task pipe, whose write end they hold themselves: after a kill -9 of the pool's
    process no EOF ever comes, and they would live for ever. fork (the CLI: `parent` is the pool's pid): the
    kernel's parent-death signal ends them (Linux), and a parent that died before it was armed is caught by the
    pid check. forkserver (the service): the parent is the fork server, which itself lives on while any worker
    holds its liveness pipe; the pipe multiprocessing keeps as the sentinel of the pool's process reaches EOF
    when that process is gone, and a thread waiting on it ends the worker."""
    if parent:
        if sys.platform.startswith("linux"):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
        return
    owner = multiprocessing.parent_process()
    if owner is not None and owner.sentinel is not None:
        threading.Thread(target=_exit_on_eof, args=(owner.sentinel,), name="ftsd-parent-watch", daemon=True).start()


def _exit_on_eof(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])  # readable only at EOF: the pool's process is gone
    os._exit(1)


def _work(chunk: list[Item], settings: Settings) -> list[Outcome]:
    out = []
    for guid, uid, path in chunk:
        try:
            out.append(index_message(guid, uid, path, settings))
        except MemoryError:  # wherever it struck: the message costs only itself
            out.append(degraded(guid, uid, path, settings, "MemoryError: over fts.worker_memory_mb"))
    return out


def _held(window: deque[tuple[list[Item], Future[list[Outcome]]]]) -> int:
    """Bytes of the finished documents in `window` (what waits in this process for the writer)."""
    held = 0
    for _, future in window:
        if future.done() and not future.cancelled() and future.exception() is None:
            held += sum(len(o.document.data) for o in future.result() if o.document is not None)
    return held


class WorkerPool:
    """`with WorkerPool(settings, options, runtime.decoders) as pool: for outcome in pool.map(items)`. One worker =
    in-process. Without a DecoderSandbox (tests, scripts), each attachment's child is forked by its worker."""

    def __init__(self, settings: Settings, options: WorkerOptions | None = None,
                 decoders: DecoderSandbox | None = None) -> None:
        self.settings = settings
        self.decoders = decoders
        self.options = options or WorkerOptions()
        self.size = settings.fts.workers or os.cpu_count() or 1
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()  # guards restarts, shared by the threads that map on this pool
        self.restarts = 0

    def __enter__(self) -> WorkerPool:
        if self.decoders is not None:  # before the workers: they get its socket
            self.settings = self.decoders.bind(self.settings)
        if self.size > 1:
            self._executor = self._start()
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if self._executor is not None:
            # on an error (or a time slice that ends the run early) pending chunks are dropped, not waited for
            self._executor.shutdown(wait=kind is None, cancel_futures=True)
            self._executor = None
            if self.options.start_method == "fork":
                gc.unfreeze()

    def _start(self) -> ProcessPoolExecutor:
        method = self.options.start_method
        context = multiprocessing.get_context(method)
        if method == "forkserver":
            problem = interpreter_problem()
            if problem is not None:  # the fork server is a new interpreter, started as the user we now are
                raise UsageError(f"indexer workers cannot start: {problem}; or set fts.users_parallel = 1 "
                                 "(the CLI then forks its workers)")
            context.set_forkserver_preload(["ftsd.indexer.pipeline"])
        parent = os.getpid() if method == "fork" else 0
        if method == "fork":
            # What the forked workers inherit (modules, the analyser's tables) stays shared with this process only
            # while neither writes to its pages; the garbage collector writes to every object it scans. Frozen
            # objects are never scanned (here until the pool ends; in the workers for good): bench/memory.py
            # measured ~5 MB less private memory per worker (SpamAssassin 22 -> 16 MB, openbmc 32 -> 27).
            gc.freeze()
        fts = self.settings.fts
        return ProcessPoolExecutor(self.size, mp_context=context, initializer=_init,
                                   initargs=(fts.worker_nice, fts.worker_memory_mb, parent))

    def warm_up(self) -> None:
        """Start the worker processes now (from this thread, before others start submitting)."""
        if self._executor is not None:
            self._executor.submit(_work, [], self.settings).result()

    def _restart(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        """A fresh executor in place of `broken` (unless another thread already replaced it)."""
        with self._lock:
            if self._executor is broken:
                broken.shutdown(wait=False, cancel_futures=True)
                self.restarts += 1
                self._executor = self._start()
            assert self._executor is not None
            return self._executor

    def map(self, items: Iterable[Item]) -> Iterator[Outcome]:
        """Outcomes in the order of `items`, with at most IN_FLIGHT documents per worker held in memory, and no
        more submitted while the finished ones hold IN_FLIGHT_BYTES (big messages: one costs at most itself)."""
        if self._executor is None:
            for guid, uid, path in items:
                yield index_message(guid, uid, path, self.settings)
            return
        pending = iter(items)
        window: deque[tuple[list[Item], Future[list[Outcome]]]] = deque()
        executor = self._executor

        def fill() -> None:
            if _held(window) > IN_FLIGHT_BYTES:  # big documents wait for the writer: no more until it caught up
                return
            while len(window) * CHUNK < IN_FLIGHT * self.size:
                chunk = [item for _, item in zip(range(CHUNK), pending, strict=False)]
                if not chunk:
                    return
                window.append((chunk, executor.submit(_work, chunk, self.settings)))

        fill()
        while window:
            chunk, future = window.popleft()
            try:
                outcomes = future.result()
            except BrokenProcessPool:
                executor, outcomes = self._recover(executor, chunk, window)
            yield from outcomes
            fill()

    def _recover(self, broken: ProcessPoolExecutor, chunk: list[Item],
                 window: deque[tuple[list[Item], Future[list[Outcome]]]]) -> tuple[ProcessPoolExecutor, list[Outcome]]:
        """A worker died: find the message of `chunk` that killed it (each alone in a fresh pool; twice, since with
        several users mapping at once the death may have come from another user's message), then submit the rest
        of the window again (its futures died with the pool)."""
        outcomes = []
        executor = self._restart(broken)
        for item in chunk:
            for attempt in (1, 2):
                try:
                    outcomes += executor.submit(_work, [item], self.settings).result()
                    break
                except BrokenProcessPool:
                    executor = self._restart(executor)
                    if attempt == 2:
                        outcomes.append(degraded(*item, self.settings, DIED))
        for n, (rest, _) in enumerate(window):
            window[n] = (rest, executor.submit(_work, rest, self.settings))
        return executor, outcomes
