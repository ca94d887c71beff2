"""The runtime object (ftsd/runtime.py): one per process, shared by threads. Concurrent searches and index runs
through one Runtime -- 4 users with 244 mailboxes, and 200 users with 1,200 mailboxes (more than the reader pool
and the scan cache hold, so entries come and go) -- give the answers of a single-threaded run, with no error."""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ftsd import service
from ftsd.maildir import ScanCache, scan_mailbox
from ftsd.query import Node, parse_query
from ftsd.runtime import Runtime
from ftsd.settings import Settings, load_settings
from tests.maildirs import MailDir

USERS = [f"u{n}@example.org" for n in range(4)]
FOLDERS = [f"Folder{n:02d}" for n in range(60)]
# issue 14's size: >= 200 users, >= 1,000 mailboxes, 16 threads
MANY_USERS = [f"p{n:03d}@example.org" for n in range(200)]
FEW_FOLDERS = [f"Box{n}" for n in range(5)]
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron".split()
QUERIES = ["BODY alpha", "TEXT amm", 'BODY "beta gamma"', "OR SUBJECT delta BODY zeta", "NOT BODY alpha",
           'SUBJECT "eta, theta"', "BODY kappa BODY lambda", "FROM sender3", "TEXT omicron"]


def _deliver(vmail: Path, users: list[str], folders: list[str], most: int) -> None:
    rnd = random.Random(5)
    for user in users:
        md = MailDir(vmail / "example.org" / user.split("@")[0])
        for folder in ["INBOX", *folders]:
            for _ in range(rnd.randint(1, most)):
                md.deliver(folder, subject=", ".join(rnd.sample(WORDS, 3)), body=" ".join(rnd.choices(WORDS, k=12)),
                           sender=f"sender{rnd.randint(0, 5)}@example.net", to=f"{user}")


def _answers(settings: Settings, rt: Runtime, user: str, node: Node, autoindex: bool) -> dict[str, list[int]]:
    return {r.mailbox: r.uids for r in service.search(settings, user, ["*"], node, autoindex=autoindex, runtime=rt)}


SHAPES = {  # users, folders besides INBOX, most messages per folder, threads
    "deep": (USERS, FOLDERS, 3, 12),
    "wide": (MANY_USERS, FEW_FOLDERS, 1, 16),
}


@pytest.mark.slow
@pytest.mark.parametrize("shape", list(SHAPES))
def test_threads_share_one_runtime_and_answer_as_one_thread(shape: str, tmp_path: Path,
                                                            make_config: Callable[..., Path]) -> None:
    users, folders, most, thread_count = SHAPES[shape]
    _deliver(tmp_path / "vmail", users, folders, most)
    # searches_per_user off: many threads on few users on purpose (the cap has a test of its own, tests/api)
    settings = load_settings(make_config(fts={"workers": 1, "autoindex_exclude": [], "lock_timeout_s": 5.0},
                                         limits={"searches_per_user": 0}))
    nodes = [parse_query(q) for q in QUERIES]
    assert not service.index_users(settings, users[: len(users) // 2]).failed  # half indexed, half not yet
    one = Runtime(settings)
    expected = {(u, i): _answers(settings, one, u, n, False) for u in users for i, n in enumerate(nodes)}
    one.close()
    assert sum(len(m) for m in expected[(users[0], 0)].values()) > 0

    rt = Runtime(settings)
    user_busy = {u: threading.Lock() for u in users}  # one index run per user at a time, as the job runner does
    errors: list[str] = []
    counts = {"search": 0, "index": 0}
    deadline = time.monotonic() + 8.0

    def work(seed: int) -> None:
        rnd = random.Random(seed)
        while time.monotonic() < deadline:
            user = rnd.choice(users)
            try:
                if rnd.random() < 0.2 and user_busy[user].acquire(blocking=False):
                    try:
                        report = service.index_users(settings, [user], runtime=rt)
                        errors.extend(report.failed)
                        counts["index"] += 1
                    finally:
                        user_busy[user].release()
                    continue
                i = rnd.randrange(len(nodes))
                got = _answers(settings, rt, user, nodes[i], autoindex=rnd.random() < 0.3)
                if got != expected[(user, i)]:
                    errors.append(f"{user} {QUERIES[i]}: {got} != {expected[(user, i)]}")
                counts["search"] += 1
            except Exception as exc:  # noqa: BLE001 - every failure is what this test counts
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(thread_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert counts["search"] > 50 and counts["index"] > 4, counts
    rt.close()


def test_a_shared_scan_cache_survives_many_threads(tmp_path: Path) -> None:
    md = MailDir(tmp_path / "mail")
    names = [f"F{n}" for n in range(24)]
    old = time.time() - 10  # scans of directories changed in the last 2 s are never cached
    for name in names:
        md.deliver(name, subject=name)
        folder = md.folder(name)
        for part in ("cur", "new", "dovecot-uidlist"):
            os.utime(folder / part, (old, old))
    cache = ScanCache(size=8)  # smaller than the mailboxes scanned: entries come and go all the time
    errors: list[BaseException] = []

    def scan(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(400):
            name = rnd.choice(names)
            try:
                box = scan_mailbox(md.root, name, tmp_path / "state", cache)
                assert len(box.messages) == 1
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=scan, args=(n,)) for n in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: a missing lock shows up as a KeyError
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
