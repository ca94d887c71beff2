"""Bring one user's index up to date with the Maildir: new UIDs indexed, expunged UIDs dropped, a changed
UIDVALIDITY reindexes that mailbox, a renamed folder (same GUID) only gets its name updated.

What counts as indexed is what the index holds, never a separate "done" marker: a run killed mid-way resumes
from the last commit, nothing is indexed twice (a document is added only for a UID the index does not hold: read
from the index itself at the start of each mailbox) and a message that failed is retried next time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ftsd.indexer.pool import WorkerPool
from ftsd.maildir import Mailbox
from ftsd.settings import Settings
from ftsd.store.writer import IndexWriter

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (newly known total, newly done)


class CancelToken:
    """When an index run should stop. `reason()` is asked between mailboxes: the run stops there, what is done is
    committed, the rest is left for the next run (cancel() from another thread, or `check` giving a reason).
    `abandon()` is asked before each message: when it gives a reason (a cluster node lost its writer lease), no
    further write may happen, and what is not committed yet is dropped."""

    def __init__(self, check: Callable[[], str | None] | None = None,
                 abandon: Callable[[], str | None] | None = None) -> None:
        self._check = check
        self._abandon = abandon
        self._reason: str | None = None
        self._lock = threading.Lock()

    def cancel(self, reason: str) -> None:
        with self._lock:
            self._reason = self._reason or reason

    def reason(self) -> str | None:
        """Why to stop now, or None to go on."""
        with self._lock:
            if self._reason is None and self._check is not None:
                self._reason = self._check()
            return self._reason

    def abandon(self) -> str | None:
        """Why to stop at once without committing, or None to go on."""
        return self._abandon() if self._abandon is not None else None


@dataclass(slots=True)
class IndexReport:
    """Counts of one index run (all users)."""

    indexed: int = 0
    skipped: int = 0
    removed: int = 0
    bytes: int = 0
    users: int = 0
    mailboxes: int = 0
    partial: int = 0  # indexed from what could be read (raw text): the message broke the parser or its worker
    failed: list[str] = field(default_factory=list)  # "user mailbox UID n: reason" or "user: reason"
    failed_users: int = 0  # users whose run stopped on an error (not counted in `users`)
    rebuilt: list[str] = field(default_factory=list)
    cancelled: str | None = None  # why the run stopped early (a CancelToken), None if it went to the end
    abandoned: bool = False  # it stopped without committing its last batch (CancelToken.abandon)
    started: float = field(default_factory=time.monotonic)

    def summary(self) -> str:
        seconds = max(time.monotonic() - self.started, 1e-6)
        failed_users = f" ({self.failed_users} failed)" if self.failed_users else ""
        return (
            f"{self.users + self.failed_users} users{failed_users}, {self.mailboxes} mailboxes: "
            f"{self.indexed} indexed, {self.removed} removed, "
            f"{self.skipped} skipped, {len(self.failed)} failed"
            f"{f', {self.partial} indexed partly' if self.partial else ''} in {seconds:.1f}s "
            f"({self.indexed / seconds:.0f} msg/s, {self.bytes / seconds / 1e6:.1f} MB/s)"
        )


def sync_mailbox(
    user: str,
    mailbox: Mailbox,
    writer: IndexWriter,
    pool: WorkerPool,
    settings: Settings,
    report: IndexReport,
    progress: Progress | None = None,
    deadline: float | None = None,
    cancel: CancelToken | None = None,
) -> bool:
    """Index what is new, drop what is gone. Returns False if `deadline` (monotonic) stopped it early, or
    `cancel.abandon()` did (then report.abandoned is set and the caller must not commit)."""
    guid = mailbox.guid
    started, before = time.monotonic(), (report.indexed, report.removed, len(report.failed))
    meta = writer.mailbox_meta(guid)
    if meta and meta.get("uidvalidity") != mailbox.uidvalidity:
        log.warning("%s: %s: UIDVALIDITY changed %s -> %s, reindexing the mailbox",
                    user, mailbox.name, meta.get("uidvalidity"), mailbox.uidvalidity)
        writer.delete_mailbox(guid)
    elif meta and meta.get("name") != mailbox.name:
        log.info("%s: mailbox %s renamed to %s (same GUID): not reindexed", user, meta.get("name"), mailbox.name)
    indexed = writer.indexed_uids(guid)
    for uid in sorted(indexed - mailbox.messages.keys()):
        writer.delete(guid, uid)
        report.removed += 1
    indexed &= mailbox.messages.keys()
    new = sorted(mailbox.messages.keys() - indexed)
    if progress:
        progress(len(new), 0)
    complete = True
    since_commit = batch = 0  # messages and bytes of mail since the last commit: both bound the writer's memory
    for outcome in pool.map((guid, uid, Path(mailbox.messages[uid])) for uid in new):
        if cancel is not None and (why := cancel.abandon()):
            report.cancelled, report.abandoned = why, True
            return False
        if outcome.document is not None:
            writer.add(outcome.document)  # in `new`: not in the index
            indexed.add(outcome.uid)
            report.indexed += 1
            report.bytes += outcome.size
            if outcome.note:
                log.warning("%s: %s UID %d %s", user, mailbox.name, outcome.uid, outcome.note,
                            extra={"user": user, "mailbox": mailbox.name, "uid": outcome.uid})
                report.partial += 1
        elif outcome.skipped:
            log.info("%s: %s UID %d skipped: %s", user, mailbox.name, outcome.uid, outcome.skipped,
                     extra={"user": user, "mailbox": mailbox.name, "uid": outcome.uid})
            report.skipped += 1
        else:
            log.warning("%s: %s UID %d failed: %s", user, mailbox.name, outcome.uid, outcome.failed,
                        extra={"user": user, "mailbox": mailbox.name, "uid": outcome.uid})
            report.failed.append(f"{user} {mailbox.name} UID {outcome.uid}: {outcome.failed}")
        if progress:
            progress(0, 1)
        since_commit += 1
        batch += outcome.size
        late = deadline is not None and time.monotonic() > deadline
        if since_commit >= settings.fts.commit_limit or batch >= settings.fts.batch_bytes or late:
            since_commit = batch = 0
            _save_meta(writer, mailbox, indexed)
            writer.commit()
            if late and len(indexed) < len(mailbox.messages):
                complete = False
                break
    _save_meta(writer, mailbox, indexed)
    report.mailboxes += 1
    if (report.indexed, report.removed, len(report.failed)) != before:
        counts = {"indexed": report.indexed - before[0], "removed": report.removed - before[1],
                  "failed": len(report.failed) - before[2]}
        seconds = time.monotonic() - started
        log.info("%s: %s: %d indexed, %d removed, %d failed in %.1fs", user, mailbox.name, *counts.values(), seconds,
                 extra={"user": user, "mailbox": mailbox.name, **counts, "duration_ms": round(seconds * 1000)})
    return complete


def _save_meta(writer: IndexWriter, mailbox: Mailbox, indexed: set[int]) -> None:
    meta = {"name": mailbox.name, "uidvalidity": mailbox.uidvalidity, "last_uid": max(indexed, default=0),
            "messages": len(indexed)}
    if writer.mailbox_meta(mailbox.guid) != meta:  # rewriting the same value would make a no-op run commit
        writer.set_mailbox_meta(mailbox.guid, meta)
