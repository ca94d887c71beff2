"""The facade both front-ends (cli.py, api/) call: index, search, optimize, rescan, status, check.

Everything here takes the Settings object and user names, validates names before any path is built, and opens
only the index of the user named: one user's request never touches another user's files. Long-lived callers
(cli.main, the service) pass their Runtime (caches, reader pool, locks) as `runtime=`; without one a call gets a
fresh runtime of its own (scripts, tests).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftsd.errors import (
    FtsdError,
    IndexLockedError,
    MailboxError,
    StoreError,
    UnknownUserError,
    UnusableIndexError,
)
from ftsd.indexer.pool import WorkerOptions, WorkerPool
from ftsd.indexer.sync import CancelToken, IndexReport, Progress, sync_mailbox
from ftsd.indexer.users import for_each_user
from ftsd.maildir import (
    Mailbox,
    ScanCache,
    list_mailboxes,
    read_message,
    scan_mailbox,
    uidlist_dir,
    uidlist_guid,
    validate_mailbox_name,
)
from ftsd.message import parse_message
from ftsd.privileges import describe
from ftsd.query import MAILBOX_GUID, Node
from ftsd.runtime import Runtime
from ftsd.search import Deadline, IndexTexts, MailboxResult, MailboxSearch, MaildirText, TextSource
from ftsd.settings import Settings
from ftsd.store.index import IndexState, StoreOptions, UserIndex, index_path
from ftsd.store.schema import Document as Document  # re-exported: the type of write_documents' changes
from ftsd.store.searcher import Searcher
from ftsd.store.writer import IndexWriter
from ftsd.userdb import User, lookup_user

log = logging.getLogger(__name__)


def get_user(settings: Settings, name: str, runtime: Runtime | None = None) -> User:
    """The user, with an existing Maildir, from the runtime's kept userdb (else a one-off lookup).
    Raises: UnknownUserError."""
    user = runtime.userdb.lookup(name) if runtime is not None else lookup_user(settings, name)
    if not user.maildir.is_dir():
        raise UnknownUserError(f"{name}: no Maildir at {user.maildir}")
    return user


def is_excluded(settings: Settings, mailbox: str) -> bool:
    """True for mailboxes left out of bulk/automatic indexing (autoindex_exclude: special-use flag or name)."""
    exclude = settings.fts.autoindex_exclude
    return mailbox in exclude or settings.mailboxes.get(mailbox, "") in exclude


def _runtime(settings: Settings, runtime: Runtime | None) -> Runtime:
    return runtime if runtime is not None else Runtime(settings)


def _mailboxes(rt: Runtime, user: User, names: Sequence[str]) -> list[Mailbox]:
    state, scans = uidlist_dir(user), rt.scans
    if not names or "*" in names:
        return [scan_mailbox(user.maildir, name, state, scans, user.follow_links)
                for name, _ in list_mailboxes(user.maildir, user.follow_links, scans)]
    return [scan_mailbox(user.maildir, validate_mailbox_name(n), state, scans, user.follow_links) for n in names]


def user_index(settings: Settings, user: User, runtime: Runtime | None = None) -> UserIndex:
    """The store's handle on the user's index (its directory, reader pool, writer policy)."""
    rt = _runtime(settings, runtime)
    return UserIndex(index_path(user), StoreOptions.of(settings.fts), rt.readers, user.name)


def open_writer(
    settings: Settings, user: User, report: IndexReport, lock_timeout_s: float | None = None,
    *, runtime: Runtime | None = None,
) -> IndexWriter:
    """The user's index writer; an unusable (corrupt, incompatible) index is moved aside and rebuilt from the mail.
    Raises: IndexLockedError, DiskFullError, StoreError."""
    return user_index(settings, user, runtime).writer(lock_timeout_s, lambda: report.rebuilt.append(user.name))


@contextmanager
def write_lock(settings: Settings, user: User, *, runtime: Runtime | None = None) -> Iterator[None]:
    """This process's lock on the user's index, for writers that read and then write (Solr updates): they queue
    here, for at most fts.lock_timeout_s. Raises: IndexLockedError."""
    lock = _runtime(settings, runtime).write_locks.of(index_path(user))
    timeout = settings.fts.lock_timeout_s
    if not lock.acquire(timeout=timeout):
        raise IndexLockedError(f"{user.name}: index busy with other updates for {timeout:g}s")
    try:
        yield
    finally:
        lock.release()


def write_documents(
    settings: Settings, user: User, changes: Sequence[tuple[str, int, Document | None]], *,
    runtime: Runtime | None = None,
) -> None:
    """Replace (a document) or delete (None) documents (mailbox GUID, UID) of the user's index, then commit.
    A damaged index is moved aside (the UnusableIndexError still reaches the caller).
    Raises: IndexLockedError, DiskFullError, UnusableIndexError, StoreError."""
    if not changes:
        return
    index = user_index(settings, user, runtime)
    try:
        with index.writer() as writer:
            for guid, uid, document in changes:
                if document is None:
                    writer.delete(guid, uid)
                else:
                    writer.replace(guid, uid, document)
    except UnusableIndexError as exc:
        index.move_aside(exc)
        raise


def index_user(
    settings: Settings, name: str, mailboxes: Sequence[str], pool: WorkerPool, report: IndexReport,
    progress: Progress | None = None, *, exclude: bool = True, prune: bool = False, runtime: Runtime | None = None,
    cancel: CancelToken | None = None, missing_ok: bool = False,
) -> None:
    """Index one user's new mail; `cancel` is asked before each mailbox (see IndexReport.cancelled).
    missing_ok: a named mailbox that no longer exists (deleted over IMAP) is no error; its documents and metadata
    are dropped. Raises: FtsdError (the caller counts it and goes on with the next user)."""
    rt = _runtime(settings, runtime)
    user = get_user(settings, name, rt)
    every = not mailboxes
    gone: list[str] = []
    if missing_ok and mailboxes and "*" not in mailboxes:
        present = {n for n, _ in list_mailboxes(user.maildir, user.follow_links, rt.scans)}
        gone = [m for m in mailboxes if m not in present]
        mailboxes = [m for m in mailboxes if m in present]
    boxes = _mailboxes(rt, user, mailboxes) if mailboxes or not gone else []
    if exclude and every:
        boxes = [b for b in boxes if not is_excluded(settings, b.name)]
    index = user_index(settings, user, rt)
    if index.marker.exists():  # moved aside earlier (a search or status found the damage): this run rebuilds it
        report.rebuilt.append(name)
    for attempt in range(2):  # damage found mid-run: moved aside, then once more into a fresh index
        try:
            with index.writer(on_rebuild=lambda: _once(report.rebuilt, name)) as writer:
                for box in boxes:
                    if cancel is not None and (reason := cancel.reason()):
                        report.cancelled = reason
                        break
                    if not sync_mailbox(name, box, writer, pool, settings, report, progress, cancel=cancel) \
                            and report.abandoned:
                        writer.abandon()  # no write may follow (a lost writer lease): nothing more is committed
                        break
                else:
                    if gone:
                        _drop_deleted(rt, user, writer, gone)
                    if prune:  # rescan: drop mailboxes that no longer exist in the Maildir
                        _prune(rt, user, writer)
            break
        except UnusableIndexError as exc:
            if attempt:
                raise
            index.move_aside(exc)
            _once(report.rebuilt, name)
    if every and report.cancelled is None:
        index.rebuilt()  # every mailbox is in: a rebuild is complete
    report.users += 1


def _once(names: list[str], name: str) -> None:
    if name not in names:
        names.append(name)


def _prune(rt: Runtime, user: User, writer: IndexWriter) -> None:
    present = {b.guid for b in _mailboxes(rt, user, ())}
    for guid, meta in writer.mailboxes().items():
        if guid not in present:
            log.info("%s: mailbox %s (%s) is gone, dropping its documents", user.name, meta.get("name"), guid)
            writer.delete_mailbox(guid)


def _drop_deleted(rt: Runtime, user: User, writer: IndexWriter, names: Sequence[str]) -> None:
    """A folder deleted from the Maildir: its documents and metadata leave the index (a normal event)."""
    present = set()
    for name, _ in list_mailboxes(user.maildir, user.follow_links, rt.scans):
        try:
            present.add(scan_mailbox(user.maildir, name, uidlist_dir(user), rt.scans, user.follow_links).guid)
        except MailboxError:  # deleted while we look
            continue
    for guid, meta in writer.mailboxes().items():
        if meta.get("name") in names and guid not in present:
            log.info("%s: mailbox %s was deleted, dropping its %s documents", user.name, meta.get("name"),
                     meta.get("messages", 0))
            writer.delete_mailbox(guid)


def index_users(
    settings: Settings, users: Sequence[str] = (), *, all_users: bool = False, mailboxes: Sequence[str] = (),
    progress: Progress | None = None, prune: bool = False, runtime: Runtime | None = None,
    cancel: CancelToken | None = None, missing_ok: bool = False,
) -> IndexReport:
    """Index (or with prune=True, rescan) the given users or all of them; a failing user never stops the others.
    `cancel` stops the run between two mailboxes (IndexReport.cancelled says why)."""
    rt = _runtime(settings, runtime)
    report = IndexReport()
    names = rt.userdb.names() if all_users else list(users)  # the userdb is read once, each user looked up once
    parallel = min(settings.fts.users_parallel, len(names))
    workers = WorkerOptions("forkserver") if parallel > 1 else rt.workers  # never fork a threaded process
    with WorkerPool(settings, workers, rt.decoders) as pool:
        pool.warm_up()

        def one(name: str, own: IndexReport) -> None:
            try:
                index_user(settings, name, mailboxes, pool, own, progress, prune=prune, runtime=rt, cancel=cancel,
                           missing_ok=missing_ok)
            except OSError as exc:  # EACCES, an unreadable Maildir: this user fails, the rest goes on
                line = describe(exc, name)
                log.error("%s", line)
                own.failed.append(line)
                own.failed_users += 1
        for_each_user(names, one, report, parallel, stop=lambda: report.cancelled is not None)
    return report


def _autoindex(settings: Settings, rt: Runtime, user: User, boxes: Sequence[Mailbox]) -> None:
    """Bring these mailboxes up to date within the autoindex time budget; never fails the search."""
    deadline = time.monotonic() + settings.fts.autoindex_timeout_s
    local = dataclasses.replace(settings, fts=dataclasses.replace(settings.fts, workers=1))
    report = IndexReport()
    index = user_index(settings, user, rt)
    try:
        with index.writer(lock_timeout_s=min(2.0, settings.fts.autoindex_timeout_s)) as w:
            with WorkerPool(local, rt.workers, rt.decoders) as pool:
                for box in boxes:
                    if time.monotonic() > deadline or not sync_mailbox(user.name, box, w, pool, local, report,
                                                                         deadline=deadline):
                        break
    except UnusableIndexError as exc:  # damage found while writing: moved aside, the next run rebuilds it
        index.move_aside(exc)
    except StoreError as exc:  # locked, disk full...: the answer stays exact, unindexed mail is read from disk
        (log.info if isinstance(exc, IndexLockedError) else log.warning)("%s: autoindex skipped: %s", user.name, exc)
    except OSError as exc:  # EACCES on the index: still answer, and say why it is slow
        log.warning("autoindex skipped: %s", describe(exc, user.name))


def search(
    settings: Settings, name: str, mailboxes: Sequence[str], query: Node, *, autoindex: bool | None = None,
    runtime: Runtime | None = None,
) -> list[MailboxResult]:
    """Matching UIDs per mailbox (`*` = every mailbox). Raises: UnknownUserError, MailboxError,
    SearchTimeoutError (past limits.search_time_s), BusyError (limits.searches_per_user running)."""
    rt = _runtime(settings, runtime)
    with rt.searches.hold(name):
        return _search(settings, rt, name, mailboxes, query, autoindex)


def _search(settings: Settings, rt: Runtime, name: str, mailboxes: Sequence[str], query: Node,
            autoindex: bool | None) -> list[MailboxResult]:
    deadline = Deadline.after(settings.limits.search_time_s)
    user = get_user(settings, name, rt)
    boxes = _mailboxes(rt, user, mailboxes or ["INBOX"])
    index = user_index(settings, user, rt)
    present: dict[str, set[int]] = {}  # up-to-date mailboxes: the index's own UID set (equal to the Maildir's)
    if settings.fts.autoindex if autoindex is None else autoindex:
        # Only take the writer when the index lags behind the Maildir; an up-to-date search never waits for it.
        stale = []
        try:
            with index.reader() as searcher:
                for b in boxes:
                    indexed = searcher.indexed_uids(b.guid) if searcher is not None else None
                    if indexed is not None and b.messages.keys() == indexed:  # set equality, no 40k-element copy
                        present[b.name] = indexed  # the search's reader has it cached: no copy, no compare
                    else:
                        stale.append(b)
        except UnusableIndexError:  # moved aside: everything is stale
            stale = boxes
        if stale:
            _autoindex(settings, rt, user, stale)
            present.clear()
    for attempt in range(2):
        try:
            with index.reader() as searcher:
                return [_search_box(settings, rt, name, searcher, box, query, deadline, present.get(box.name),
                                    len(boxes) > 1) for box in boxes]
        except UnusableIndexError as exc:  # moved aside by the reader: the mail answers, exactly
            if attempt:
                raise
            log.warning("%s: searching the mail while the index is rebuilt: %s", name, exc)
    raise StoreError(f"{name}: search failed")  # not reached: the second attempt returns or raises


def _search_box(
    settings: Settings, rt: Runtime, name: str, searcher: Searcher | None, box: Mailbox, query: Node,
    deadline: Deadline, present: set[int] | None = None, shared: bool = False,
) -> MailboxResult:
    """`present`: the mailbox's UIDs when the caller has them as a set already (None: from the scan)."""
    bound = rt.decoders.bind(settings)  # attachments: its sandbox
    texts: Callable[[int], TextSource | None]
    if searcher is not None:  # the texts a document keeps (fts.store_texts), else the message file
        texts = IndexTexts(searcher, box.guid, bound, rt.texts, lambda: box)
    else:
        def texts(uid: int) -> TextSource | None:
            return MaildirText(Path(box.messages[uid]), bound, rt.texts)

    deadline.check()  # between mailboxes
    answer = MailboxSearch(searcher, box.guid, set(box.messages) if present is None else present, texts, settings,
                           user=name, deadline=deadline, shared=shared).run(query)
    read = texts.files if isinstance(texts, IndexTexts) else answer.verified
    return MailboxResult(box.name, box.uidvalidity, answer.uids, answer.verified, read)


