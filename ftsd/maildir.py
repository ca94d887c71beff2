"""Maildir++: folders, dovecot-uidlist, and the UID of every message file. Reads the mail store, never writes it.

INBOX is the Maildir root; every `.Name` directory with `cur/` or `new/` is a folder, hierarchy separator `.`,
names in modified UTF-7 (`.Entw&APw-rfe` = "Entwürfe"). UIDs, UIDVALIDITY and the mailbox GUID come from
`dovecot-uidlist` when Dovecot has written one; a file Dovecot has not given a UID yet is left for later (it will
have one after Dovecot's next sync). Without a uidlist ftsd assigns UIDs itself, in file-name order, and keeps them
in its own uidlist under the index directory, so they stay stable across runs.
"""

from __future__ import annotations

import base64
import fcntl
import logging
import os
import re
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from ftsd.errors import MailboxError

log = logging.getLogger(__name__)

INBOX = "INBOX"
_BAD_MAILBOX = re.compile(r"[/\\\x00-\x1f\x7f]|^\.|\.\.|\.$|^$")


@dataclass(frozen=True, slots=True)
class MessageRef:
    """One message: mailbox = IMAP name, uid = IMAP UID, path = the file as last seen."""

    user: str
    mailbox: str
    uid: int
    path: Path


@dataclass(slots=True)
class Mailbox:
    """A scanned mailbox: identity (GUID, UIDVALIDITY) and its messages by UID."""

    name: str
    path: Path
    guid: str
    uidvalidity: int
    messages: dict[int, Path] = field(default_factory=dict)
    pending: int = 0  # files without a UID yet (Dovecot has not synced them)


