"""Many users at once: `-A` runs work on several users in parallel threads, one writer per user, all feeding the
same worker pool. Each user's fixed costs (opening its index, the first commit's fsync, closing) are mostly waits
on the disk, during which Xapian releases the GIL: with several users in flight they overlap instead of adding up,
so many small users approach the throughput of one big one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import fields

from ftsd.errors import FtsdError
from ftsd.indexer.sync import IndexReport

log = logging.getLogger(__name__)

Work = Callable[[str, IndexReport], None]  # (user, that user's own report); raises FtsdError for the user


def merge(into: IndexReport, part: IndexReport) -> None:
    """Add one user's report to the run's: counts summed, lists joined, the first stop reason kept."""
    for f in fields(IndexReport):
        if f.name == "started":
            continue
        mine, theirs = getattr(into, f.name), getattr(part, f.name)
        if isinstance(mine, bool) or mine is None or isinstance(mine, str):
            setattr(into, f.name, mine or theirs)
        elif isinstance(mine, int | list):
            setattr(into, f.name, mine + theirs)


def for_each_user(names: Iterable[str], work: Work, report: IndexReport, parallel: int,
                  stop: Callable[[], bool] = lambda: False) -> None:
    """`work(name, own report)` for every name, `parallel` users at a time, in the order given, until `stop()`.
    Each user's counts are merged into `report` when it ends; an FtsdError fails that user only (logged and
    counted); any other exception stops the run (no new users start) and is raised once the users in flight have
    ended."""
    pending = enumerate(names)
    lock = threading.Lock()
    errors: list[BaseException] = []
    listed = {"failed": list(report.failed), "rebuilt": list(report.rebuilt)}
    lists: dict[int, IndexReport] = {}  # position -> that user's report: failures are listed in the users' order

    def one(position: int, name: str) -> None:
        own = IndexReport()
        try:
            work(name, own)
        except FtsdError as exc:
            log.error("%s: %s", name, exc)
            own.failed.append(f"{name}: {exc}")
            own.failed_users += 1
        finally:
            with lock:
                merge(report, own)
                lists[position] = own

    def in_order() -> None:
        for key, start in listed.items():
            setattr(report, key, start + [entry for p in sorted(lists) for entry in getattr(lists[p], key)])

    if parallel <= 1:
        for position, name in pending:
            if stop():
                break
            one(position, name)
        in_order()
        return

    def loop() -> None:
        while True:
            with lock:
                if errors or stop():
                    return
                item = next(pending, None)
            if item is None:
                return
            try:
                one(*item)
            except BaseException as exc:  # raised again in the caller's thread
                with lock:
                    errors.append(exc)
                return

    threads = [threading.Thread(target=loop, name=f"ftsd-user-{n}", daemon=True) for n in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    in_order()
    if errors:
        raise errors[0]
