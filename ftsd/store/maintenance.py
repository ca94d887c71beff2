"""Index maintenance: compaction (optimize) and a consistency check."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import xapian

from ftsd.errors import StoreError
from ftsd.store import lexicon
from ftsd.store.searcher import Searcher
from ftsd.store.writer import open_writable
from ftsd.store.xerrors import store_error


def compact(path: Path, lock_timeout_s: float, partial: int) -> tuple[int, int]:
    """Rebuild the lexicon and compact the index in place (while holding the write lock); returns (bytes before,
    bytes after). Raises: IndexLockedError, StoreError."""
    before = index_size(path)
    db = open_writable(path, lock_timeout_s)  # hold the lock: no writer may commit while we swap
    tmp = path.with_name(path.name + ".compact")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        lexicon.rebuild(db, partial)
        db.commit()
        # FULL (xapian-compact's default; the API's is STANDARD): items split across blocks wherever that saves
        # space, ~1 % of the index; FULLER would leave blocks that later writes split again
        db.compact(str(tmp), xapian.DBCOMPACT_NO_RENUMBER | xapian.Compactor.FULL)
    except xapian.Error as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        db.close()
        raise store_error(exc, path, "compaction") from exc
    old = path.with_name(path.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(path, old)
    os.rename(tmp, path)
    db.close()
    shutil.rmtree(old, ignore_errors=True)
    return before, index_size(path)


def index_size(path: Path) -> int:
    """Bytes used by the index files."""
    if not path.exists():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def check(path: Path, partial: int) -> str | None:
    """None if Xapian's consistency check passes and the lexicon lists every stored word, else the problem."""
    try:
        xapian.Database.check(str(path), 0)
        db = xapian.Database(str(path))
        try:
            lacking, stored = lexicon.missing(db, partial)
        finally:
            db.close()
    except xapian.Error as exc:
        return str(exc.get_msg())
    if lacking:
        return f"the lexicon lacks {lacking} of {stored} stored words (searches miss them): run ftsd optimize"
    return None


def deep_check(path: Path, partial: int) -> str | None:
    """check() where this process may write the index; else, since Xapian's own checker opens the tables
    read/write, a full read: every term's postlist and every document's data and terms, which reads every block
    of those tables. None if fine, else the problem (a monitoring user that can only read gets the same verdict
    on damage)."""
    try:
        if all(os.access(p, os.W_OK) for p in (path, *path.iterdir())):
            return check(path, partial)
        db = xapian.Database(str(path))
        try:
            for term in db.allterms():
                for _ in db.postlist(term.term):
                    pass
            for item in db.postlist(""):
                doc = db.get_document(item.docid)
                doc.get_data()
                for _ in doc.termlist():
                    pass
        finally:
            db.close()
    except (xapian.Error, RuntimeError) as exc:  # RuntimeError: a C++ exception of a damaged table
        return _why(exc)
    return None


def indexed_mailboxes(path: Path, *, count_documents: bool = False) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Read-only: guid -> metadata of every mailbox the index knows, and the damage met reading it (None if
    none). count_documents: also mailboxes without ftsd's metadata (documents Dovecot's fts_solr wrote)."""
    try:
        searcher = Searcher(path)
    except StoreError as exc:
        return {}, str(exc).removeprefix(f"{path}: ")
    except (xapian.Error, RuntimeError) as exc:
        return {}, _why(exc)
    try:
        indexed = searcher.mailboxes()
        if count_documents:
            for guid in searcher.guids():
                held = searcher.indexed_uids(guid)
                indexed.setdefault(guid, {"last_uid": max(held, default=0), "messages": len(held)})
        return indexed, None
    except (xapian.Error, RuntimeError) as exc:  # the metadata lives in the postlist table: checked too
        return {}, _why(exc)
    finally:
        searcher.close()


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc.get_msg() if isinstance(exc, xapian.Error) else exc}"