def decode_mutf7(name: str) -> str:
    """IMAP modified UTF-7 (RFC 3501 §5.1.3) -> str."""
    out, i = [], 0
    while i < len(name):
        if name[i] == "&":
            end = name.index("-", i)
            chunk = name[i + 1 : end]
            if chunk:
                raw = chunk.replace(",", "/")
                out.append(base64.b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-16-be"))
            else:
                out.append("&")
            i = end + 1
        else:
            out.append(name[i])
            i += 1
    return "".join(out)


def encode_mutf7(name: str) -> str:
    """str -> IMAP modified UTF-7."""
    out, pending = [], ""

    def flush() -> None:
        if pending:
            out.append("&" + base64.b64encode(pending.encode("utf-16-be")).decode().rstrip("=").replace("/", ",") + "-")

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            pending = ""
            out.append("&-" if ch == "&" else ch)
        else:
            pending += ch
    flush()
    return "".join(out)


def validate_mailbox_name(name: str) -> str:
    """The name, or MailboxError if it could leave the Maildir (`/`, `..`, NUL, leading dot)."""
    if name.upper() == INBOX:
        return INBOX
    if _BAD_MAILBOX.search(name) or len(name) > 1000:
        raise MailboxError(f"invalid mailbox name {name!r}")
    return name


def mailbox_dir(root: Path, name: str) -> Path:
    """Directory of a mailbox inside a Maildir++ root. Raises: MailboxError for unsafe names."""
    name = validate_mailbox_name(name)
    return root if name == INBOX else root / ("." + encode_mutf7(name))


def list_mailboxes(root: Path) -> list[tuple[str, Path]]:
    """(IMAP name, directory) of INBOX and every Maildir++ folder. Raises: MailboxError if root is missing."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise MailboxError(f"{root}: cannot read Maildir: {exc.strerror}") from exc
    found = [(INBOX, root)]
    for entry in entries:
        if entry.name.startswith(".") and entry.name not in (".", "..") and entry.is_dir():
            path = Path(entry.path)
            if (path / "cur").is_dir() or (path / "new").is_dir():
                try:
                    found.append((decode_mutf7(entry.name[1:]), path))
                except (ValueError, UnicodeDecodeError):
                    log.warning("%s: folder name is not valid modified UTF-7, skipped", path)
    return found


def _message_files(path: Path) -> dict[str, Path]:
    """basename (file name up to ':2,') -> file, over cur/ and new/."""
    files: dict[str, Path] = {}
    for sub in ("new", "cur"):
        try:
            with os.scandir(path / sub) as it:
                for entry in it:
                    if not entry.name.startswith("."):
                        files[entry.name.split(":2,", 1)[0]] = Path(entry.path)
        except FileNotFoundError:
            continue
    return files


@dataclass(slots=True)
class Uidlist:
    """The content of a dovecot-uidlist (or ftsd's own file in the same format)."""

    uidvalidity: int
    next_uid: int
    guid: str
    uids: dict[str, int]  # basename -> uid


def read_uidlist(path: Path) -> Uidlist | None:
    """Parse a dovecot-uidlist (versions 1 and 3); None if it does not exist or is unreadable."""
    try:
        lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError:
        return None
    if not lines:
        return None
    header = lines[0].split()
    version = header[0] if header else ""
    values = {item[0]: item[1:] for item in header[1:] if item}
    try:
        uidvalidity = int(values.get("V", "0"))
        next_uid = int(values.get("N", "1"))
    except ValueError:
        log.warning("%s: malformed header, ignored", path)
        return None
    uids: dict[str, int] = {}
    for line in lines[1:]:
        uid_text, _, rest = line.partition(" ")
        if not uid_text.isdigit():
            continue
        if version == "3":
            # "<uid> [ext fields] :<basename>": the name follows the first field that starts with ':'
            marker = rest.find(":") if rest.startswith(":") else rest.find(" :")
            name = rest[marker + 1 :] if rest.startswith(":") else rest[marker + 2 :] if marker >= 0 else ""
        else:
            name = rest
        if name:
            uids[name.split(":2,", 1)[0]] = int(uid_text)
    return Uidlist(uidvalidity, next_uid, values.get("G", ""), uids)


def _write_uidlist(path: Path, uidlist: Uidlist) -> None:
    lines = [f"3 V{uidlist.uidvalidity} N{uidlist.next_uid} G{uidlist.guid}"]
    lines += [f"{uid} :{name}" for name, uid in sorted(uidlist.uids.items(), key=lambda kv: kv[1])]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogateescape")
    os.replace(tmp, path)


def _own_uidlist(state_dir: Path, name: str, files: dict[str, Path]) -> Uidlist:
    """ftsd's own UIDs for a mailbox without dovecot-uidlist: new files get the next UIDs in name order."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / (encode_mutf7(name).replace("/", ",") + ".uidlist")
    with open(state_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        uidlist = read_uidlist(path) or Uidlist(int(time.time()), 1, uuid.uuid4().hex, {})
        fresh = sorted(set(files) - set(uidlist.uids))
        gone = set(uidlist.uids) - set(files)
        for name_ in fresh:
            uidlist.uids[name_] = uidlist.next_uid
            uidlist.next_uid += 1
        for name_ in gone:
            del uidlist.uids[name_]
        if fresh or gone or not path.exists():
            _write_uidlist(path, uidlist)
    return uidlist


class ScanCache:
    """Scans of unchanged mailboxes, by (mailbox path, state dir), bounded; shared by threads (one lock)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Path, str], tuple[tuple[int, ...], Mailbox]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Path, str], stamp: tuple[int, ...]) -> Mailbox | None:
        """A copy of the scan made at `stamp`, if it is cached."""
        with self._lock:
            cached = self._items.get(key)
            if cached is None or cached[0] != stamp:
                return None
            self._items.move_to_end(key)
            box = cached[1]
        return Mailbox(box.name, box.path, box.guid, box.uidvalidity, dict(box.messages), box.pending)

    def put(self, key: tuple[Path, str], stamp: tuple[int, ...], box: Mailbox) -> None:
        with self._lock:
            self._items[key] = (stamp, box)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _stamp(path: Path) -> tuple[int, ...] | None:
    """Modification times of what a scan reads: any delivery, expunge, flag change or uidlist write moves one."""
    stamps = []
    for part in ("cur", "new", "dovecot-uidlist"):
        try:
            stamps.append(os.stat(path / part).st_mtime_ns)
        except FileNotFoundError:
            stamps.append(-1)
    return None if stamps[0] == stamps[1] == -1 else tuple(stamps)


def scan_mailbox(root: Path, name: str, state_dir: Path, cache: ScanCache | None = None) -> Mailbox:
    """Current messages of one mailbox by UID (kept in `cache` until the directories change).
    Raises: MailboxError if it does not exist."""
    path = mailbox_dir(root, name)
    stamp = _stamp(path)
    if stamp is None:
        raise MailboxError(f"mailbox {name!r} does not exist ({path})")
    key = (path, str(state_dir))
    # A stamp from this very second may still change without moving (coarse mtimes): only trust older ones.
    if cache is not None and time.time_ns() - max(stamp) > 2_000_000_000:
        cached = cache.get(key, stamp)
        if cached is not None:
            return cached
    box = _scan(path, name, state_dir)
    if cache is not None:
        cache.put(key, stamp, box)
    return Mailbox(box.name, box.path, box.guid, box.uidvalidity, dict(box.messages), box.pending)


def _scan(path: Path, name: str, state_dir: Path) -> Mailbox:
    files = _message_files(path)
    uidlist = read_uidlist(path / "dovecot-uidlist")
    if uidlist is None:
        uidlist = _own_uidlist(state_dir, name, files)
    messages = {uid: files[base] for base, uid in uidlist.uids.items() if base in files}
    pending = len(files) - len(messages)
    guid = uidlist.guid or uuid.uuid5(uuid.NAMESPACE_URL, f"{path}:{uidlist.uidvalidity}").hex
    return Mailbox(name, path, guid, uidlist.uidvalidity, messages, pending)
