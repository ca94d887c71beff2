"""The watcher at its inotify limit: the users that fit are watched with inotify, the rest polled, one line said."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from ftsd.daemon.watcher import MaildirWatcher, estimate_watches, watch_limit
from ftsd.settings import settings_from_dict
from ftsd.userdb import open_userdb
from tests.maildirs import MailDir


def test_watch_limit_is_read(tmp_path: Path):
    (tmp_path / "limit").write_text("8192\n")
    assert watch_limit(tmp_path / "limit") == 8192
    assert watch_limit(tmp_path / "missing") is None


def test_users_beyond_the_watch_limit_are_polled(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    settings = settings_from_dict({"mail_location": f"maildir:{tmp_path}/vmail/%u"})
    boxes = {}
    for i in range(10):
        name = f"u{i}"
        boxes[name] = MailDir(tmp_path / "vmail" / name)
        boxes[name].deliver("Archive", subject="old", body="old mail")
    assert estimate_watches(tmp_path / "vmail" / "u0") == 8  # the root, cur/new/tmp, .Archive with its three
    seen: list[tuple[str, list[str]]] = []
    lock = threading.Lock()

    def submit(user: str, mailboxes: list[str]) -> None:
        with lock:
            seen.append((user, mailboxes))

    watcher = MaildirWatcher(settings, open_userdb(settings), submit, debounce_ms=50, poll_s=0.2, users_every_s=0)
    watcher.watch_limit = 40  # 80 % of it, 32 watches: 4 users of 8
    with caplog.at_level(logging.WARNING, logger="ftsd.daemon.watcher"):
        watcher.start()
        try:
            assert watcher.ready.wait(15)
            assert watcher.mode == "inotify+polling"
            assert sorted(watcher.roots[p] for p in watcher.polled) == [f"u{i}" for i in range(4, 10)]
            lines = [r.getMessage() for r in caplog.records if "max_user_watches" in r.getMessage()]
            assert len(lines) == 1 and "sysctl -w fs.inotify.max_user_watches=" in lines[0]
            time.sleep(0.3)  # the poller's first snapshot is taken
            boxes["u1"].deliver("INBOX", subject="watched", body="via inotify")
            boxes["u8"].deliver("Archive", subject="polled", body="via polling")
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                with lock:
                    users = {u for u, _ in seen}
                if {"u1", "u8"} <= users:
                    break
                time.sleep(0.05)
            with lock:
                assert ("u1", ["INBOX"]) in seen and ("u8", ["Archive"]) in seen
        finally:
            watcher.stop()
