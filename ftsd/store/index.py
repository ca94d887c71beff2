"""UserIndex: one user's index directory and the store's whole policy for it -- where it is, how it is read
(`reader()`: a reader from the pool, given back however the block ends) and written (`writer()`), and what
happens when it is damaged.

Repair policy: any damage found on any path (a reader or writer that cannot open it, a Xapian corruption error
during a search, an index run, a status) moves the directory aside to `ftsd.db.broken-<time>` and leaves a
`ftsd.db.rebuilding` marker; the next writer starts a fresh index and the indexer fills it from the mail, while
searches stay exact (what is not indexed is read from the Maildir). The marker goes when an index run of the
user completes. Old broken copies are removed: the newest is kept BROKEN_KEEP_S for a post-mortem.

A writer probes the index when it opens it (cheap: Xapian's full check only up to FULL_CHECK_BYTES, else the
first and last entries of each table), and repairs a `flintlock` that is not a regular file (nobody can hold such
a lock; Xapian would report it as held for ever).
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import xapian

from ftsd.errors import NoIndexError, OutdatedIndexError, StoreError, UnusableIndexError
from ftsd.settings import FtsSettings
from ftsd.store import maintenance
from ftsd.store.readers import ReaderPool
from ftsd.store.searcher import Searcher
from ftsd.store.writer import IndexWriter
from ftsd.store.xerrors import store_error
from ftsd.userdb.base import User

log = logging.getLogger(__name__)

BROKEN_KEEP_S = 3 * 86400  # the newest damaged copy is kept this long; older ones go at once
FULL_CHECK_BYTES = 2_000_000  # writers run Xapian's full check on indexes up to this size (~0.15 s)

IndexState = Literal["none", "ok", "rebuilding", "damaged"]



def index_path(user: User) -> Path:
    """Where the user's index lives: `ftsd.db` in the user's index directory (`xapian-indexes/`)."""
    return user.index_dir / "ftsd.db"

@dataclass(frozen=True, slots=True)
class StoreOptions:
    """What the store takes from the settings (built with StoreOptions.of(settings.fts); no defaults here)."""

    lock_timeout_s: float
    commit_limit: int
    batch_bytes: int
    partial: int

    @classmethod
    def of(cls, fts: FtsSettings) -> StoreOptions:
        return cls(fts.lock_timeout_s, fts.commit_limit, fts.batch_bytes, fts.partial)


class UserIndex:
    """One user's index at `path` (`<index dir>/ftsd.db`); `readers` is the process's pool."""

    def __init__(self, path: Path, options: StoreOptions, readers: ReaderPool, owner: str = "") -> None:
        self.path = path
        self.options = options
        self.readers = readers
        self.owner = owner or path.parent.name

    @property
    def marker(self) -> Path:
        return self.path.with_name(self.path.name + ".rebuilding")

    def exists(self) -> bool:
        return self.path.is_dir()

    # -- reading ----------------------------------------------------------------------------------------------
    @contextmanager
    def reader(self) -> Iterator[Searcher | None]:
        """A reader at the latest commit (None: no usable index; the caller reads the mail). A damaged index
        found here or inside the block is moved aside (the UnusableIndexError still leaves the block)."""
        try:
            searcher = self.readers.acquire(self.path)
        except UnusableIndexError as exc:
            self.move_aside(exc)
            searcher = None
        try:
            yield searcher
        except UnusableIndexError as exc:
            if searcher is not None:
                searcher.close()
                searcher = None
            self.move_aside(exc)
            raise
        finally:
            self.readers.release(searcher)

    # -- writing ----------------------------------------------------------------------------------------------
    def writer(self, lock_timeout_s: float | None = None, on_rebuild: Callable[[], None] | None = None,
               ) -> IndexWriter:
        """The single writer (created if there is no index). An unusable index -- unreadable, incompatible, or
        failing the probe -- is moved aside (then `on_rebuild()`) and a fresh one started.
        Raises: IndexLockedError, DiskFullError, StoreError."""
        timeout = self.options.lock_timeout_s if lock_timeout_s is None else lock_timeout_s
        self._repair_lock_file()
        self.clean_broken()
        for attempt in range(2):
            try:
                writer = IndexWriter(self.path, lock_timeout_s=timeout, commit_limit=self.options.commit_limit,
                                     batch_bytes=self.options.batch_bytes, on_closed=self.written)
                try:
                    self.probe(writer.db)
                except UnusableIndexError:
                    writer.abandon()
                    raise
                return writer
            except OutdatedIndexError as exc:  # an upgrade: nothing to keep, the mail is the source
                log.warning("%s: %s (an older ftsd's layout); rebuilding it from the mail", self.owner, exc)
                shutil.rmtree(self.path)
                self._mark(str(exc))
            except UnusableIndexError as exc:
                if attempt:
                    raise
                self.move_aside(exc)
            if on_rebuild:
                on_rebuild()
        raise StoreError(f"{self.owner}: index could not be opened")  # not reached: the loop returns or raises

    @property
    def stamp_file(self) -> Path:
        return self.path.with_name(self.path.name + ".written")

    def _files_stamp(self) -> str:
        """Size and mtime of every file of the index: what a writer of ftsd left, or not."""
        try:
            files = sorted((f.name, f.stat()) for f in self.path.iterdir() if f.is_file())
        except OSError:
            return ""
        return " ".join(f"{name}:{st.st_size}:{st.st_mtime_ns}" for name, st in files)

    def written(self) -> None:
        """A writer of this process committed and closed cleanly: remember how it left the files."""
        try:
            self.stamp_file.write_text(self._files_stamp(), encoding="utf-8")
        except OSError as exc:
            log.info("%s: %s not written: %s", self.owner, self.stamp_file.name, exc.strerror)

    def probe(self, db: Any) -> None:
        """Cheap consistency probe of an open index: nothing when the files are as an ftsd writer left them (size
        and mtime of each), else Xapian's full check (indexes up to FULL_CHECK_BYTES) or the first and last
        entries of each table. Raises: UnusableIndexError."""
        try:
            if self.stamp_file.read_text(encoding="utf-8") == self._files_stamp():
                return
        except OSError:  # never written cleanly by this ftsd: probe
            pass
        try:
            if self.size() <= FULL_CHECK_BYTES:
                xapian.Database.check(str(self.path), 0)
                return
            last = db.get_lastdocid()
            if last:
                db.get_document(last).get_data()
                for _ in db.termlist(last):
                    break
            for item in db.allterms():
                for _ in db.postlist(item.term):
                    break
                break
            for _ in db.metadata_keys():
                break
        except xapian.Error as exc:
            error = store_error(exc, self.path, "consistency probe")
            if isinstance(error, UnusableIndexError):
                raise error from exc
            log.warning("%s: consistency probe: %s", self.owner, error)

    def _repair_lock_file(self) -> None:
        lock = self.path / "flintlock"
        try:
            mode = lock.lstat().st_mode
        except FileNotFoundError:
            return
        if stat.S_ISREG(mode):
            return
        log.warning("%s: %s is not a regular file (nobody can hold such a lock); replacing it", self.owner, lock)
        if stat.S_ISDIR(mode):
            shutil.rmtree(lock)
        else:
            lock.unlink()

    # -- damage -----------------------------------------------------------------------------------------------
    def move_aside(self, reason: BaseException) -> Path | None:
        """Move the damaged index out of the way (kept as ftsd.db.broken-<time>) and mark it for rebuilding."""
        if not self.path.exists():
            return None
        aside = self.path.with_name(f"{self.path.name}.broken-{time.time_ns()}")
        try:
            os.rename(self.path, aside)
            self._mark(str(reason))
        except FileNotFoundError:  # another thread or process moved it first
            return None
        except OSError as exc:  # e.g. a read-only user: reported as damaged, the next writer repairs it
            log.error("%s: %s; cannot move it aside: %s", self.owner, reason, exc.strerror)
            return None
        log.error("%s: %s; moved to %s, rebuilding from the mail", self.owner, reason, aside.name)
        self.clean_broken()
        return aside

    def _mark(self, reason: str) -> None:
        self.marker.write_text(f"{int(time.time())} {reason}\n", encoding="utf-8")

    def rebuilt(self) -> None:
        """An index run of the whole user completed: the index is complete again."""
        self.marker.unlink(missing_ok=True)

    def broken_copies(self) -> list[Path]:
        """Damaged copies kept, oldest first."""
        prefix = self.path.name + ".broken-"
        if not self.path.parent.is_dir():
            return []
        copies = [p for p in self.path.parent.iterdir() if p.name.startswith(prefix)]
        return sorted(copies, key=lambda p: p.name[len(prefix):].zfill(24))

    def clean_broken(self, now: float | None = None) -> None:
        """Remove damaged copies but the newest, and that one too once older than BROKEN_KEEP_S."""
        copies = self.broken_copies()
        now = time.time() if now is None else now
        for old in copies[:-1]:
            shutil.rmtree(old, ignore_errors=True)
        if copies and now - copies[-1].stat().st_mtime > BROKEN_KEEP_S:
            shutil.rmtree(copies[-1], ignore_errors=True)

    # -- state and maintenance --------------------------------------------------------------------------------
    def state(self) -> IndexState:
        """none (no index yet), rebuilding (moved aside, being filled again), damaged (unusable and not moved
        aside), ok. Opens a reader, so damage found here is moved aside like anywhere else."""
        if self.marker.exists():
            return "rebuilding"
        if not self.exists():
            return "none"
        try:
            with self.reader() as searcher:
                return "ok" if searcher is not None else "rebuilding" if self.marker.exists() else "damaged"
        except (UnusableIndexError, NoIndexError):
            return "rebuilding" if self.marker.exists() else "damaged"

    def size(self) -> int:
        return maintenance.index_size(self.path)

    def compact(self) -> tuple[int, int]:
        return maintenance.compact(self.path, self.options.lock_timeout_s, self.options.partial)

    def check(self) -> str | None:
        return maintenance.check(self.path, self.options.partial)
