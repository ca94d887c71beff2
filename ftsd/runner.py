"""Bulk runs of the command line (index, rescan, optimize): users -> mail identities -> per-user work.

Each identity group runs as its mail user (ftsd/privileges.py); progress goes back as small events, so one bar
covers the whole run. A user that fails (unknown, unreadable Maildir, EACCES on its index) is one line in the
report and the others go on. The total to do is counted before the first message: Maildir counts minus what each
index's metadata says it holds, so the bar and its ETA mean something from the start. Within a group, users are
indexed (and optimized) fts.users_parallel at a time (ftsd/indexer/users.py), as by the service. A child that
dropped root makes a Runtime of its own: nothing opened before the fork is shared across it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ftsd import service
from ftsd.errors import FtsdError, MailboxError, UnusableIndexError
from ftsd.indexer.pool import WorkerOptions, WorkerPool
from ftsd.indexer.sync import IndexReport
from ftsd.indexer.users import for_each_user, merge
from ftsd.maildir import list_mailboxes, scan_mailbox, uidlist_dir, validate_mailbox_name
from ftsd.privileges import Emit, describe, run_grouped, secure_tree
from ftsd.runtime import Runtime
from ftsd.settings import Settings
from ftsd.userdb import User

log = logging.getLogger(__name__)

# Events from the workers: ("total", n) messages to do, ("user", name) starts, ("done", n) messages done.
Event = tuple[Any, ...]


@contextlib.contextmanager
def runtime_in(settings: Settings, runtime: Runtime | None, parent: int) -> Iterator[Runtime]:
    """The caller's runtime in the caller's process (`parent`); a fresh one in a child that dropped root, closed
    at the end (the child leaves by os._exit: no finalizer would stop its decoder server or remove its socket)."""
    if runtime is not None and os.getpid() == parent:
        yield runtime
        return
    fresh = Runtime(settings)
    try:
        yield fresh
    finally:
        fresh.close()


def resolve(settings: Settings, names: Sequence[str], fail: Callable[[str, str], None],
            runtime: Runtime | None = None) -> list[User]:
    """The users with their Maildir; the others go to fail(name, one line)."""
    users = []
    for name in names:
        try:
            users.append(service.get_user(settings, name, runtime))
        except (FtsdError, OSError) as exc:
            fail(name, describe(exc, name))
    return users


def _mask(pattern: str) -> re.Pattern[str]:
    """IMAP LIST wildcards: `*` matches anything, `%` anything but the hierarchy separator (`.` in Maildir++)."""
    parts = ["[^./]*" if c == "%" else ".*" if c == "*" else re.escape(c) for c in pattern]
    return re.compile("".join(parts) + r"\Z", re.IGNORECASE if pattern.upper().startswith("INBOX") else 0)


def expand_mailboxes(user: User, patterns: Sequence[str]) -> list[str]:
    """Mailbox names and masks ('*', '%', 'Arch*') -> the user's mailboxes, in order; plain names are kept as
    given (a missing one is reported by the command). Raises: MailboxError for a mask that matches nothing."""
    if not any(c in p for p in patterns for c in "*%"):
        return list(patterns)
    existing = [n for n, _ in list_mailboxes(user.maildir)]
    out: list[str] = []
    for pattern in patterns:
        if "*" in pattern or "%" in pattern:
            found = [n for n in existing if _mask(pattern).match(n)]
            if not found and pattern not in ("*", "%"):
                raise MailboxError(f"{user.name}: no mailbox matches {pattern!r}")
        else:
            found = [pattern]
        out += [n for n in found if n not in out]
    return out


def pending_messages(settings: Settings, user: User, mailboxes: Sequence[str], rt: Runtime) -> int:
    """Messages in the Maildir the index does not hold yet (from its metadata; never opens a writer)."""
    names = [n for n, _ in list_mailboxes(user.maildir, user.follow_links, rt.scans)] \
        if not mailboxes or "*" in mailboxes else [validate_mailbox_name(m) for m in mailboxes]
    if not mailboxes:
        names = [n for n in names if not service.is_excluded(settings, n)]
    try:
        with service.user_index(settings, user, rt).reader() as searcher:
            indexed = searcher.mailboxes() if searcher else {}
    except UnusableIndexError:  # moved aside: everything is to do
        indexed = {}
    total = 0
    for name in names:
        box = scan_mailbox(user.maildir, name, uidlist_dir(user), rt.scans, user.follow_links)
        total += max(0, len(box.messages) - int(indexed.get(box.guid, {}).get("messages", 0)))
    return total


def _locked(emit: Emit) -> Emit:
    """emit() for several user threads at once (a pipe to the parent, or the progress bar)."""
    lock = threading.Lock()

    def send(event: Any) -> None:
        with lock:
            emit(event)
    return send


def _index_work(settings: Settings, masks: Sequence[str], prune: bool, runtime: Runtime | None, parent: int,
                ) -> Callable[[list[User], Emit], Any]:
    def work(users: list[User], emit: Emit) -> IndexReport:
        with runtime_in(settings, runtime, parent) as rt:
            return body(users, emit, rt)

    def body(users: list[User], emit: Emit, rt: Runtime) -> IndexReport:
        report = IndexReport()
        parallel = min(settings.fts.users_parallel, len(users))
        workers = WorkerOptions("forkserver") if parallel > 1 else rt.workers  # never fork a threaded process
        # The workers start first: forked ones share this process's pages as they are at the fork, and each
        # counts them in its RSS; the scans counted below hold ~0.5 KB per message (bench/results/memsize-s6.md)
        with WorkerPool(settings, workers, rt.decoders) as pool:
            pool.warm_up()
            total = 0
            boxes: dict[str, list[str]] = {}
            for user in users:
                try:
                    boxes[user.name] = expand_mailboxes(user, masks) if masks and "*" not in masks else list(masks)
                    total += pending_messages(settings, user, boxes[user.name], rt)
                except (FtsdError, OSError):
                    pass  # the user fails below, with its own message
            emit(("total", total))
            send = _locked(emit)
            by_name = {user.name: user for user in users}

            def progress(_total: int, done: int) -> None:
                if done:
                    send(("done", done))

            def one(name: str, own: IndexReport) -> None:
                user = by_name[name]
                send(("user", name))
                started = time.monotonic()
                try:
                    mailboxes = boxes[name] if name in boxes else expand_mailboxes(user, masks)
                    secure_tree(user.index_dir, settings)
                    service.index_user(settings, name, mailboxes, pool, own, progress, prune=prune, runtime=rt)
                except (FtsdError, OSError) as exc:  # printed once by the command, not logged twice
                    own.failed.append(describe(exc, name))
                    own.failed_users += 1
                    return
                seconds = time.monotonic() - started
                log.info("%s: %d indexed, %d removed, %d failed in %.1fs", name, own.indexed, own.removed,
                         len(own.failed), seconds,
                         extra={"user": name, "indexed": own.indexed, "removed": own.removed,
                                "failed": len(own.failed), "duration_ms": round(seconds * 1000)})
            for_each_user(list(by_name), one, report, parallel)
        return report
    return work


def index(settings: Settings, names: Sequence[str], mailboxes: Sequence[str], *, prune: bool,
          on_event: Callable[[Event], None], runtime: Runtime | None = None) -> IndexReport:
    """Index (prune=True: rescan) these users, each as its mail user."""
    report = IndexReport()

    def fail(name: str, line: str) -> None:
        report.failed.append(line)
        report.failed_users += 1

    users = resolve(settings, names, fail, runtime)
    work = _index_work(settings, mailboxes, prune, runtime, os.getpid())
    for part in run_grouped(settings, users, work, on_event, fail):
        merge(report, part)
    return report


@dataclass(slots=True)
class OptimizeReport:
    users: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    failed: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def summary(self) -> str:
        failed = f" ({len(self.failed)} failed)" if self.failed else ""
        return (f"{self.users + len(self.failed)} users{failed}: {self.bytes_before / 1e6:.1f} MB -> "
                f"{self.bytes_after / 1e6:.1f} MB in {time.monotonic() - self.started:.1f}s")


def _optimize_work(settings: Settings, runtime: Runtime | None, parent: int) -> Callable[[list[User], Emit], Any]:
    def work(users: list[User], emit: Emit) -> OptimizeReport:
        with runtime_in(settings, runtime, parent) as rt:
            return body(users, emit, rt)

    def body(users: list[User], emit: Emit, rt: Runtime) -> OptimizeReport:
        report = OptimizeReport()
        emit(("total_users", len(users)))
        send = _locked(emit)

        def one(user: User) -> tuple[int, int] | str | None:
            """(bytes before, after), a failure line, or None (no index yet)."""
            send(("user", user.name))
            index = service.user_index(settings, user, rt)
            try:
                if not index.exists():
                    return None
                secure_tree(user.index_dir, settings)
                started = time.monotonic()
                try:
                    before, after = index.compact()
                except UnusableIndexError as exc:  # damaged: moved aside, the next index run rebuilds it
                    index.move_aside(exc)
                    raise
                log.info("%s: optimized %.1f MB -> %.1f MB in %.1fs", user.name, before / 1e6, after / 1e6,
                         time.monotonic() - started)
                return before, after
            except (FtsdError, OSError) as exc:
                return describe(exc, user.name)
            finally:
                send(("done", 1))

        # several users at once, as the service's optimize (compaction waits on the disk with the GIL released)
        with ThreadPoolExecutor(max(1, min(settings.fts.users_parallel, len(users)))) as threads:
            for outcome in threads.map(one, users):  # in the users' order
                if isinstance(outcome, str):
                    report.failed.append(outcome)
                elif outcome is not None:
                    report.users += 1
                    report.bytes_before += outcome[0]
                    report.bytes_after += outcome[1]
        return report
    return work


def optimize(settings: Settings, names: Sequence[str], on_event: Callable[[Event], None],
             runtime: Runtime | None = None) -> OptimizeReport:
    """Compact these users' indexes, each as its mail user (modes kept through the umask)."""
    report = OptimizeReport()

    def fail(name: str, line: str) -> None:
        report.failed.append(line)

    users = resolve(settings, names, fail, runtime)
    for part in run_grouped(settings, users, _optimize_work(settings, runtime, os.getpid()), on_event, fail):
        report.users += part.users
        report.bytes_before += part.bytes_before
        report.bytes_after += part.bytes_after
        report.failed += part.failed
    return report