def search_index(
    settings: Settings, name: str, query: Node, mailboxes: Collection[str] | None = None,
    uids: Collection[int] | None = None, *, runtime: Runtime | None = None,
) -> dict[str, list[int]]:
    """Matching UIDs per mailbox GUID among the documents of the user's index (the Solr bridge: no Maildir scan;
    documents are checked against the texts they keep, or the message file when this host has it).
    `mailboxes`/`uids`: only these (None: all). Raises: UnknownUserError, StoreError, SearchTimeoutError,
    BusyError."""
    deadline = Deadline.after(settings.limits.search_time_s)
    rt = _runtime(settings, runtime)
    user = rt.userdb.lookup(name)
    with rt.searches.hold(name), user_index(settings, user, rt).reader() as searcher:
        if searcher is None:  # nothing indexed yet for this user: no hits (the last-UID lookup then means 0)
            return {}
        out: dict[str, list[int]] = {}
        guids = sorted(mailboxes) if mailboxes is not None else searcher.guids()
        for guid in guids:
            if not MAILBOX_GUID.fullmatch(guid):
                continue
            present = searcher.indexed_uids(guid)
            if uids is not None:
                present = present & set(uids)
            texts = IndexTexts(searcher, guid, rt.decoders.bind(settings), rt.texts, _finder(user, guid, rt.scans))
            deadline.check()  # between mailboxes
            search = MailboxSearch(searcher, guid, present, texts, settings, user=name, keep_unreadable=True,
                                   deadline=deadline, shared=len(guids) > 1)
            out[guid] = search.run(query).uids
        return out


