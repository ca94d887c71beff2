"""Job queue of the service: index, rescan and optimize jobs, persistent in SQLite, run by a few worker threads.

In: (kind, user, mailboxes) from the HTTP API, `ftsd index -q` and the Maildir watcher. Out: the job's state
(queued -> running -> done | failed) and a result summary, kept in `<server.state_dir>/jobs.sqlite`, so queued
work survives a restart (a job left `running` by a killed service goes back to `queued`: the index resumes from
its last commit). Rules: exactly one writer per user (never two running jobs of one user), identical queued jobs
are merged, and users take turns (round-robin), so one user's huge mailbox never starves the others: a job that
has run for `time_slice_s` while another user waits is put back in the queue when it reaches its next mailbox.
A job that finds the user's index locked by another writer (a CLI run, a Solr update) goes back to the queue
with a growing delay (RETRY_DELAYS_S) instead of failing; only after the last delay does it fail.
Workers call the service facade in threads; parsing already runs in the service's process pool.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftsd import service
from ftsd.errors import FtsdError, IndexLockedError
from ftsd.indexer.pool import WorkerPool
from ftsd.indexer.sync import CancelToken, IndexReport
from ftsd.privileges import describe
from ftsd.runtime import Runtime
from ftsd.settings import Settings

log = logging.getLogger(__name__)

KINDS = ("index", "rescan", "optimize")
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
KEEP_FINISHED_S = 7 * 86400  # finished jobs are forgotten after a week
RETRY_DELAYS_S = (5.0, 15.0, 60.0, 300.0)  # a job that met a locked index waits this long before each new try
_RETRY = "retry"  # _execute's state for "the index was locked": queued again after a delay

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    user TEXT NOT NULL,
    mailboxes TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    result TEXT,
    error TEXT,
    not_before REAL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, user);
"""


@dataclass(frozen=True, slots=True)
class Job:
    """One row of the queue."""

    id: int
    kind: str
    user: str
    mailboxes: tuple[str, ...]
    state: str
    created: float
    started: float | None = None
    finished: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None


def _job(row: sqlite3.Row) -> Job:
    return Job(row["id"], row["kind"], row["user"], tuple(json.loads(row["mailboxes"])), row["state"], row["created"],
               row["started"], row["finished"], json.loads(row["result"]) if row["result"] else None, row["error"])


