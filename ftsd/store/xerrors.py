"""The one table from Xapian's exceptions to ftsd's error tree (errors.py). Every module of the store turns a
xapian.Error into an FtsdError here, so a damaged index, a full disk or a held lock mean the same on every path.

Xapian reports I/O failures as DatabaseError with the system's message in parentheses ("Error writing block 41
(No space left on device)"); a damaged file is a DatabaseCorruptError, or a DatabaseError without a system
error ("EOF reading block 61", a truncated table). (Xapian's get_error_string() crashes the process when there is
no errno: never called.)
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import xapian

from ftsd.errors import (
    CorruptIndexError,
    DiskFullError,
    IndexLockedError,
    NoIndexError,
    SchemaVersionError,
    StoreError,
)

_FULL = tuple(f"({os.strerror(code)})" for code in (errno.ENOSPC, errno.EDQUOT))
# Most specific first: the first class the exception is an instance of decides.
TABLE: tuple[tuple[type[xapian.Error], type[StoreError]], ...] = (
    (xapian.DatabaseLockError, IndexLockedError),
    (xapian.DatabaseNotFoundError, NoIndexError),
    (xapian.DatabaseVersionError, SchemaVersionError),
    (xapian.DatabaseCorruptError, CorruptIndexError),
    (xapian.DatabaseModifiedError, StoreError),  # readers retry it (bounded) before it gets here
    (xapian.DatabaseOpeningError, StoreError),
    (xapian.DatabaseError, CorruptIndexError),  # without a system error: see the module docstring
    (xapian.Error, StoreError),
)


def error_class(exc: xapian.Error) -> type[StoreError]:
    text = str(exc)
    if text.endswith(_FULL):
        return DiskFullError
    for xapian_class, ftsd_class in TABLE:
        if isinstance(exc, xapian_class):
            if ftsd_class is CorruptIndexError and text.endswith(")"):  # an I/O error (EIO, EACCES): not damage
                return StoreError
            return ftsd_class
    return StoreError


def store_error(exc: xapian.Error, path: Path, doing: str) -> StoreError:
    """The ftsd error for `exc`, raised while `doing` (e.g. "search", "commit") on the index at `path`; the
    message names the index directory (user level) and, for a full disk, the fix."""
    cls = error_class(exc)
    where = f"{path.parent.name}/{path.name}"
    if cls is DiskFullError:
        return DiskFullError(f"{where}: {doing} failed: disk full ({exc}); free space, then run the same again "
                             "(nothing after the last commit was kept)")
    if cls is IndexLockedError:
        return IndexLockedError(f"{where}: index locked by another writer")
    if cls is NoIndexError:
        return NoIndexError(f"{where}: no index yet")
    if cls is CorruptIndexError:
        return CorruptIndexError(f"{where}: damaged index ({doing}: {exc})")
    return cls(f"{where}: {doing} failed: {exc}")


@contextmanager
def translated(path: Path, doing: str) -> Iterator[None]:
    """`with translated(path, "commit"):` -- a xapian.Error inside leaves as store_error(exc, path, doing)."""
    try:
        yield
    except xapian.Error as exc:
        raise store_error(exc, path, doing) from exc