def _finder(user: User, guid: str, scans: ScanCache) -> Callable[[], Mailbox | None]:
    def find() -> Mailbox | None:
        try:
            return find_mailbox(user, guid, scans)
        except FtsdError as exc:
            log.info("%s: Maildir not readable for checking matches: %s", user.name, exc)
            return None
    return find


def find_mailbox(user: User, guid: str, scans: ScanCache | None = None) -> Mailbox | None:
    """The mailbox of the user's Maildir with this GUID, if any. Raises: MailboxError."""
    if not user.maildir.is_dir():
        return None
    for name, path in list_mailboxes(user.maildir, user.follow_links, scans):
        listed = uidlist_guid(path / "dovecot-uidlist")  # its header line: not every folder's whole uidlist
        if listed is None or listed == guid:
            box = scan_mailbox(user.maildir, name, uidlist_dir(user), scans, user.follow_links)
            if box.guid == guid:
                return box
    return None


def document_data(settings: Settings, user: User, guid: str, uid: int, *, runtime: Runtime | None = None,
                  ) -> dict[str, Any] | None:
    """The data one document of the user's index keeps (None: no such document, or no index)."""
    with user_index(settings, user, runtime).reader() as searcher:
        return searcher.document_data(guid, uid) if searcher else None


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    mailbox: str
    uidvalidity: int
    guid: str
    messages: int  # in the Maildir
    indexed: int  # in the index
    last_uid: int  # highest UID indexed
    pending: int  # files without a UID yet (Dovecot has not synced them)
    excluded: bool  # left out of bulk/automatic indexing


