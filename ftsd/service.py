"""The facade both front-ends (cli.py, api/) call: index, search, optimize, rescan, status, check.

Everything here takes the Settings object and user names, validates names before any path is built, and opens
only the index of the user named: one user's request never touches another user's files.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftsd.errors import (
    FtsdError,
    IndexLockedError,
    MailboxError,
    OutdatedIndexError,
    SchemaVersionError,
    StoreError,
    UnknownUserError,
)
from ftsd.indexer.pool import WorkerPool
from ftsd.indexer.sync import IndexReport, Progress, sync_mailbox
from ftsd.maildir import Mailbox, list_mailboxes, scan_mailbox, validate_mailbox_name
from ftsd.privileges import describe
from ftsd.query import Node
from ftsd.search import MailboxResult, MailboxSearch
from ftsd.settings import Settings
from ftsd.store.maintenance import check, compact, index_size
from ftsd.store.searcher import Searcher
from ftsd.store.writer import IndexWriter
from ftsd.userdb import User, list_users, lookup_user

log = logging.getLogger(__name__)


def index_path(user: User) -> Path:
    return user.index_dir / "ftsd.db"


def uidlist_dir(user: User) -> Path:
    return user.index_dir / "ftsd-uidlists"


def get_user(settings: Settings, name: str) -> User:
    """The user, with an existing Maildir. Raises: UnknownUserError."""
    user = lookup_user(settings, name)
    if not user.maildir.is_dir():
        raise UnknownUserError(f"{name}: no Maildir at {user.maildir}")
    return user


def is_excluded(settings: Settings, mailbox: str) -> bool:
    """True for mailboxes left out of bulk/automatic indexing (autoindex_exclude: special-use flag or name)."""
    exclude = settings.fts.autoindex_exclude
    return mailbox in exclude or settings.mailboxes.get(mailbox, "") in exclude


def _mailboxes(settings: Settings, user: User, names: Sequence[str]) -> list[Mailbox]:
    if not names or "*" in names:
        return [scan_mailbox(user.maildir, name, uidlist_dir(user)) for name, _ in list_mailboxes(user.maildir)]
    return [scan_mailbox(user.maildir, validate_mailbox_name(n), uidlist_dir(user)) for n in names]


def open_writer(
    settings: Settings, user: User, report: IndexReport, lock_timeout_s: float | None = None
) -> IndexWriter:
    """The user's index writer; an unusable (corrupt, incompatible) index is moved aside and rebuilt from the mail.
    Raises: IndexLockedError, StoreError."""
    path = index_path(user)
    timeout = settings.fts.lock_timeout_s if lock_timeout_s is None else lock_timeout_s
    try:
        return IndexWriter(path, lock_timeout_s=timeout, commit_limit=settings.fts.commit_limit)
    except OutdatedIndexError as exc:  # an upgrade: nothing to keep, the mail is the source
        log.warning("%s: %s (an older ftsd's layout); rebuilding it from the mail", user.name, exc)
        shutil.rmtree(path)
        report.rebuilt.append(user.name)
        return IndexWriter(path, lock_timeout_s=timeout, commit_limit=settings.fts.commit_limit)
    except SchemaVersionError as exc:
        aside = path.with_name(f"{path.name}.broken-{int(time.time())}")
        log.error("%s: %s; moved to %s, rebuilding from the mail", user.name, exc, aside)
        shutil.move(str(path), str(aside))
        report.rebuilt.append(user.name)
        return IndexWriter(path, lock_timeout_s=timeout, commit_limit=settings.fts.commit_limit)


def index_user(
    settings: Settings, name: str, mailboxes: Sequence[str], pool: WorkerPool, report: IndexReport,
    progress: Progress | None = None, *, exclude: bool = True, prune: bool = False, missing_ok: bool = False,
) -> None:
    """Index one user's new mail. missing_ok: a named mailbox that no longer exists (deleted over IMAP) is no
    error; its documents and metadata are dropped. Raises: FtsdError (the caller counts it, goes on)."""
    user = get_user(settings, name)
    gone: list[str] = []
    if missing_ok and mailboxes and "*" not in mailboxes:
        present = {n for n, _ in list_mailboxes(user.maildir)}
        gone = [m for m in mailboxes if m not in present]
        mailboxes = [m for m in mailboxes if m in present]
        if not mailboxes and not gone:
            return
    boxes = _mailboxes(settings, user, mailboxes) if mailboxes or not gone else []
    if exclude and not mailboxes:
        boxes = [b for b in boxes if not is_excluded(settings, b.name)]
    with open_writer(settings, user, report) as writer:
        for box in boxes:
            sync_mailbox(name, box, writer, pool, settings, report, progress)
        if gone:
            _drop_deleted(user, writer, gone)
        if prune:  # rescan: drop mailboxes that no longer exist in the Maildir
            present = {b.guid for b in _mailboxes(settings, user, ())}
            for guid, meta in writer.mailboxes().items():
                if guid not in present:
                    log.info("%s: mailbox %s (%s) is gone, dropping its documents", name, meta.get("name"), guid)
                    writer.delete_mailbox(guid)
    report.users += 1


def _drop_deleted(user: User, writer: IndexWriter, names: Sequence[str]) -> None:
    """A folder deleted from the Maildir: its documents and metadata leave the index (a normal event)."""
    present = {b.guid for b in _mailboxes_quiet(user)}
    for guid, meta in writer.mailboxes().items():
        if meta.get("name") in names and guid not in present:
            log.info("%s: mailbox %s was deleted, dropping its %s documents", user.name, meta.get("name"),
                     meta.get("messages", 0))
            writer.delete_mailbox(guid)


def _mailboxes_quiet(user: User) -> list[Mailbox]:
    out = []
    for name, _ in list_mailboxes(user.maildir):
        try:
            out.append(scan_mailbox(user.maildir, name, uidlist_dir(user)))
        except MailboxError:  # deleted while we look
            continue
    return out


def index_users(
    settings: Settings, users: Sequence[str] = (), *, all_users: bool = False, mailboxes: Sequence[str] = (),
    progress: Progress | None = None, prune: bool = False, missing_ok: bool = False,
) -> IndexReport:
    """Index (or with prune=True, rescan) the given users or all of them; a failing user never stops the others."""
    report = IndexReport()
    names = list_users(settings) if all_users else list(users)
    with WorkerPool(settings) as pool:
        for name in names:
            try:
                index_user(settings, name, mailboxes, pool, report, progress, prune=prune, missing_ok=missing_ok)
            except (FtsdError, OSError) as exc:  # EACCES, an unreadable Maildir: this user fails, the rest goes on
                line = describe(exc, name)
                log.error("%s", line)
                report.failed.append(line)
                report.failed_users += 1
    return report


def _autoindex(settings: Settings, user: User, boxes: Sequence[Mailbox]) -> None:
    """Bring these mailboxes up to date within the autoindex time budget; never fails the search."""
    deadline = time.monotonic() + settings.fts.autoindex_timeout_s
    local = dataclasses.replace(settings, fts=dataclasses.replace(settings.fts, workers=1))
    report = IndexReport()
    try:
        with open_writer(settings, user, report, lock_timeout_s=min(2.0, settings.fts.autoindex_timeout_s)) as w:
            with WorkerPool(local) as pool:
                for box in boxes:
                    if time.monotonic() > deadline or not sync_mailbox(user.name, box, w, pool, local, report,
                                                                         deadline=deadline):
                        break
    except (IndexLockedError, StoreError) as exc:  # the answer stays exact: unindexed mail is read from disk
        log.info("%s: autoindex skipped: %s", user.name, exc)
    except OSError as exc:  # EACCES on the index: still answer, and say why it is slow
        log.warning("autoindex skipped: %s", describe(exc, user.name))


def search(
    settings: Settings, name: str, mailboxes: Sequence[str], query: Node, *, autoindex: bool | None = None,
) -> list[MailboxResult]:
    """Matching UIDs per mailbox (`*` = every mailbox). Raises: UnknownUserError, MailboxError."""
    user = get_user(settings, name)
    boxes = _mailboxes(settings, user, mailboxes or ["INBOX"])
    searcher = open_searcher(user)
    if settings.fts.autoindex if autoindex is None else autoindex:
        # Only take the writer when the index lags behind the Maildir; an up-to-date search never waits for it.
        stale = [b for b in boxes if searcher is None or searcher.indexed_uids(b.guid) != set(b.messages)]
        if stale:
            _autoindex(settings, user, stale)
            if searcher:
                searcher.reopen()
            else:
                searcher = open_searcher(user)
    try:
        return [MailboxSearch(searcher, box, settings).run(query) for box in boxes]
    finally:
        release_searcher(searcher)


# Idle readers kept open between searches (bounded: open files), checked out while in use so that concurrent
# requests never share a Xapian Database object, which is not thread-safe.
_IDLE: OrderedDict[Path, list[Searcher]] = OrderedDict()
_IDLE_LOCK = threading.Lock()
_IDLE_MAX = 64


def open_searcher(user: User) -> Searcher | None:
    """A reader of the user's index at its latest commit, or None when there is none yet or it is unusable
    (search then reads the mail). Give it back with release_searcher()."""
    path = index_path(user)
    with _IDLE_LOCK:
        idle = _IDLE.get(path)
        searcher = idle.pop() if idle else None
    if searcher is not None:
        try:
            if not searcher.replaced():
                searcher.reopen()
                return searcher
        except Exception:  # broken: open afresh
            pass
        searcher.close()
    try:
        return Searcher(path)
    except StoreError as exc:
        log.info("%s: searching without index: %s", user.name, exc)
        return None


def release_searcher(searcher: Searcher | None) -> None:
    if searcher is None:
        return
    with _IDLE_LOCK:
        _IDLE.setdefault(searcher.path, []).append(searcher)
        _IDLE.move_to_end(searcher.path)
        while sum(len(v) for v in _IDLE.values()) > _IDLE_MAX:
            for old in _IDLE.popitem(last=False)[1]:
                old.close()


def status(settings: Settings, name: str) -> dict[str, Any]:
    """Per-mailbox counts: messages in the Maildir, in the index, last indexed UID; plus index size."""
    user = get_user(settings, name)
    searcher = open_searcher(user)
    indexed = searcher.mailboxes() if searcher else {}
    rows = []
    for box in _mailboxes(settings, user, ()):
        meta = indexed.get(box.guid) or _counted(searcher, box.guid)
        rows.append({
            "mailbox": box.name, "uidvalidity": box.uidvalidity, "guid": box.guid, "messages": len(box.messages),
            "indexed": meta.get("messages", 0), "last_uid": meta.get("last_uid", 0),
            "pending": box.pending, "excluded": is_excluded(settings, box.name),
        })
    release_searcher(searcher)
    return {"user": name, "index": str(index_path(user)), "index_bytes": index_size(index_path(user)),
            "mailboxes": rows}


def _counted(searcher: Searcher | None, guid: str) -> dict[str, Any]:
    """Counts of a mailbox without ftsd's metadata (its documents came from Dovecot's fts_solr)."""
    uids = searcher.indexed_uids(guid) if searcher else set()
    return {"messages": len(uids), "last_uid": max(uids, default=0)} if uids else {}


def message_status(settings: Settings, name: str, mailbox: str, uid: int) -> dict[str, Any]:
    """How one message was indexed: its parts, the decoder of each, text extracted, what was skipped and why."""
    user = get_user(settings, name)
    box = scan_mailbox(user.maildir, validate_mailbox_name(mailbox), uidlist_dir(user))
    searcher = open_searcher(user)
    data = searcher.document_data(box.guid, uid) if searcher else None
    release_searcher(searcher)
    if data is None:
        raise MailboxError(f"{name}: {mailbox} UID {uid} is not in the index")
    keys = ("part", "content_type", "filename", "size", "decoder", "chars", "skipped")
    data["parts"] = [dict(zip(keys, p, strict=False)) for p in data.get("parts", [])]
    return data


@dataclass(frozen=True, slots=True)
class OptimizeResult:
    user: str
    bytes_before: int
    bytes_after: int
    error: str | None = None


def optimize_users(settings: Settings, users: Sequence[str] = (), *, all_users: bool = False) -> list[OptimizeResult]:
    """Compact every given user's index (applies deletions, merges, shrinks)."""
    out = []
    for name in list_users(settings) if all_users else users:
        try:
            user = get_user(settings, name)
            if not index_path(user).exists():
                continue
            before, after = compact(index_path(user), settings.fts.lock_timeout_s, settings.fts.partial)
            out.append(OptimizeResult(name, before, after))
        except (FtsdError, OSError) as exc:
            log.error("%s: optimize failed: %s", name, describe(exc))
            out.append(OptimizeResult(name, 0, 0, describe(exc)))
    return out


def check_users(settings: Settings, users: Sequence[str] = (), *, all_users: bool = False) -> dict[str, str | None]:
    """Xapian consistency check of each user's index: user -> None (fine) or the problem."""
    out: dict[str, str | None] = {}
    for name in list_users(settings) if all_users else users:
        try:
            path = index_path(get_user(settings, name))
            out[name] = check(path, settings.fts.partial) if path.exists() else "no index yet"
        except (FtsdError, OSError) as exc:
            out[name] = describe(exc)
    return out
