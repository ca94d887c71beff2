"""Maildir watcher: files appearing in or leaving a mailbox's `cur/` or `new/` queue an index job for that user
and mailbox, debounced (a delivery burst becomes one job). Mailboxes in `fts.autoindex_exclude` are ignored.

inotify through watchfiles (recursive, so folders created later are seen too); when inotify is not available
(no watchfiles, a file system without events) it falls back to polling the modification times of the `cur/` and
`new/` directories every `poll_s` seconds. The inotify watch limit is read first: the users whose directories fit
under `fs.inotify.max_user_watches` are watched with inotify, the rest are polled, and one warning line names the
sysctl to raise. The userdb is listed again every `users_every_s` seconds: a new user gets an index job and is
watched from then on (inotify restarts its watch). ftsd never writes into a Maildir, so its own work never
triggers the watcher.

Everything slow (listing the users, finding their Maildirs, setting up the watches) happens on the watcher's own
thread: `ftsd serve` answers at once, and `ready` is set once every Maildir is watched or polled. Mail delivered
before that is indexed by the next search of its mailbox (autoindex) or the next `index -A`.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from ftsd import service
from ftsd.errors import FtsdError
from ftsd.maildir import INBOX, decode_mutf7, list_mailboxes
from ftsd.privileges import explain_os_error
from ftsd.settings import Settings
from ftsd.userdb import Userdb

log = logging.getLogger(__name__)

Submit = Callable[[str, list[str]], None]  # (user, mailboxes)
_MAIL_DIRS = ("cur", "new")
WATCH_LIMIT_FILE = Path("/proc/sys/fs/inotify/max_user_watches")
WATCH_SHARE = 0.8  # of the limit, for ftsd: other programs of the same uid need watches too


def watch_limit(path: Path = WATCH_LIMIT_FILE) -> int | None:
    """The kernel's inotify watch limit per user, or None where there is none to read (not Linux)."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def estimate_watches(root: Path) -> int:
    """Directories of one Maildir that a recursive inotify watch takes (one scandir: each folder counts with its
    cur/, new/, tmp/)."""
    count = 1
    try:
        with os.scandir(root) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    count += 4 if entry.name.startswith(".") else 1
    except OSError:
        pass
    return count