@dataclass(frozen=True, slots=True)
class UserStatus:
    user: str
    index: str
    index_bytes: int
    index_state: IndexState  # none, ok, rebuilding (moved aside after damage), damaged
    mailboxes: list[MailboxStatus]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def user_status(settings: Settings, name: str, *, runtime: Runtime | None = None) -> UserStatus:
    """Per-mailbox counts: messages in the Maildir, in the index, last indexed UID; plus index size and state."""
    rt = _runtime(settings, runtime)
    user = get_user(settings, name, rt)
    index = user_index(settings, user, rt)
    boxes = _mailboxes(rt, user, ())
    try:
        with index.reader() as searcher:
            indexed = dict(searcher.mailboxes()) if searcher else {}
            for box in boxes:  # Dovecot's fts_solr documents carry no ftsd metadata: count them
                if searcher is not None and box.guid not in indexed and (uids := searcher.indexed_uids(box.guid)):
                    indexed[box.guid] = {"messages": len(uids), "last_uid": max(uids)}
    except UnusableIndexError:  # moved aside: being rebuilt
        indexed = {}
    rows = []
    for box in boxes:
        meta = indexed.get(box.guid, {})
        rows.append(MailboxStatus(box.name, box.uidvalidity, box.guid, len(box.messages), meta.get("messages", 0),
                                  meta.get("last_uid", 0), box.pending, is_excluded(settings, box.name)))
    return UserStatus(name, str(index.path), index.size(), index.state(), rows)


