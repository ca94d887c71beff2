"""In-process write locks, one per index directory: concurrent writers of one user's index in this process (Solr
update requests, jobs) queue here, with a timeout, instead of polling Xapian's lock file."""

from __future__ import annotations

import threading
from pathlib import Path


class WriteLocks:
    """`locks.of(path)`: the one lock of an index directory, created on first use."""

    def __init__(self) -> None:
        self._locks: dict[Path, threading.Lock] = {}
        self._guard = threading.Lock()

    def of(self, path: Path) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(path, threading.Lock())

    def clear(self) -> None:
        """Forget the locks not held right now."""
        with self._guard:
            self._locks = {p: lock for p, lock in self._locks.items() if lock.locked()}
