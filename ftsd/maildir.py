"""Maildir++: folders, dovecot-uidlist, and the UID of every message file. Reads the mail store, never writes it.

INBOX is the Maildir root; every `.Name` directory with `cur/` or `new/` is a folder, hierarchy separator `.`,
names in modified UTF-7 (`.Entw&APw-rfe` = "Entwürfe"). UIDs, UIDVALIDITY and the mailbox GUID come from
`dovecot-uidlist` when Dovecot has written one; a file Dovecot has not given a UID yet is left for later (it will
have one after Dovecot's next sync). Without a uidlist ftsd assigns UIDs itself, in file-name order, and keeps them
in its own uidlist under the index directory, so they stay stable across runs. Only regular files are read, never
through a symlink and never beyond the message limit (read_message); symlinked folders are not followed unless
fts.follow_folder_symlinks says so (list_mailboxes says why, and what Dovecot does).
"""

from __future__ import annotations

import base64
import errno
import fcntl
import logging
import os
import re
import stat
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from ftsd.digits import parse_uid
from ftsd.errors import MailboxError
from ftsd.userdb.base import User

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
    messages: dict[int, str] = field(default_factory=dict)  # the file by UID: a str, where a Path costs ~350 bytes more
    pending: int = 0  # files without a UID yet (Dovecot has not synced them)


_MAX_UIDLIST_BYTES = 256_000_000  # ~4 million messages
HEAD_BYTES = 1_048_576  # what is read of a file larger than the message limit: its header block


@dataclass(frozen=True, slots=True)
class MessageBytes:
    """What was read of one message file: all of it, or (`size` > fts.max_message_bytes) only its head."""

    data: bytes
    size: int  # the file's size

    @property
    def complete(self) -> bool:
        return len(self.data) >= self.size


def read_message(path: Path, max_bytes: int, head_bytes: int = HEAD_BYTES) -> MessageBytes:
    """Read one message file safely: only a regular file, never through a symlink (O_NOFOLLOW), never blocking
    on a FIFO or a device (O_NONBLOCK, refused after fstat), never more than `max_bytes` (a file larger than
    that, a 4 GB sparse file say, gives only its first `head_bytes`: the header block).
    Raises: FileNotFoundError (expunged meanwhile), OSError (ELOOP: a symlink; EINVAL: not a regular file)."""
    before = os.lstat(path)  # refuse devices before open(), which alone could have effects (tape rewind)
    if not stat.S_ISREG(before.st_mode):
        raise _not_regular(path, before.st_mode)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        st = os.fstat(fd)  # the file opened, which may have been swapped since the lstat
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(path, st.st_mode)
        want = min(st.st_size, max_bytes) if st.st_size <= max_bytes else min(head_bytes, max_bytes)
        data = os.read(fd, want)  # one read, one buffer: regular files give it all at once
        while len(data) < want:  # short reads (network filesystems); a growing file is cut at what fstat said
            more = os.read(fd, want - len(data))
            if not more:
                break
            data += more
        return MessageBytes(data, st.st_size)
    finally:
        os.close(fd)


def _not_regular(path: Path, mode: int) -> OSError:
    kind = "symlink" if stat.S_ISLNK(mode) else "FIFO" if stat.S_ISFIFO(mode) else \
        "directory" if stat.S_ISDIR(mode) else "device or socket"
    return OSError(errno.ELOOP if stat.S_ISLNK(mode) else errno.EINVAL, f"not a regular file ({kind}), refused",
                   str(path))


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


def _refuse(path: Path | str, why: str, cache: ScanCache | None) -> None:
    """One log line per refused path (per `cache`: not again on every search that lists it)."""
    if cache is None or cache.first_refusal(f"{path}\0{why}"):
        log.warning("%s: %s", path, why)


def _inside(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


def _followed(link: Path, follow: Path | None, cache: ScanCache | None = None) -> bool:
    """Whether a symlinked folder (or cur/, new/) may be followed: only with fts.follow_folder_symlinks, and then
    only when it resolves inside `follow` (the user's home, else the Maildir root). One log line otherwise."""
    if follow is None:
        _refuse(link, "is a symlink, not followed (fts.follow_folder_symlinks = false)", cache)
        return False
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):
        _refuse(link, "symlink does not resolve, skipped", cache)
        return False
    if not _inside(target, follow.resolve()) or not target.is_dir():
        _refuse(link, f"symlink leads outside {follow}, not followed", cache)
        return False
    return True


