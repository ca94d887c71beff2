"""IndexWriter: the single writer of one user's index. Batches documents and commits at `commit_limit` changes
or `batch_bytes` of documents, never per message; cancels the open batch when an exception leaves the `with`
block (nothing half-written is committed). Xapian errors become ftsd errors through store/xerrors.py; the error
that ended a batch is the one raised, whatever cancelling it then raises."""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any

import xapian

from ftsd.errors import IndexLockedError, OutdatedIndexError, SchemaVersionError, StoreError
from ftsd.store import schema
from ftsd.store.lexicon import LexiconWriter
from ftsd.store.xerrors import store_error, translated

log = logging.getLogger(__name__)


def open_writable(path: Path, lock_timeout_s: float) -> Any:
    """Open (or create) the index for writing, waiting up to lock_timeout_s for another writer.
    Raises: IndexLockedError, UnusableIndexError (SchemaVersionError, CorruptIndexError), DiskFullError, StoreError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout_s
    while True:
        try:
            db = xapian.WritableDatabase(str(path), xapian.DB_CREATE_OR_OPEN)
            break
        except xapian.DatabaseLockError as exc:
            lock = path / "flintlock"
            if "Permission denied" in exc.get_msg() or (lock.exists() and not os.access(lock, os.W_OK)):
                # EACCES is no lock held by anyone: waiting would not help
                raise PermissionError(errno.EACCES, "Permission denied", str(lock)) from None
            if time.monotonic() >= deadline:
                where = f"{path.parent.name}/{path.name}"
                raise IndexLockedError(f"{where}: index locked by another writer for {lock_timeout_s:g}s") from exc
            time.sleep(0.1)
        except xapian.Error as exc:
            raise store_error(exc, path, "opening the index for writing") from exc
    try:
        version = db.get_metadata(schema.META_SCHEMA).decode()
        if not version or (version in schema.READS and version != schema.SCHEMA_VERSION):
            # (an earlier layout this ftsd reads: marked as this one's before anything of its own is committed)
            db.set_metadata(schema.META_SCHEMA, schema.SCHEMA_VERSION)
    except xapian.Error as exc:
        db.close()
        raise store_error(exc, path, "reading the schema version") from exc
    if version and version not in schema.READS:
        db.close()
        older = version.isdigit() and int(version) < int(schema.SCHEMA_VERSION)
        raise (OutdatedIndexError if older else SchemaVersionError)(
            f"{path.parent.name}/{path.name}: index schema {version}, this ftsd writes {schema.SCHEMA_VERSION}")
    return db


class IndexWriter:
    """`with IndexWriter(path, ...) as w:` add/replace/delete documents; commits every commit_limit changes."""

    def __init__(self, path: Path, *, lock_timeout_s: float, commit_limit: int, batch_bytes: int,
                 on_closed: Callable[[], None] | None = None) -> None:
        """`on_closed`: called after the last commit closed the index cleanly (not after abandon())."""
        self.path = path
        self.on_closed = on_closed
        self.commit_limit = commit_limit
        self.batch_bytes = batch_bytes
        self.db = open_writable(path, lock_timeout_s)
        self.pending = 0
        self.pending_bytes = 0
        self.closed = False
        with self._xapian("starting a transaction"):
            self.lexicon = LexiconWriter(self.db)
            self.db.begin_transaction()
        if not schema.serialisation_works():
            self._close()
            raise StoreError(f"{path.parent.name}: this Xapian ({xapian.version_string()}) serialises documents "
                             "in a way ftsd does not write; install xapian-core 1.4")

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.closed:  # abandoned inside the block
            return
        if kind is None:
            try:
                self.commit()
            except BaseException:
                self.abandon()
                raise
            self._close()
            if self.on_closed is not None:
                self.on_closed()
        else:
            self.abandon()

    def _xapian(self, doing: str) -> AbstractContextManager[None]:
        return translated(self.path, doing)

    def abandon(self) -> None:
        """Drop what is not committed and close. Never raises: it runs while another error is on its way."""
        self.lexicon.cancel()
        try:
            self.db.cancel_transaction()
        except xapian.Error as exc:  # e.g. no transaction open after a failed commit; the caller's error stands
            log.info("%s: cancelling the batch: %s", self.path.parent.name, exc)
        self._close()

    def _close(self) -> None:
        self.closed = True
        try:
            self.db.close()
        except xapian.Error as exc:
            log.warning("%s: closing the index: %s", self.path.parent.name, exc)

    def _changed(self, size: int = 0) -> None:
        self.pending += 1
        self.pending_bytes += size
        # safety net (sync commits with the mailbox metadata): memory stays bounded by count and by bytes
        if self.pending >= 4 * self.commit_limit or self.pending_bytes >= self.batch_bytes:
            self.commit()

    def commit(self) -> None:
        """Make everything so far durable and visible to readers. Raises: DiskFullError, StoreError."""
        with self._xapian("commit"):
            self.lexicon.flush()
            self.db.commit_transaction()
            self.db.begin_transaction()
        self.pending = self.pending_bytes = 0

    def replace(self, guid: str, uid: int, document: schema.Document) -> None:
        """Store the document of (guid, uid), in place of the one the index may hold."""
        with self._xapian("adding a document"):
            self.lexicon.add(document.lexicon)
            self.db.replace_document(schema.id_term(guid, uid), xapian.Document.unserialise(document.data))
        self._changed(len(document.data))

    def add(self, document: schema.Document) -> None:
        """Store the document of a UID the index does not hold (in this transaction either: see indexed_uids);
        skips replace's lookup of the unique id. Adding a UID the index holds would store it twice."""
        with self._xapian("adding a document"):
            self.lexicon.add(document.lexicon)
            self.db.add_document(xapian.Document.unserialise(document.data))
        self._changed(len(document.data))

    def delete(self, guid: str, uid: int) -> None:
        with self._xapian("deleting a document"):
            self.db.delete_document(schema.id_term(guid, uid))
        self._changed()

    def delete_mailbox(self, guid: str) -> None:
        with self._xapian("deleting a mailbox"):
            self.db.delete_document(schema.mailbox_term(guid))
            self.db.set_metadata(schema.META_MAILBOX + guid, "")
        self._changed()

    def indexed_uids(self, guid: str) -> set[int]:
        """UIDs of this mailbox present in the index (including this batch)."""
        prefix = schema.id_term(guid, 0)[:-1].encode()  # Q<guid>: -- read from the term list, no document read
        start = len(prefix)
        with self._xapian("reading the indexed UIDs"):
            return {int(item.term[start:]) for item in self.db.allterms(prefix)}

    def mailbox_meta(self, guid: str) -> dict[str, Any]:
        with self._xapian("reading mailbox metadata"):
            raw = self.db.get_metadata(schema.META_MAILBOX + guid)
        return dict(json.loads(raw)) if raw else {}

    def set_mailbox_meta(self, guid: str, meta: dict[str, Any]) -> None:
        with self._xapian("writing mailbox metadata"):
            self.db.set_metadata(schema.META_MAILBOX + guid, json.dumps(meta, sort_keys=True))

    def mailboxes(self) -> dict[str, dict[str, Any]]:
        """guid -> metadata of every mailbox the index knows."""
        with self._xapian("reading mailbox metadata"):
            return schema.mailbox_metadata(self.db)
