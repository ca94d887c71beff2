"""Index maintenance: compaction (optimize) and a consistency check."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import xapian

from ftsd.store import lexicon
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
        db.compact(str(tmp), xapian.DBCOMPACT_NO_RENUMBER)
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
