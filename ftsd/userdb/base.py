"""What every userdb driver shares: the User, name validation, mail_location expansion and the lookup cache."""

from __future__ import annotations

import grp
import logging
import os
import pwd
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ftsd.digits import ascii_int
from ftsd.errors import ConfigError, UnknownUserError, UnsafePathError
from ftsd.settings import Settings

log = logging.getLogger(__name__)

_BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f]|^\.|^-|\.\.|^$")
_VARIABLE = re.compile(r"%[%undh]")


@dataclass(frozen=True, slots=True)
class User:
    """One mail user: the Maildir++ root and the directory holding `xapian-indexes/`. `follow_links`: where
    symlinked folders may lead (fts.follow_folder_symlinks: the home, else the Maildir), None = nowhere."""

    name: str
    maildir: Path
    index_root: Path
    follow_links: Path | None = None
    uid: int | None = None
    gid: int | None = None

    @property
    def index_dir(self) -> Path:
        return self.index_root / "xapian-indexes"


@dataclass(frozen=True, slots=True)
class UserRecord:
    """What a userdb returns for one user (Dovecot's userdb fields ftsd uses)."""

    name: str
    home: str | None = None
    mail: str | None = None  # a per-user mail_location
    uid: int | str | None = None  # a number, or a system user name (resolved by user_from_record)
    gid: int | str | None = None


def validate_user_name(name: str) -> str:
    """The name itself, or UnknownUserError if it could escape its directory (`/`, `..`, NUL, leading dot)."""
    local, _, domain = name.partition("@")
    if _BAD_NAME.search(name) or _BAD_NAME.search(local) or (domain and _BAD_NAME.search(domain)) or len(name) > 255:
        raise UnknownUserError(f"invalid user name {name!r}")
    return name


def to_id(value: str | None) -> int | str | None:
    """A uid/gid field as the userdb gave it: a number, a name (resolved by user_from_record), None when empty."""
    value = (value or "").strip()
    number = ascii_int(value)
    return number if number is not None else value or None


def resolve_id(value: str, field: str) -> int:
    """A uid (`field` "uid") or gid as a number: digits, or a name resolved as Dovecot does (getpwnam,
    getgrnam). Raises: KeyError for a name the system does not know."""
    number = ascii_int(value)
    if number is not None:
        return number
    return pwd.getpwnam(value).pw_uid if field == "uid" else grp.getgrnam(value).gr_gid


def system_id(value: int | str | None, field: str, user: str) -> int | None:
    """A userdb uid or gid field as a number (see resolve_id).
    Raises: ConfigError naming the user and the field, for a name the system does not know."""
    if value is None or isinstance(value, int):
        return value
    try:
        return resolve_id(value, field)
    except KeyError:
        kind, table = ("user", "passwd") if field == "uid" else ("group", "group")
        raise ConfigError(f"{user}: userdb field {field}={value!r} is no system {kind} (`getent {table} {value}` "
                          f"finds nothing): fix the user's userdb entry, or create the {kind}") from None


@dataclass(frozen=True, slots=True)
class MailLocation:
    maildir: str
    index: str | None

    @classmethod
    def parse(cls, value: str) -> MailLocation:
        """Split `maildir:PATH:INDEX=PATH:...`. Raises: ConfigError."""
        kind, _, rest = value.partition(":")
        if kind != "maildir" or not rest:
            raise ConfigError(f"mail_location {value!r}: expected maildir:<path>")
        path, *options = rest.split(":")
        index = None
        for option in options:
            key, _, arg = option.partition("=")
            if key.upper() == "INDEX":
                index = arg
            elif key.upper() not in ("LAYOUT", "CONTROL", "VOLATILEDIR", "DIRNAME", "UTF-8", "INBOX", "FULLDIRNAME"):
                raise ConfigError(f"mail_location {value!r}: unknown option {key}")
            elif key.upper() == "LAYOUT" and arg.lower() != "maildir++":
                raise ConfigError(f"mail_location {value!r}: only LAYOUT=maildir++ is supported")
        return cls(path, index)


def _substitute(template: str, user: str, home: str | None) -> str:
    local, _, domain = user.partition("@")
    values = {"%u": user, "%n": local, "%d": domain, "%h": home or "", "%%": "%"}
    # one pass: a "%d" inside the user name is text, never expanded again
    return _VARIABLE.sub(lambda m: values[m.group()], template)


def _expand(template: str, user: str, home: str | None, settings: Settings) -> Path:
    if template.startswith("~"):
        if not home:
            raise UnknownUserError(f"{user}: mail_location uses ~ but the user has no home")
        template = home + template[1:]
    return settings.resolve(_substitute(template, user, home))


