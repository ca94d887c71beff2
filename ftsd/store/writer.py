"""IndexWriter: the single writer of one user's index. Batches documents and commits at `commit_limit`, never
per message; cancels the open batch when an exception leaves the `with` block (nothing half-written is committed)."""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import xapian

from ftsd.errors import IndexLockedError, OutdatedIndexError, SchemaVersionError, StoreError
from ftsd.store import schema
from ftsd.store.lexicon import LexiconWriter

log = logging.getLogger(__name__)


def open_writable(path: Path, lock_timeout_s: float) -> Any:
    """Open (or create) the index for writing, waiting up to lock_timeout_s for another writer.
    Raises: IndexLockedError, SchemaVersionError, StoreError."""
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
                raise IndexLockedError(f"{path}: index locked by another writer for {lock_timeout_s:g}s") from exc
            time.sleep(0.1)
        except xapian.DatabaseError as exc:  # corrupt, truncated, wrong version: unusable, rebuild
            raise SchemaVersionError(f"{path}: unusable index: {exc.get_msg()}") from exc
        except xapian.Error as exc:
            raise StoreError(f"{path}: {exc.get_msg()}") from exc
    version = db.get_metadata(schema.META_SCHEMA).decode()
    if not version:
        db.set_metadata(schema.META_SCHEMA, schema.SCHEMA_VERSION)
    elif version != schema.SCHEMA_VERSION:
        db.close()
        older = version.isdigit() and int(version) < int(schema.SCHEMA_VERSION)
        raise (OutdatedIndexError if older else SchemaVersionError)(
            f"{path}: index schema {version}, this ftsd writes {schema.SCHEMA_VERSION}")
    return db


class IndexWriter:
    """`with IndexWriter(path, ...) as w:` add/replace/delete documents; commits every commit_limit changes."""

    def __init__(self, path: Path, *, lock_timeout_s: float = 30.0, commit_limit: int = 500) -> None:
        self.path = path
        self.commit_limit = commit_limit
        self.db = open_writable(path, lock_timeout_s)
        self.pending = 0
        self.lexicon = LexiconWriter(self.db)
        self.db.begin_transaction()

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if kind is None:
                self.commit()
            else:
                self.db.cancel_transaction()
                self.lexicon.cancel()
        finally:
            self.db.close()

    def _changed(self) -> None:
        self.pending += 1
        if self.pending >= 4 * self.commit_limit:  # safety net; sync commits with the mailbox metadata
            self.commit()

    def commit(self) -> None:
        """Make everything so far durable and visible to readers. Raises: StoreError."""
        try:
            self.lexicon.flush()
            self.db.commit_transaction()
            self.db.begin_transaction()
        except xapian.Error as exc:
            raise StoreError(f"{self.path}: commit failed: {exc.get_msg()}") from exc
        self.pending = 0

    def replace(self, guid: str, uid: int, document: schema.Document) -> None:
        self.lexicon.add(document.lexicon)
        self.db.replace_document(schema.id_term(guid, uid), xapian.Document.unserialise(document.data))
        self._changed()

    def delete(self, guid: str, uid: int) -> None:
        self.db.delete_document(schema.id_term(guid, uid))
        self._changed()

    def delete_mailbox(self, guid: str) -> None:
        self.db.delete_document(schema.mailbox_term(guid))
        self.db.set_metadata(schema.META_MAILBOX + guid, "")
        self._changed()

    def indexed_uids(self, guid: str) -> set[int]:
        """UIDs of this mailbox present in the index (including this batch)."""
        uids = set()
        for item in self.db.postlist(schema.mailbox_term(guid)):
            uids.add(int(self.db.get_document(item.docid).get_value(schema.SLOT_UID)))
        return uids

    def mailbox_meta(self, guid: str) -> dict[str, Any]:
        raw = self.db.get_metadata(schema.META_MAILBOX + guid)
        return dict(json.loads(raw)) if raw else {}

    def set_mailbox_meta(self, guid: str, meta: dict[str, Any]) -> None:
        self.db.set_metadata(schema.META_MAILBOX + guid, json.dumps(meta, sort_keys=True))

    def mailboxes(self) -> dict[str, dict[str, Any]]:
        """guid -> metadata of every mailbox the index knows."""
        return schema.mailbox_metadata(self.db)
