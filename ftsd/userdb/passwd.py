"""passwd-file userdb: Dovecot's `user:password:uid:gid:gecos:home:shell:extra_fields` format.

The file is parsed once and kept; every lookup stats it (microseconds) and parses it again only when its mtime,
size or inode changed, so an edited or atomically replaced file is seen at the next lookup. Extra fields
`userdb_mail=...` / `mail=...` and `userdb_home=...` are honoured like Dovecot's.
"""

from __future__ import annotations

import os
import threading

from ftsd.errors import ConfigError, UnknownUserError
from ftsd.settings import Settings
from ftsd.userdb.base import User, Userdb, UserRecord, to_id, user_from_record, validate_user_name

Signature = tuple[int, int, int, int]


def parse_passwd(text: str) -> dict[str, str]:
    """User name -> its line, for every user of a passwd-file (comments and blank lines skipped; a later line for
    a user wins). Lines are split into fields only when the user is looked up: 50,000 users load in milliseconds."""
    users: dict[str, str] = {}
    for line in text.splitlines():
        name = line.partition(":")[0]
        if name.strip() and not name.lstrip().startswith("#"):
            users[name] = line
    return users


def parse_line(line: str) -> UserRecord:
    """One passwd-file line: home (field 6, or the userdb_home extra field), uid, gid (fields 3 and 4, or the
    userdb_uid/userdb_gid extra fields), and a userdb_mail field."""
    fields = line.split(":", 7)
    fields += [""] * (8 - len(fields))
    home: str | None = fields[5] or None
    mail = None
    uid, gid = fields[2].strip(), fields[3].strip()
    for extra in fields[7].split():
        key, _, value = extra.partition("=")
        key = key.removeprefix("userdb_")
        if key == "mail":
            mail = value
        elif key == "home":
            home = value
        elif key == "uid":  # the extra field wins over the uid column, as in Dovecot
            uid = value
        elif key == "gid":
            gid = value
    return UserRecord(fields[0], home, mail, to_id(uid), to_id(gid))


class PasswdFileUserdb(Userdb):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.path = settings.resolve(settings.userdb.args)
        self.where = str(settings.userdb.args)
        self._table: dict[str, str] = {}
        self._signature: Signature | None = None
        self._load_lock = threading.Lock()
        self.loads = 0  # times the file was parsed

    def _current(self) -> dict[str, str]:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise ConfigError(f"userdb passwd-file {self.path}: {exc.strerror or exc}") from exc
        signature = (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)
        if signature == self._signature:
            return self._table
        with self._load_lock:
            if signature != self._signature:
                try:
                    text = self.path.read_bytes().decode("utf-8", "replace")
                except OSError as exc:
                    raise ConfigError(f"userdb passwd-file {self.path}: {exc.strerror or exc}") from exc
                table = parse_passwd(text)
                with self._lock:
                    self._cache.clear()
                self._table, self._signature = table, signature
                self.loads += 1
        return self._table

    def lookup(self, name: str) -> User:
        self._current()  # a changed file drops the users built from the old one
        return super().lookup(name)

    def lookup_once(self, name: str) -> User:
        """One user without keeping the file (callers that hold no Userdb): the user's line is found in the raw
        text instead of indexing every line. Raises: UnknownUserError, ConfigError."""
        validate_user_name(name)
        if ":" in name:  # the field separator: no passwd-file user has it
            raise UnknownUserError(f"{name}: no such user in {self.where}")
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"userdb passwd-file {self.path}: {exc.strerror or exc}") from exc
        key = name.encode() + b":"
        found = None
        start = 0
        while (at := data.find(key, start)) != -1:  # the last line for a user wins, as in parse_passwd
            if at == 0 or data[at - 1:at] == b"\n":
                end = data.find(b"\n", at)
                found = (data[at:] if end == -1 else data[at:end]).decode("utf-8", "replace")
            start = at + 1
        if found is None:
            raise UnknownUserError(f"{name}: no such user in {self.where}")
        return user_from_record(self.settings, parse_line(found.rstrip("\r")))

    def _list(self) -> list[str]:
        return list(self._current())

    def _fetch(self, name: str) -> UserRecord | None:
        line = self._current().get(name)
        return parse_line(line) if line is not None else None
