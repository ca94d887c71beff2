"""`ftsd check`: index health for people and for Nagios/Icinga (monitoring-plugins guidelines).

Read-only by construction: Maildirs are listed and their uidlists read, indexes are opened with Xapian's reader
(never the writer, never a lock), nothing is created; it works as any user who may read. Cheap by default: per
mailbox only the index metadata (last indexed UID) and the Maildir listing are compared; Xapian's full check of
every block (seconds per large index) runs only with --deep.

Lag is the age of the oldest message that is in the Maildir but not in the index, counted from its delivery (the
time at the start of Dovecot's file name, else the file's ctime); excluded mailboxes (Trash, Junk) do not count.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftsd import service
from ftsd.digits import ascii_int
from ftsd.errors import FtsdError
from ftsd.maildir import current_uidlist, list_mailboxes, mailbox_guid, uidlist_dir
from ftsd.privileges import describe
from ftsd.settings import Settings
from ftsd.store.index import index_path
from ftsd.store.maintenance import deep_check, index_size, indexed_mailboxes
from ftsd.userdb import User

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATE_NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
_SEVERITY = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}  # the worst wins; CRITICAL beats UNKNOWN
_DELIVERED = re.compile(r"^([0-9]{9,11})\.")


@dataclass(slots=True)
class UserHealth:
    user: str
    messages: int = 0
    unindexed: int = 0
    oldest_s: float = 0.0  # age of the oldest unindexed message; 0 when none
    index_bytes: int = 0
    damaged: str = ""  # why the index cannot be used (corrupt, incompatible) or the deep check's finding
    rebuilding: str = ""  # a damaged index was set aside and the new one is not complete yet
    error: str = ""  # the check itself could not look (EACCES, unreadable Maildir)

    def line(self) -> str:
        if self.error:
            return self.error
        if self.damaged:
            return f"{self.user}: damaged index: {self.damaged}; run `ftsd rescan -u {self.user}` to rebuild it"
        if self.rebuilding:
            return f"{self.user}: index being rebuilt ({self.rebuilding}), {self.unindexed} messages to go"
        if self.unindexed:
            return f"{self.user}: {self.unindexed} of {self.messages} messages unindexed, oldest {_age(self.oldest_s)}"
        return f"{self.user}: ok, {self.messages} messages indexed"


def _age(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def _delivered(path: Path) -> float:
    match = _DELIVERED.match(path.name)
    if match:
        return float(match.group(1))
    try:
        return path.lstat().st_ctime
    except OSError:
        return time.time()


def _mailbox_files(path: Path) -> dict[str, Path]:
    """The message files the indexer would read: regular files in cur/ and new/ (not symlinks, FIFOs, or the
    content of a symlinked cur/), so nothing a user plants in a Maildir shows up as lag."""
    files: dict[str, Path] = {}
    for sub in ("new", "cur"):
        if (path / sub).is_symlink():
            continue
        try:
            with os.scandir(path / sub) as it:
                for entry in it:
                    if not entry.name.startswith(".") and entry.is_file(follow_symlinks=False):
                        files[entry.name.split(":2,", 1)[0]] = Path(entry.path)
        except FileNotFoundError:
            continue
    return files


def user_health(settings: Settings, user: User, *, deep: bool = False, now: float | None = None) -> UserHealth:
    """One user's index against its Maildir, without writing anything."""
    now = time.time() if now is None else now
    health = UserHealth(user.name)
    path = index_path(user)
    try:
        health.index_bytes = index_size(path)
        indexed: dict[str, dict[str, Any]] = {}
        if path.exists():
            if not os.access(path, os.R_OK | os.X_OK):
                raise PermissionError(13, "Permission denied", str(path))
            indexed, damage = indexed_mailboxes(path, count_documents=settings.fts.writer == "dovecot")
            health.damaged = damage or ""
            if deep and not health.damaged:
                health.damaged = deep_check(path, settings.fts.partial) or ""
        oldest = now
        for name, box_path in list_mailboxes(user.maildir):
            if service.is_excluded(settings, name):
                continue
            files = _mailbox_files(box_path)
            uidlist = current_uidlist(box_path, name, uidlist_dir(user))
            uids = uidlist.uids if uidlist else {}
            guid = mailbox_guid(box_path, uidlist)
            last_uid = int(indexed.get(guid, {}).get("last_uid", 0))
            health.messages += len(files)
            for base, file in files.items():
                uid = uids.get(base)
                if uid is None or uid > last_uid:  # Dovecot's UIDs only grow: above the last indexed is new
                    health.unindexed += 1
                    oldest = min(oldest, _delivered(file))
        health.oldest_s = max(0.0, now - oldest) if health.unindexed else 0.0
        # the store's repair (ftsd/store/index.py) leaves ftsd.db.rebuilding until an index run completes
        broken = sorted(path.parent.glob(path.name + ".broken-*")) if path.parent.exists() else []
        marked = path.with_name(path.name + ".rebuilding").exists()
        if (marked or broken) and health.unindexed and not health.damaged:
            health.rebuilding = f"the damaged index was moved to {broken[-1].name}" if broken else \
                "the damaged index was moved aside"
            # the mail was indexed before the damage: it lags since the rebuild began, not since its delivery
            health.oldest_s = min(health.oldest_s, max(0.0, now - _rebuild_started(path, broken)))
    except (FtsdError, OSError) as exc:
        health.error = describe(exc, user.name)
    return health