class MaildirWatcher:
    """`start()` a daemon thread that calls `submit(user, mailboxes)` on changes; `stop()` ends it."""

    def __init__(self, settings: Settings, userdb: Userdb, submit: Submit, *,
                 debounce_ms: int = 1000, poll_s: float = 5.0, users_every_s: float = 60.0,
                 force_polling: bool = False) -> None:
        self.settings = settings
        self.userdb = userdb
        self.submit = submit
        self.debounce_ms = debounce_ms
        self.poll_s = poll_s
        self.users_every_s = users_every_s
        self.force_polling = force_polling
        self.roots: dict[Path, str] = {}  # replaced whole, never mutated: the watch thread reads it unlocked
        self.polled: frozenset[Path] = frozenset()  # roots beyond the inotify watch limit (replaced whole)
        self.unreadable: set[Path] = set()  # Maildirs already reported as unreadable (once, not every rescan)
        self.mode = "starting"
        self.ready = threading.Event()
        self.watch_limit = watch_limit()
        self._stop = threading.Event()
        self._restart = threading.Event()  # ends the current inotify watch: stop, or the set of users changed
        self._threads: list[threading.Thread] = []
        self._new_users: set[str] = set()  # found by refresh_users, announced once they are watched
        self._lock = threading.Lock()

    def users(self) -> list[str]:
        return sorted(self.roots.values())

    def refresh_users(self, *, initial: bool = False) -> bool:
        """List the users again (those whose Maildir exists). True if the watched set changed; new users are
        queued for an index job by announce_new_users()."""
        try:
            names = self.userdb.names()
        except FtsdError as exc:
            log.warning("watcher: cannot list users: %s", exc)
            return False
        roots: dict[Path, str] = {}
        for name in names:
            try:
                maildir = self.userdb.lookup(name).maildir
            except FtsdError as exc:
                log.warning("watcher: %s", exc)
                continue
            if maildir.is_dir():  # a user without mail yet is watched once the Maildir appears
                if not os.access(maildir, os.R_OK | os.X_OK):  # one line with the fix, not a silent blind spot
                    if maildir not in self.unreadable:
                        self.unreadable.add(maildir)
                        log.warning("watcher: %s", explain_os_error(
                            PermissionError(errno.EACCES, "Permission denied", str(maildir)), name))
                    continue
                roots[maildir] = name
        if roots == self.roots:
            return False
        added = set(roots.values()) - set(self.roots.values())
        self.polled = self._beyond_watch_limit(roots) if not self.force_polling else frozenset()
        self.roots = roots
        if not initial:
            with self._lock:
                self._new_users |= added
        return True

    def announce_new_users(self) -> None:
        """Queue an index job for each user found since the last call (call it once they are watched: mail
        delivered in between is then either in the job or seen by the watch)."""
        with self._lock:
            added, self._new_users = self._new_users, set()
        for name in sorted(added):
            log.info("watcher: new user %s", name)
            try:
                self.submit(name, [])
            except Exception:
                log.exception("watcher: queueing new user %s failed", name)

    def _beyond_watch_limit(self, roots: dict[Path, str]) -> frozenset[Path]:
        """The roots that do not fit under the inotify watch limit (each directory of a Maildir is one watch),
        reported in one line with the sysctl that raises it."""
        if self.watch_limit is None:
            return frozenset()
        budget = int(self.watch_limit * WATCH_SHARE)
        if len(roots) * 64 < budget:  # plenty: no need to look into the Maildirs
            return frozenset()
        used, beyond = 0, []
        for root in sorted(roots):
            used += estimate_watches(root)
            if used > budget:
                beyond.append(root)
        if beyond:
            needed = sum(estimate_watches(r) for r in roots)
            log.warning("watcher: %d Maildirs need about %d inotify watches but fs.inotify.max_user_watches is %d: "
                        "polling %d of them every %.0fs; raise it with: sysctl -w fs.inotify.max_user_watches=%d "
                        "(and a line in /etc/sysctl.d/)", len(roots), needed, self.watch_limit, len(beyond),
                        self.poll_s, max(needed * 2, 524288))
        return frozenset(beyond)

    def start(self) -> None:
        """Start watching in the background (the users are listed and the watches set up on the watch thread)."""
        main = threading.Thread(target=self._run, name="ftsd-watcher", daemon=True)
        self._threads = [main]  # _run adds the users and polling threads it starts
        main.start()

    def stop(self) -> None:
        self._stop.set()
        self._restart.set()
        for thread in list(self._threads):
            thread.join(timeout=10)

    def _users_loop(self) -> None:
        while not self._stop.wait(self.users_every_s):
            if self.refresh_users():
                if self.mode.startswith("inotify"):
                    self._restart.set()  # the watch thread announces them once the new watch is up
                else:
                    self.announce_new_users()  # polling: the next snapshot already covers them

    def mailbox_of(self, path: Path) -> tuple[str, str] | None:
        """(user, mailbox) of a message file path, or None if it is not in a watched mailbox's cur/ or new/."""
        if path.parent.name not in _MAIL_DIRS or path.name.startswith("."):
            return None
        box = path.parent.parent
        if box in self.roots:
            return self.roots[box], INBOX
        if box.parent in self.roots and box.name.startswith(".") and len(box.name) > 1:
            try:
                return self.roots[box.parent], decode_mutf7(box.name[1:])
            except (ValueError, UnicodeDecodeError):
                return None
        return None

    def changed(self, paths: Iterable[Path]) -> None:
        """Queue one index job per user for the (not excluded) mailboxes these paths belong to."""
        boxes: dict[str, set[str]] = defaultdict(set)
        for path in paths:
            found = self.mailbox_of(path)
            if found and not service.is_excluded(self.settings, found[1]):
                boxes[found[0]].add(found[1])
        for user, names in boxes.items():
            try:
                self.submit(user, sorted(names))
            except Exception:  # the watcher thread must outlive one failed submission
                log.exception("watcher: queueing %s %s failed", user, sorted(names))

    def _run(self) -> None:
        self.refresh_users(initial=True)
        if self.users_every_s > 0 and not self._stop.is_set():
            users = threading.Thread(target=self._users_loop, name="ftsd-watcher-users", daemon=True)
            self._threads.append(users)
            users.start()
        if not self.force_polling:
            poller = threading.Thread(target=self._poll, kwargs={"only_polled": True}, name="ftsd-watcher-poll",
                                      daemon=True)
            self._threads.append(poller)
            poller.start()  # idle unless some users are beyond the watch limit
            try:
                self._inotify()
                return
            except Exception as exc:  # ImportError, watch limit, unsupported file system
                log.warning("watcher: inotify unavailable (%s); polling every %.0fs", exc, self.poll_s)
                self.force_polling = True
                self.polled = frozenset()
        self._poll()

    def _inotify(self) -> None:
        from watchfiles import watch

        while not self._stop.is_set():
            self._restart.clear()
            polled = self.polled
            roots = [r for r in self.roots if r not in polled]
            if not roots:
                self.mode = "polling" if polled else "inotify"
                self.ready.set()
                self._restart.wait()
                continue
            log.info("watcher: watching %d Maildirs (inotify)", len(roots))
            # yield_on_timeout: the first (empty) yield comes once the watches exist, the moment to announce
            # new users without a gap in which their mail would be missed
            for changes in watch(*roots, watch_filter=lambda _c, p: self.mailbox_of(Path(p)) is not None,
                                 debounce=self.debounce_ms, stop_event=self._restart, raise_interrupt=False,
                                 ignore_permission_denied=True, force_polling=False, rust_timeout=500,
                                 yield_on_timeout=True):
                self.mode = "inotify+polling" if self.polled else "inotify"
                self.ready.set()
                self.announce_new_users()
                if changes:
                    self.changed(Path(p) for _, p in changes)

    def _snapshot(self, only_polled: bool) -> dict[Path, int]:
        """mtime (ns) of every polled cur/ and new/ directory."""
        seen: dict[Path, int] = {}
        for root in self.polled if only_polled else self.roots:
            try:
                folders = [d for _, d in list_mailboxes(root)]
            except FtsdError:
                continue
            for folder in folders:
                for sub in _MAIL_DIRS:
                    try:
                        seen[folder / sub] = (folder / sub).stat().st_mtime_ns
                    except OSError:
                        continue
        return seen

    def _poll(self, only_polled: bool = False) -> None:
        """Poll the roots beyond the watch limit (only_polled), or every root when inotify is not used."""
        before = self._snapshot(only_polled)
        if not only_polled:
            self.mode = "polling"
            self.ready.set()
        while not self._stop.wait(self.poll_s):
            if only_polled and self.force_polling:
                return  # inotify failed: the full poller took over
            now = self._snapshot(only_polled)
            # a changed directory stands for "a file in it changed": pass a dummy file name inside it
            self.changed(d / "x" for d, mtime in now.items() if before.get(d) != mtime)
            before = now
