"""/metrics does no per-user work on a scrape: sizes come from a background walk and from finished jobs."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import generate_latest

from ftsd import service
from ftsd.api.metrics import Metrics
from ftsd.daemon.jobs import JobQueue
from ftsd.settings import settings_from_dict
from ftsd.store.index import index_path
from ftsd.store.maintenance import index_size
from ftsd.userdb import open_userdb
from tests.maildirs import MailDir


def _value(text: str, name: str) -> float:
    return float(next(line for line in text.splitlines() if line.startswith(name + " ")).split()[1])


def test_scrape_reads_cached_gauges(tmp_path: Path):
    settings = settings_from_dict({"mail_location": f"maildir:{tmp_path}/vmail/%u", "fts": {"workers": 1}})
    names = [f"u{i:03d}" for i in range(40)]
    for i, name in enumerate(names):
        md = MailDir(tmp_path / "vmail" / name)
        md.deliver("INBOX", subject=f"hello {i}", body="x" * i)
    indexed = names[:3]
    service.index_users(settings, indexed)
    userdb = open_userdb(settings)
    queue = JobQueue(tmp_path / "state" / "jobs.sqlite")
    metrics = Metrics(settings, queue, userdb.names, userdb, refresh_s=3600)
    try:
        metrics.start()
        assert metrics.wait_measured(30)
        expected = sum(index_size(index_path(userdb.lookup(n))) for n in indexed)
        lookups = userdb.lookups
        for _ in range(5):
            text = generate_latest(metrics.registry).decode()
            assert _value(text, "ftsd_index_bytes") == expected > 0
            assert _value(text, "ftsd_users") == len(names)
        assert userdb.lookups == lookups  # no scrape looked a user up
    finally:
        metrics.stop()
        queue.close()


def test_sizes_are_walked_once_the_users_are_known(tmp_path: Path):
    """In the service the watcher lists the users in the background: the walk waits for it, not for 10 minutes."""
    import threading

    settings = settings_from_dict({"mail_location": f"maildir:{tmp_path}/vmail/%u", "fts": {"workers": 1}})
    MailDir(tmp_path / "vmail" / "solo").deliver("INBOX", subject="hi", body="there")
    service.index_users(settings, ["solo"])
    userdb = open_userdb(settings)
    known: list[str] = []
    ready = threading.Event()
    queue = JobQueue(tmp_path / "state" / "jobs.sqlite")
    metrics = Metrics(settings, queue, lambda: known, userdb, refresh_s=3600, users_ready=ready)
    try:
        metrics.start()
        assert not metrics.wait_measured(0.3)
        known.append("solo")
        ready.set()
        assert metrics.wait_measured(30)
        text = generate_latest(metrics.registry).decode()
        assert _value(text, "ftsd_index_bytes") > 0 and _value(text, "ftsd_users") == 1
    finally:
        metrics.stop()
        queue.close()
