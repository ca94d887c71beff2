"""Bulk runs of the command line (index, rescan, optimize): users -> mail identities -> per-user work.

Each identity group runs as its mail user (ftsd/privileges.py); progress goes back as small events, so one bar
covers the whole run. A user that fails (unknown, unreadable Maildir, EACCES on its index) is one line in the
report and the others go on. The total to do is counted before the first message: Maildir counts minus what each
index's metadata says it holds, so the bar and its ETA mean something from the start.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ftsd import service
from ftsd.errors import FtsdError, MailboxError
from ftsd.indexer.pool import WorkerPool
from ftsd.indexer.sync import IndexReport
from ftsd.maildir import list_mailboxes, scan_mailbox, validate_mailbox_name
from ftsd.privileges import Emit, describe, run_grouped, secure_tree
from ftsd.settings import Settings
from ftsd.store.maintenance import compact
from ftsd.userdb import User

log = logging.getLogger(__name__)

# Events from the workers: ("total", n) messages to do, ("user", name) starts, ("done", n) messages done.
Event = tuple[Any, ...]


def resolve(settings: Settings, names: Sequence[str], fail: Callable[[str, str], None]) -> list[User]:
    """The users with their Maildir; the others go to fail(name, one line)."""
    users = []
    for name in names:
        try:
            users.append(service.get_user(settings, name))
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


def pending_messages(settings: Settings, user: User, mailboxes: Sequence[str]) -> int:
    """Messages in the Maildir the index does not hold yet (from its metadata; never opens a writer)."""
    names = [n for n, _ in list_mailboxes(user.maildir)] if not mailboxes or "*" in mailboxes else \
        [validate_mailbox_name(m) for m in mailboxes]
    if not mailboxes:
        names = [n for n in names if not service.is_excluded(settings, n)]
    searcher = service.open_searcher(user) if service.index_path(user).exists() else None
    try:
        indexed = searcher.mailboxes() if searcher else {}
    finally:
        service.release_searcher(searcher)
    total = 0
    for name in names:
        box = scan_mailbox(user.maildir, name, service.uidlist_dir(user))
        total += max(0, len(box.messages) - int(indexed.get(box.guid, {}).get("messages", 0)))
    return total


def _index_work(settings: Settings, masks: Sequence[str], prune: bool) -> Callable[[list[User], Emit], Any]:
    def work(users: list[User], emit: Emit) -> IndexReport:
        report = IndexReport()
        total = 0
        boxes: dict[str, list[str]] = {}
        for user in users:
            try:
                boxes[user.name] = expand_mailboxes(user, masks) if masks and "*" not in masks else list(masks)
                total += pending_messages(settings, user, boxes[user.name])
            except (FtsdError, OSError):
                pass  # the user fails below, with its own message
        emit(("total", total))
        with WorkerPool(settings) as pool:
            for user in users:
                emit(("user", user.name))
                before = (report.indexed, report.removed, len(report.failed))
                started = time.monotonic()
                try:
                    mailboxes = boxes[user.name] if user.name in boxes else expand_mailboxes(user, masks)
                    secure_tree(user.index_dir, settings)
                    service.index_user(settings, user.name, mailboxes, pool, report,
                                       lambda _total, done: emit(("done", done)) if done else None, prune=prune)
                except (FtsdError, OSError) as exc:  # printed once by the command, not logged twice
                    report.failed.append(describe(exc, user.name))
                    report.failed_users += 1
                    continue
                log.info("%s: %d indexed, %d removed, %d failed in %.1fs", user.name, report.indexed - before[0],
                         report.removed - before[1], len(report.failed) - before[2], time.monotonic() - started)
        return report
    return work


def merge(reports: Sequence[IndexReport], into: IndexReport) -> IndexReport:
    for report in reports:
        for f in fields(IndexReport):
            if f.name == "started":
                continue
            value = getattr(report, f.name)
            setattr(into, f.name, getattr(into, f.name) + value)
    return into


def index(settings: Settings, names: Sequence[str], mailboxes: Sequence[str], *, prune: bool,
          on_event: Callable[[Event], None]) -> IndexReport:
    """Index (prune=True: rescan) these users, each as its mail user."""
    report = IndexReport()

    def fail(name: str, line: str) -> None:
        report.failed.append(line)
        report.failed_users += 1

    users = resolve(settings, names, fail)
    results = run_grouped(settings, users, _index_work(settings, mailboxes, prune), on_event, fail)
    return merge(results, report)


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


def _optimize_work(settings: Settings) -> Callable[[list[User], Emit], Any]:
    def work(users: list[User], emit: Emit) -> OptimizeReport:
        report = OptimizeReport()
        emit(("total_users", len(users)))
        for user in users:
            emit(("user", user.name))
            path = service.index_path(user)
            try:
                if path.exists():
                    secure_tree(user.index_dir, settings)
                    started = time.monotonic()
                    before, after = compact(path, settings.fts.lock_timeout_s, settings.fts.partial)
                    report.users += 1
                    report.bytes_before += before
                    report.bytes_after += after
                    log.info("%s: optimized %.1f MB -> %.1f MB in %.1fs", user.name, before / 1e6, after / 1e6,
                             time.monotonic() - started)
            except (FtsdError, OSError) as exc:
                report.failed.append(describe(exc, user.name))
            emit(("done", 1))
        return report
    return work


def optimize(settings: Settings, names: Sequence[str], on_event: Callable[[Event], None]) -> OptimizeReport:
    """Compact these users' indexes, each as its mail user (modes kept through the umask)."""
    report = OptimizeReport()

    def fail(name: str, line: str) -> None:
        report.failed.append(line)

    users = resolve(settings, names, fail)
    for part in run_grouped(settings, users, _optimize_work(settings), on_event, fail):
        report.users += part.users
        report.bytes_before += part.bytes_before
        report.bytes_after += part.bytes_after
        report.failed += part.failed
    return report