def list_mailboxes(root: Path, follow: Path | None = None, cache: ScanCache | None = None) -> list[tuple[str, Path]]:
    """(IMAP name, directory) of INBOX and every Maildir++ folder. A folder that is a symlink is left out (one
    log line) unless `follow` is given and it resolves inside it; so is a folder whose name does not decode to a
    valid mailbox name (`..`, `/`). Raises: MailboxError if root is missing.

    Dovecot stat()s folder entries, so it follows symlinked folders, and open()s message files without
    O_NOFOLLOW: it runs as the mail user, whose own permissions bound what a link can reach. ftsd reads every
    user's mail as one service user, so the same link would hand one user another's mail: it follows nothing
    by default, and with fts.follow_folder_symlinks only folders (and cur/, new/) that stay inside the user's
    home (or Maildir root); message files are never read through a symlink (read_message)."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise MailboxError(f"{root}: cannot read Maildir: {exc.strerror}") from exc
    found = [(INBOX, root)]
    for entry in entries:
        if not entry.name.startswith(".") or entry.name in (".", ".."):
            continue
        path = Path(entry.path)
        if entry.is_symlink():
            if not _followed(path, follow, cache):
                continue
        elif not entry.is_dir(follow_symlinks=False):
            continue
        if not (_mail_dir(path, "cur", follow, cache) or _mail_dir(path, "new", follow, cache)):
            continue
        try:
            name = decode_mutf7(entry.name[1:])
            validate_mailbox_name(name)
        except (ValueError, UnicodeDecodeError, MailboxError):
            _refuse(path, "folder name is not a valid mailbox name in modified UTF-7, skipped", cache)
            continue
        if mailbox_dir(root, name) != path:  # a second spelling of a name ("&AGE-" = "a"): an alias, not a box
            _refuse(path, "folder name is not in canonical modified UTF-7, skipped", cache)
            continue
        found.append((name, path))
    return found


def _mail_dir(folder: Path, sub: str, follow: Path | None, cache: ScanCache | None) -> bool:
    """Whether folder/sub (cur or new) is a directory ftsd may read: a real one, or a symlink `follow` allows."""
    path = folder / sub
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if stat.S_ISLNK(st.st_mode):
        return _followed(path, follow, cache)
    return stat.S_ISDIR(st.st_mode)


def _message_files(path: Path, follow: Path | None = None, own_uids: bool = False,
                   cache: ScanCache | None = None) -> dict[str, str]:
    """basename (file name up to ':2,') -> file, over cur/ and new/. Only regular files: a symlink, FIFO or
    device in cur/ is left out with one log line (read_message refuses it too, if it appears after the scan).
    With `own_uids` (no dovecot-uidlist), names with a CR or LF are left out too: they cannot be kept in a
    uidlist line and would get a new UID on every scan."""
    files: dict[str, str] = {}
    for sub in ("new", "cur"):
        if not _mail_dir(path, sub, follow, cache):
            continue
        try:
            with os.scandir(path / sub) as it:
                for entry in it:
                    if entry.name.startswith("."):
                        continue
                    if not entry.is_file(follow_symlinks=False):
                        _refuse(entry.path, "not a regular file (symlink, FIFO or device), not read", cache)
                        continue
                    if own_uids and ("\n" in entry.name or "\r" in entry.name):
                        _refuse(repr(entry.path), "file name with a line break, not indexed (no dovecot-uidlist)",
                                cache)
                        continue
                    files[entry.name.split(":2,", 1)[0]] = entry.path
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


_HEADER_BYTES = 4096


def read_uidlist(path: Path) -> Uidlist | None:
    """Parse a dovecot-uidlist (versions 1 and 3); None if it does not exist, is unreadable or is not a regular
    file (read_message: a symlink or FIFO planted there is never followed nor waited on)."""
    try:
        data = read_message(path, _MAX_UIDLIST_BYTES, 0).data
    except OSError:
        return None
    # "\n" only: str.splitlines() would also cut names at \r, \x1c-\x1e, U+2028 ...
    lines = data.decode("utf-8", "surrogateescape").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
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
        uid = parse_uid(uid_text)
        if uid is None:  # not a UID (a planted "²", 2^32): the file stays unnamed, as if Dovecot had not seen it
            continue
        if version == "3":
            # "<uid> [ext fields] :<basename>": the name follows the first field that starts with ':'
            marker = rest.find(":") if rest.startswith(":") else rest.find(" :")
            name = rest[marker + 1 :] if rest.startswith(":") else rest[marker + 2 :] if marker >= 0 else ""
        else:
            name = rest
        if name:
            uids[name.split(":2,", 1)[0]] = uid
    return Uidlist(uidvalidity, next_uid, values.get("G", ""), uids)


def uidlist_guid(path: Path) -> str | None:
    """The mailbox GUID of a dovecot-uidlist's header line, reading only its start ("" when it names none); None
    when the file cannot be read or its header is not in the first 4 KiB (then read it whole)."""
    try:
        data = read_message(path, _HEADER_BYTES, _HEADER_BYTES).data
    except OSError:
        return None
    line, newline, _ = data.partition(b"\n")
    if not newline:
        return None
    fields = line.decode("utf-8", "surrogateescape").split()[1:]
    return next((item[1:] for item in fields if item.startswith("G")), "")


def _write_uidlist(path: Path, uidlist: Uidlist) -> None:
    lines = [f"3 V{uidlist.uidvalidity} N{uidlist.next_uid} G{uidlist.guid}"]
    lines += [f"{uid} :{name}" for name, uid in sorted(uidlist.uids.items(), key=lambda kv: kv[1])]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogateescape")
    os.replace(tmp, path)


def uidlist_dir(user: User) -> Path:
    """Where ftsd keeps its own uidlists (mailboxes without a dovecot-uidlist), beside the user's index."""
    return user.index_dir / "ftsd-uidlists"


