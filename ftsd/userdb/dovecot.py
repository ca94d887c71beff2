"""dovecot userdb: ask the running Dovecot over its auth-userdb socket, as `doveadm user` and `doveadm -A` do.

The auth master protocol is line based with tab-separated fields: after both sides send `VERSION\\t1\\t<minor>`
(the server adds `SPID`; a client `CPID` is
refused on this socket, it belongs to the auth-master one), a `USER\\t<id>\\t<name>\\tservice=...` request is answered
by `USER\\t<id>\\t<name>\\t<field>=<value>...`, `NOTFOUND\\t<id>` or `FAIL\\t<id>...`, and a `LIST\\t<id>` request by
one `LIST\\t<id>\\t<name>` line per user that the userdbs' iterate filters select, then `DONE\\t<id>` (with `fail`
as third field when a userdb failed to iterate). Values are tab-escaped (\\x01 + 1/t/r/n/0).
One connection is kept and reused (reopened after Dovecot closes it); requests on it are serialised.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from ftsd.errors import ConfigError
from ftsd.settings import Settings
from ftsd.userdb.base import Userdb, UserRecord, to_id

DEFAULT_SOCKET = "/run/dovecot/auth-userdb"
MAX_LINE = 65536
_UNESCAPE = {"1": "\x01", "t": "\t", "r": "\r", "n": "\n", "0": "\x00"}


def tab_unescape(value: str) -> str:
    if "\x01" not in value:
        return value
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\x01" and i + 1 < len(value):
            out.append(_UNESCAPE.get(value[i + 1], value[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def tab_escape(value: str) -> str:
    return (value.replace("\x01", "\x011").replace("\t", "\x01t").replace("\r", "\x01r").replace("\n", "\x01n")
            .replace("\x00", "\x010"))


class _Connection:
    """One handshaken auth master connection."""

    def __init__(self, path: Path, timeout_s: float) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout_s)
        try:
            self.sock.connect(str(path))
            self.sock.sendall(b"VERSION\t1\t0\n")  # no CPID: the auth-userdb socket rejects it
            self._buffer = b""
            while True:  # the server's VERSION, then SPID ends its handshake
                fields = self.read_line()
                if fields[0] == "VERSION" and (len(fields) < 2 or fields[1] != "1"):
                    raise ConfigError(f"userdb dovecot {path}: unsupported auth protocol version {fields[1:]}")
                if fields[0] == "CUID":
                    raise ConfigError(f"userdb dovecot {path}: this is an auth client socket; use auth-userdb")
                if fields[0] == "SPID":
                    break
        except BaseException:
            self.sock.close()
            raise

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def read_line(self) -> list[str]:
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE:
                raise ConfigError(f"userdb dovecot {self.path}: reply line longer than {MAX_LINE} bytes")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("Dovecot closed the connection")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return [tab_unescape(f) for f in line.decode("utf-8", "replace").split("\t")]

    def close(self) -> None:
        self.sock.close()


class DovecotUserdb(Userdb):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.path = settings.resolve(settings.userdb.args or DEFAULT_SOCKET)
        self.where = f"Dovecot's userdb ({self.path})"
        self._conn: _Connection | None = None
        self._conn_lock = threading.Lock()
        self._next_id = 0

    def close(self) -> None:
        with self._conn_lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _request(self, command: str, *args: str) -> list[list[str]]:
        """Send one request and return its reply lines (LIST: every line up to DONE). A connection that Dovecot
        closed meanwhile is reopened once. Raises: ConfigError."""
        with self._conn_lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None:
                        self._conn = _Connection(self.path, self.settings.userdb.timeout_s)
                    self._next_id += 1
                    rid = str(self._next_id)
                    self._conn.send("\t".join([command, rid, *map(tab_escape, args)]))
                    return self._replies(self._conn, command, rid)
                except (OSError, ConnectionError) as exc:
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None
                    if attempt == 2 or isinstance(exc, TimeoutError):
                        raise ConfigError(f"userdb dovecot {self.path}: {getattr(exc, 'strerror', None) or exc}"
                                          " (is Dovecot running, and may ftsd use its auth-userdb socket?)"
                                          ) from None
        raise AssertionError("unreachable")

    @staticmethod
    def _replies(conn: _Connection, command: str, rid: str) -> list[list[str]]:
        lines = []
        while True:
            fields = conn.read_line()
            if len(fields) < 2 or fields[1] != rid:
                continue  # a reply to an earlier, abandoned request
            lines.append(fields)
            if command != "LIST" or fields[0] != "LIST":
                return lines

    def _list(self) -> list[str]:
        lines = self._request("LIST", f"service={self.settings.userdb.service}")
        done = lines.pop()
        if done[0] != "DONE" or (len(done) > 2 and done[2] == "fail"):
            raise ConfigError(f"userdb dovecot {self.path}: listing the users failed (see Dovecot's log; does "
                              "every userdb have an iterate setting?)")
        return [fields[2] for fields in lines if len(fields) > 2]

    def _fetch(self, name: str) -> UserRecord | None:
        fields = self._request("USER", name, f"service={self.settings.userdb.service}")[0]
        if fields[0] == "NOTFOUND":
            return None
        if fields[0] != "USER":
            reason = next((f.partition("=")[2] for f in fields[2:] if f.startswith("reason=")), "")
            raise ConfigError(f"userdb dovecot: looking up {name} failed{': ' + reason if reason else ''} "
                              "(see Dovecot's log)")
        values = dict(f.partition("=")[::2] for f in fields[3:])
        return UserRecord(name, values.get("home") or None, values.get("mail") or None, to_id(values.get("uid")),
                          to_id(values.get("gid")))