class JobQueue:
    """The persistent queue. Thread-safe; every method is one short SQLite transaction."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10.0)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}
        if "not_before" not in columns:  # a queue made by an older ftsd
            self._db.execute("ALTER TABLE jobs ADD COLUMN not_before REAL")
        self._served: dict[str, int] = {}  # user -> turn number when last given a worker (round-robin)
        self._turn = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def recover(self) -> int:
        """At start: jobs a dead service left `running` go back to `queued`; old finished jobs are dropped."""
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE state IN (?, ?) AND finished < ?",
                             (DONE, FAILED, time.time() - KEEP_FINISHED_S))
            return self._db.execute("UPDATE jobs SET state = ?, started = NULL WHERE state = ?",
                                    (QUEUED, RUNNING)).rowcount

    def enqueue(self, kind: str, user: str, mailboxes: Sequence[str] = ()) -> Job:
        """Queue a job, or return the queued job it merges into (same kind and user, same or listed mailboxes)."""
        if kind not in KINDS:
            raise ValueError(f"unknown job kind {kind!r}")
        boxes = sorted(set(mailboxes)) if kind == "index" else []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute("SELECT * FROM jobs WHERE state = ? AND kind = ? AND user = ? ORDER BY id",
                                        (QUEUED, kind, user)).fetchall()
                for row in rows:
                    queued = json.loads(row["mailboxes"])
                    if queued == boxes:
                        break
                    if queued and boxes:  # both name mailboxes: one job for the union
                        merged = sorted(set(queued) | set(boxes))
                        self._db.execute("UPDATE jobs SET mailboxes = ? WHERE id = ?", (json.dumps(merged), row["id"]))
                        break
                else:
                    self._db.execute("INSERT INTO jobs (kind, user, mailboxes, state, created) VALUES (?, ?, ?, ?, ?)",
                                     (kind, user, json.dumps(boxes), QUEUED, time.time()))
                    row = None
                job_id = row["id"] if row is not None else self._db.execute("SELECT last_insert_rowid()").fetchone()[0]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self._get(job_id)  # type: ignore[return-value]

    def _get(self, job_id: int) -> Job | None:
        row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _job(row) if row else None

    def get(self, job_id: int) -> Job | None:
        with self._lock:
            return self._get(job_id)

    def claim(self) -> Job | None:
        """The next job to run, marked running: among users with queued work and no running job, the one served
        longest ago (round-robin), its oldest job."""
        with self._lock:
            busy = {r[0] for r in self._db.execute("SELECT DISTINCT user FROM jobs WHERE state = ?", (RUNNING,))}
            candidates: dict[str, int] = {}
            for row in self._db.execute("SELECT id, user FROM jobs WHERE state = ? AND (not_before IS NULL OR "
                                        "not_before <= ?) ORDER BY id", (QUEUED, time.time())):
                if row["user"] not in busy:
                    candidates.setdefault(row["user"], row["id"])
            if not candidates:
                return None
            user = min(candidates, key=lambda u: (self._served.get(u, -1), candidates[u]))
            self._turn += 1
            self._served[user] = self._turn
            self._db.execute("UPDATE jobs SET state = ?, started = ? WHERE id = ?", (RUNNING, time.time(),
                                                                                      candidates[user]))
            return self._get(candidates[user])

    def others_waiting(self, user: str) -> bool:
        """True when another user, not being served, has queued work."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM jobs q WHERE q.state = ? AND q.user != ? AND NOT EXISTS "
                "(SELECT 1 FROM jobs r WHERE r.state = ? AND r.user = q.user) LIMIT 1", (QUEUED, user, RUNNING),
            ).fetchone()
            return row is not None

    def finish(self, job_id: int, state: str, result: dict[str, Any] | None = None, error: str | None = None,
               delay_s: float = 0.0) -> None:
        """Record the outcome (`done` or `failed`), or put the job back (`queued`; claimed again after delay_s)."""
        with self._lock:
            if state == QUEUED:
                self._db.execute("UPDATE jobs SET state = ?, started = NULL, not_before = ?, error = ? WHERE id = ?",
                                 (QUEUED, time.time() + delay_s if delay_s else None, error, job_id))
            else:
                self._db.execute("UPDATE jobs SET state = ?, finished = ?, result = ?, error = ? WHERE id = ?",
                                 (state, time.time(), json.dumps(result) if result is not None else None, error,
                                  job_id))

    def counts(self) -> dict[str, int]:
        """Number of jobs per state."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {QUEUED: 0, RUNNING: 0, DONE: 0, FAILED: 0, **{r[0]: r[1] for r in rows}}

    def may_write(self, user: str) -> bool:
        """True while this process may write the user's index (cluster mode: its writer lease still holds)."""
        return True

    def running_users(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT DISTINCT user FROM jobs WHERE state = ?", (RUNNING,))}


@dataclass(slots=True)
class _Progress:
    total: int = 0
    done: int = 0


@dataclass(slots=True)
class JobRunner:
    """`threads` worker threads taking jobs from the queue until stop()."""

    settings: Settings
    queue: JobQueue
    runtime: Runtime
    threads: int = 2
    time_slice_s: float = 60.0
    on_finish: Callable[[Job], None] | None = None
    retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S
    _stopping: threading.Event = field(default_factory=threading.Event)
    _wake: threading.Condition = field(default_factory=threading.Condition)
    _workers: list[threading.Thread] = field(default_factory=list)
    _progress: dict[int, _Progress] = field(default_factory=dict)
    _running: dict[int, str] = field(default_factory=dict)  # job id -> user
    _tries: dict[int, int] = field(default_factory=dict)  # job id -> times it met a locked index
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        recovered = self.queue.recover()
        if recovered:
            log.info("%d interrupted job(s) queued again", recovered)
        for n in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"ftsd-job-{n}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def wake(self) -> None:
        """Tell idle workers that a job was queued."""
        with self._wake:
            self._wake.notify_all()

    def submit(self, kind: str, user: str, mailboxes: Sequence[str] = ()) -> Job:
        job = self.queue.enqueue(kind, user, mailboxes)
        self.wake()
        return job

    def progress(self, job_id: int) -> tuple[int, int] | None:
        """(messages found to index, messages done) of a running job."""
        p = self._progress.get(job_id)
        return (p.total, p.done) if p else None

    def busy(self, user: str) -> bool:
        """True while a job of this user runs (it holds, or is about to hold, the user's index writer)."""
        with self._lock:
            return user in self._running.values()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop taking jobs; running jobs stop at their next mailbox and go back to the queue. A job still running
        after `timeout_s` is left to die with the process: it stays `running` in the queue and runs again at start."""
        self._stopping.set()
        self.wake()
        deadline = time.monotonic() + timeout_s
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._workers.clear()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            job = self.queue.claim()
            if job is None:
                with self._wake:
                    self._wake.wait(timeout=1.0)
                continue
            self._run(job)
            self.wake()  # a user's next job may now be runnable by another worker

    def _run(self, job: Job) -> None:
        started = time.monotonic()
        limit = max(1, self.settings.fts.commit_limit)
        progress = self._progress[job.id] = _Progress()
        with self._lock:
            self._running[job.id] = job.user

        def checkpoint(total: int, done: int) -> None:
            progress.total += total
            progress.done += done

        def stop_reason() -> str | None:
            """Asked by the index run between mailboxes (no parse in flight there; what is done is committed)."""
            if self._stopping.is_set():
                return "service stopping"
            # preempting only after 4 * commit_limit messages guarantees the job advances between two preemptions
            if progress.done >= 4 * limit and time.monotonic() - started > self.time_slice_s \
                    and self.queue.others_waiting(job.user):
                return "time slice over, other users waiting"
            return None

        fields = {"job": job.id, "kind": job.kind, "user": job.user, "mailboxes": " ".join(job.mailboxes)}
        log.info("job %d: %s %s %s", job.id, job.kind, job.user, " ".join(job.mailboxes), extra=fields)
        try:
            def lease_lost() -> str | None:  # asked before each message: no write may follow, nothing is committed
                return None if self.queue.may_write(job.user) else "writer lease lost"

            state, result, error = self._execute(job, checkpoint, CancelToken(stop_reason, lease_lost))
        except Exception as exc:  # a worker thread must survive any bug in one job
            log.exception("job %d failed", job.id)
            state, result, error = FAILED, None, f"internal error: {type(exc).__name__}: {exc}"
        finally:
            self._progress.pop(job.id, None)
            with self._lock:
                self._running.pop(job.id, None)
        if state == QUEUED:
            log.info("job %d: %s: queued again, resumes from its last commit", job.id, error)
            self.queue.finish(job.id, QUEUED)
            return
        if state == _RETRY:
            tries = self._tries[job.id] = self._tries.get(job.id, 0) + 1
            if tries <= len(self.retry_delays_s):
                delay = self.retry_delays_s[tries - 1]
                log.info("job %d: %s; tried again in %g s", job.id, error, delay)
                self.queue.finish(job.id, QUEUED, error=f"{error} (try {tries}, again in {delay:g} s)", delay_s=delay)
                return
            state, error = FAILED, f"{error} ({tries} tries)"
        self._tries.pop(job.id, None)
        self.queue.finish(job.id, state, result, error)
        counts = ", ".join(f"{k} {v}" for k, v in (result or {}).items() if k not in ("failures", "seconds"))
        seconds = time.monotonic() - started
        numbers = {k: v for k, v in (result or {}).items()
                   if isinstance(v, int | float) and k not in ("seconds", "mailboxes")}
        log.info("job %d: %s %s %s: %s in %.1fs%s", job.id, job.kind, job.user, state, counts or "-", seconds,
                 f": {error}" if error else "",
                 extra={**fields, **numbers, "state": state, "duration_ms": round(seconds * 1000), "error": error})
        if self.on_finish:
            finished = self.queue.get(job.id)
            if finished:
                self.on_finish(finished)

    def _execute(self, job: Job, checkpoint: Callable[[int, int], None], cancel: CancelToken,
                 ) -> tuple[str, dict[str, Any], str | None]:
        """Run one job through the service facade: (state, result summary, error); QUEUED when it stopped early
        (the error then says why)."""
        if job.kind == "optimize":
            results = service.optimize_users(self.settings, [job.user], runtime=self.runtime)
            if not results:
                return DONE, {"bytes_before": 0, "bytes_after": 0, "note": "no index yet"}, None
            r = results[0]
            sizes = {"bytes_before": r.bytes_before, "bytes_after": r.bytes_after}
            return (FAILED if r.error else DONE), sizes, r.error
        report = IndexReport()
        # index_users for one user, lock told apart
        with WorkerPool(self.settings, self.runtime.workers, self.runtime.decoders) as pool:
            try:
                service.index_user(self.settings, job.user, job.mailboxes, pool, report, checkpoint,
                                   prune=job.kind == "rescan", runtime=self.runtime, cancel=cancel,
                                   missing_ok=True)  # a deleted folder is no failure
            except IndexLockedError as exc:
                return _RETRY, {}, f"{job.user}: {exc}"
            except (FtsdError, OSError) as exc:  # EACCES, an unreadable Maildir: one line with the fix
                line = describe(exc, job.user)
                log.error("%s", line)
                report.failed.append(line)
        if report.cancelled is not None:
            return QUEUED, {}, report.cancelled
        result = {"indexed": report.indexed, "removed": report.removed, "skipped": report.skipped,
                  "failed": len(report.failed), "failures": report.failed[:20], "mailboxes": report.mailboxes,
                  "rebuilt": bool(report.rebuilt), "seconds": round(time.monotonic() - report.started, 3)}
        if report.users == 0 and report.failed:  # the user as a whole failed (unknown, index locked, ...)
            return FAILED, result, report.failed[0]
        return DONE, result, None