def own_uidlist_path(state_dir: Path, name: str) -> Path:
    """Where ftsd keeps its own UIDs of a mailbox that has no dovecot-uidlist."""
    return state_dir / (encode_mutf7(name).replace("/", ",") + ".uidlist")


def current_uidlist(path: Path, name: str, state_dir: Path) -> Uidlist | None:
    """The mailbox's UIDs as last written: Dovecot's uidlist, else ftsd's own. Reads only (a scan assigns)."""
    return read_uidlist(path / "dovecot-uidlist") or read_uidlist(own_uidlist_path(state_dir, name))


def mailbox_guid(path: Path, uidlist: Uidlist | None) -> str:
    """The mailbox GUID: Dovecot's, else one derived from the folder and its UIDVALIDITY (stable across runs)."""
    if uidlist is not None and uidlist.guid:
        return uidlist.guid
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{path}:{uidlist.uidvalidity if uidlist else 0}").hex


def _own_uidlist(state_dir: Path, name: str, files: dict[str, str]) -> Uidlist:
    """ftsd's own UIDs for a mailbox without dovecot-uidlist: new files get the next UIDs in name order."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = own_uidlist_path(state_dir, name)
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
        self._refused: OrderedDict[str, None] = OrderedDict()  # refusals already logged

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

    def first_refusal(self, key: str) -> bool:
        """True the first time `key` (a refused path and why) is seen: it is logged once, not on every search."""
        with self._lock:
            if key in self._refused:
                self._refused.move_to_end(key)
                return False
            self._refused[key] = None
            while len(self._refused) > 4 * self.size:
                self._refused.popitem(last=False)
            return True

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


def scan_mailbox(root: Path, name: str, state_dir: Path, cache: ScanCache | None = None,
                 follow: Path | None = None) -> Mailbox:
    """Current messages of one mailbox by UID (kept in `cache` until the directories change). `follow`: as for
    list_mailboxes. Raises: MailboxError if it does not exist or is a symlink that is not followed."""
    path = mailbox_dir(root, name)
    if path != root and path.is_symlink() and not _followed(path, follow, cache):
        raise MailboxError(f"mailbox {name!r} is a symlink, not followed")
    stamp = _stamp(path)
    if stamp is None:
        raise MailboxError(f"mailbox {name!r} does not exist ({path})")
    key = (path, f"{state_dir}\0{follow}")
    # A stamp from this very second may still change without moving (coarse mtimes): only trust older ones.
    if cache is not None and time.time_ns() - max(stamp) > 2_000_000_000:
        cached = cache.get(key, stamp)
        if cached is not None:
            return cached
    box = _scan(path, name, state_dir, follow, cache)
    if cache is not None:
        cache.put(key, stamp, box)
    return Mailbox(box.name, box.path, box.guid, box.uidvalidity, dict(box.messages), box.pending)


def _scan(path: Path, name: str, state_dir: Path, follow: Path | None, cache: ScanCache | None) -> Mailbox:
    uidlist = read_uidlist(path / "dovecot-uidlist")
    files = _message_files(path, follow, own_uids=uidlist is None, cache=cache)
    if uidlist is None:
        uidlist = _own_uidlist(state_dir, name, files)
    messages = {uid: files[base] for base, uid in uidlist.uids.items() if base in files}
    pending = len(files) - len(messages)
    return Mailbox(name, path, mailbox_guid(path, uidlist), uidlist.uidvalidity, messages, pending)