def _rebuild_started(path: Path, broken: list[Path]) -> float:
    """When the damaged index was set aside: the rebuild marker's time, else the newest broken copy's name
    (ftsd.db.broken-<ns>)."""
    try:
        return path.with_name(path.name + ".rebuilding").stat().st_mtime
    except OSError:
        stamp = broken[-1].name.rpartition("-")[2] if broken else ""
        return (ascii_int(stamp) or 0) / 1e9


@dataclass(slots=True)
class CheckResult:
    state: int
    line: str
    details: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join([self.line, *self.details])


def evaluate(users: Sequence[UserHealth], failures: Sequence[str], warn_s: float, crit_s: float,
             service_note: str = "", failed_jobs: int | None = None) -> CheckResult:
    """The plugin's verdict: the worst state, a status line with perfdata, then one line per problem."""
    damaged = [u for u in users if u.damaged]
    errors = [u for u in users if u.error]
    rebuilding = [u for u in users if u.rebuilding]
    lag = max((u.oldest_s for u in users if not u.error), default=0.0)
    lagging_c = [u for u in users if not u.damaged and u.oldest_s >= crit_s and u.unindexed]
    lagging_w = [u for u in users if not u.damaged and warn_s <= u.oldest_s < crit_s and u.unindexed]
    state = OK
    problems: list[str] = []

    def worse(new: int) -> None:
        nonlocal state
        if _SEVERITY[new] > _SEVERITY[state]:
            state = new

    if damaged:
        worse(CRITICAL)
        problems.append(f"{len(damaged)} damaged")
    if lagging_c:
        worse(CRITICAL)
    if lagging_c or lagging_w:
        problems.append(f"{len(lagging_c) + len(lagging_w)} lagging (oldest unindexed {_age(lag)})")
    if lagging_w or rebuilding:
        worse(WARNING)
    if rebuilding:
        problems.append(f"{len(rebuilding)} rebuilding")
    if errors or failures:
        worse(UNKNOWN)
        problems.append(f"{len(errors) + len(failures)} not checked")
    if service_note:
        worse(WARNING)
        problems.append(service_note)
    messages = sum(u.messages for u in users)
    unindexed = sum(u.unindexed for u in users)
    summary = ", ".join(problems) if problems else f"{len(users)} users, {messages} messages indexed, lag {_age(lag)}"
    if problems:
        summary += f"; {len(users) + len(failures)} users, {unindexed} unindexed"
    perf = (f"users={len(users) + len(failures)};; messages={messages} unindexed={unindexed} "
            f"lag_s={int(lag)}s;{int(warn_s)};{int(crit_s)} index_bytes={sum(u.index_bytes for u in users)}B"
            + (f" failed_jobs={failed_jobs}" if failed_jobs is not None else ""))
    details = [u.line() for u in users if u.error or u.damaged or u.rebuilding or u.unindexed and u.oldest_s >= warn_s]
    details += list(failures)
    return CheckResult(state, f"FTSD {STATE_NAMES[state]} - {summary} | {perf}", details)


def service_health(settings: Settings, timeout_s: float = 5.0) -> tuple[str, int | None]:
    """Ask the running service (its Unix socket, else TCP when `server.listen` is set): ("", failed jobs) when it
    answers, (what is wrong, None) when it does not."""
    import socket

    import httpx

    from ftsd.cli_client import connect

    path = settings.resolve(settings.server.socket) if settings.server.socket else None
    if path is not None and path.exists():  # a stale socket file: say so without leaving httpx a dead connection
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(timeout_s)
            try:
                probe.connect(str(path))
            except OSError as exc:
                return f"service not answering on {path} ({exc.strerror or exc})", None
    try:
        with connect(settings) as client:
            response = client.get("/healthz", timeout=timeout_s)
        if response.status_code != 200:
            return f"service /healthz answered HTTP {response.status_code}", None
        return "", int(response.json().get("jobs", {}).get("failed", 0))
    except (httpx.HTTPError, ValueError) as exc:
        where = settings.server.socket or settings.server.listen
        return f"service not answering on {where} ({type(exc).__name__})", None