def status(settings: Settings, name: str, *, runtime: Runtime | None = None) -> dict[str, Any]:
    """user_status() in its JSON form (the HTTP API's and `ftsd status --json`'s)."""
    return user_status(settings, name, runtime=runtime).to_json()


def message_status(
    settings: Settings, name: str, mailbox: str, uid: int, *, runtime: Runtime | None = None,
) -> dict[str, Any]:
    """How one message was indexed: its parts, the decoder of each, text extracted, what was skipped and why."""
    rt = _runtime(settings, runtime)
    user = get_user(settings, name, rt)
    box = scan_mailbox(user.maildir, validate_mailbox_name(mailbox), uidlist_dir(user), rt.scans, user.follow_links)
    data = document_data(settings, user, box.guid, uid, runtime=rt)
    if data is None:
        raise MailboxError(f"{name}: {mailbox} UID {uid} is not in the index")
    # the file as it is now (documents of earlier ftsd versions also kept its name and size)
    file = box.messages.get(uid)
    now = {"file": Path(file).name, "size": _file_size(file)} if file else {}
    parts = data.get("parts", [])
    if not data and file:  # indexed as plain text only: its document keeps nothing, its file tells the parts
        parts, now["parts_from"] = _plain_parts(settings, Path(file)), "file"
    keys = ("part", "content_type", "filename", "size", "decoder", "chars", "skipped")
    data["parts"] = [dict(zip(keys, p, strict=False)) for p in parts]
    return {**data, "uid": uid, **now}


def _file_size(file: str) -> int | None:
    try:
        st = os.lstat(file)
    except OSError:  # expunged since the scan
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None  # a symlink planted since: not followed


def _plain_parts(settings: Settings, file: Path) -> list[tuple[Any, ...]]:
    """The parts of a message indexed as plain text only, parsed again from its file (in-process: no decoder)."""
    try:
        message = read_message(file, settings.fts.max_message_bytes)
    except OSError:  # expunged since the scan, or no longer a regular file
        return []
    return [dataclasses.astuple(p) for p in parse_message(message.data, settings, size=message.size).parts]


@dataclass(frozen=True, slots=True)
class OptimizeResult:
    user: str
    bytes_before: int
    bytes_after: int
    error: str | None = None


def optimize_users(
    settings: Settings, users: Sequence[str] = (), *, all_users: bool = False, runtime: Runtime | None = None,
) -> list[OptimizeResult]:
    """Compact every given user's index (applies deletions, merges, shrinks), several users at once like index -A
    (compaction waits on the disk with the GIL released)."""
    rt = _runtime(settings, runtime)
    names = rt.userdb.names() if all_users else list(users)

    def one(name: str) -> OptimizeResult | None:
        try:
            index = user_index(settings, get_user(settings, name, rt), rt)
            if not index.exists():
                return None
            try:
                before, after = index.compact()
            except UnusableIndexError as exc:
                index.move_aside(exc)
                raise
            return OptimizeResult(name, before, after)
        except (FtsdError, OSError) as exc:
            log.error("%s: optimize failed: %s", name, describe(exc))
            return OptimizeResult(name, 0, 0, describe(exc))
    with ThreadPoolExecutor(max(1, min(settings.fts.users_parallel, len(names)))) as threads:
        return [r for r in threads.map(one, names) if r is not None]