def _checked(path: Path, template: str, home: str | None, settings: Settings, user: str, what: str) -> Path:
    """`path` (expanded and resolved) if no symlink sits in the user's own part of it: the part after the home
    for `~`, after the directories before the first `%` otherwise. Such a link, planted by a user who owns his
    home or Maildir, could point at another user's mail or index. Raises: UnsafePathError."""
    if template.startswith("~"):
        fixed, rest = home or "/", template[1:]
    elif "%" in template:
        prefix = template[: template.index("%")]
        fixed = prefix.rpartition("/")[0] or ("/" if template.startswith("/") else ".")
        rest = template[len(prefix.rpartition("/")[0]):]
    else:
        return path  # one fixed path for everybody: the admin's
    expected = Path(os.path.normpath(settings.resolve(fixed) / _substitute(rest, user, home).lstrip("/")))
    if path != expected:
        raise UnsafePathError(f"{user}: the {what} directory is reached through a symlink, refused")
    return path


def check_index_dir(user: User) -> User:
    """The user, unless its `xapian-indexes` is a symlink (checked at every lookup: a user may plant one at any
    time). Raises: UnsafePathError."""
    if (user.index_root / "xapian-indexes").is_symlink():
        raise UnsafePathError(f"{user.name}: xapian-indexes is a symlink, refused (remove it: ftsd recreates the "
                              "index)")
    return user


def user_from_record(settings: Settings, record: UserRecord) -> User:
    """The user's Maildir and index locations: the record's own `mail` field, else mail_location; a symlink in
    the user's own part of either is refused; uid/gid names resolved to numbers. Raises: UnknownUserError
    (UnsafePathError), ConfigError (a uid/gid name the system does not know)."""
    name = validate_user_name(record.name)
    if record.mail:
        try:
            location = MailLocation.parse(record.mail)
        except ConfigError as exc:
            raise UnknownUserError(f"{name}: userdb field mail: {exc}") from None
    else:
        location = MailLocation.parse(settings.mail_location)
    if "@" not in name and "%d" in location.maildir + (location.index or ""):
        raise UnknownUserError(f"{name}: mail_location uses %d, so the user name needs a domain (user@domain)")
    home = record.home
    maildir = _checked(_expand(location.maildir, name, home, settings), location.maildir, home, settings, name,
                       "mail")
    index_root = maildir
    if location.index:
        index_root = _checked(_expand(location.index, name, home, settings), location.index, home, settings, name,
                              "INDEX=")
    follow = (settings.resolve(home) if home else maildir) if settings.fts.follow_folder_symlinks else None
    uid, gid = system_id(record.uid, "uid", name), system_id(record.gid, "gid", name)
    return check_index_dir(User(name, maildir, index_root, follow, uid, gid))


class Userdb:
    """A driver's users, kept: lookups are answered from a bounded cache (entries live `cache_ttl_s`) filled by
    `_fetch` (one user) or by `names()` when the driver's listing already carries the fields. Thread-safe."""

    where = "userdb"  # named in errors: the file, socket or directory the users come from

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[float, User | None]] = OrderedDict()
        self._ttl = settings.userdb.cache_ttl_s
        self._max = max(1, settings.userdb.cache_users)
        self.lookups = 0  # calls that reached the driver (tests and the bench read it)

    def __enter__(self) -> Userdb:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release connections (the driver's); the object may be used again and reconnects."""

    def names(self) -> list[str]:
        """Every user (for -A), sorted; names that could escape a directory are skipped with a warning.
        Raises: ConfigError (the userdb cannot be read)."""
        names = []
        for name in self._list():
            try:
                names.append(validate_user_name(name))
            except UnknownUserError as exc:
                log.warning("%s: skipping %s", self.where, exc)
        return sorted(set(names))

    def lookup(self, name: str) -> User:
        """The user's locations. Raises: UnknownUserError, ConfigError."""
        validate_user_name(name)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(name)
            if hit is not None and hit[0] > now:
                self._cache.move_to_end(name)
                user = hit[1]
                if user is None:
                    raise UnknownUserError(f"{name}: no such user in {self.where}")
                return check_index_dir(user)
        record = self._fetch(name)
        self.lookups += 1
        user = user_from_record(self.settings, record) if record is not None else None
        self._remember(name, user)
        if user is None:
            raise UnknownUserError(f"{name}: no such user in {self.where}")
        return user

    def _remember(self, name: str, user: User | None) -> None:
        with self._lock:
            self._cache[name] = (time.monotonic() + self._ttl, user)
            self._cache.move_to_end(name)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)

    def _prime(self, records: list[UserRecord]) -> None:
        """Remember users whose fields came with the listing (one search instead of one lookup per user)."""
        for record in records:
            try:
                self._remember(record.name, user_from_record(self.settings, record))
            except (UnknownUserError, ConfigError) as exc:  # said again, in one line, when the user is looked up
                log.debug("%s: %s", self.where, exc)

    def _list(self) -> list[str]:
        raise NotImplementedError

    def _fetch(self, name: str) -> UserRecord | None:
        raise NotImplementedError
