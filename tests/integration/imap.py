"""IMAP `UID SEARCH` of a query AST against a real Dovecot, for comparing ftsd with Dovecot's own search.

Every string goes out as a non-synchronising literal (`{n+}`, RFC 7888, which Dovecot announces) in UTF-8 with
`CHARSET UTF-8`, so quotes, backslashes and non-ASCII text need no quoting rules and a whole query is one write.
imaplib carries the connection (login, select); the search command itself is written and read raw because
imaplib sends at most one literal per command.
"""

from __future__ import annotations

import imaplib
import time

from ftsd.query import All, And, Key, Node, Not, Or


def _literal(value: str) -> bytes:
    data = value.encode("utf-8")
    return b"{%d+}\r\n" % len(data) + data


def imap_query(node: Node) -> bytes:
    """The IMAP SEARCH key syntax of a query AST (RFC 3501 §6.4.4), strings as literals."""
    if isinstance(node, Key):
        if node.field == "header":
            return b"HEADER " + _literal(node.header or "") + b" " + _literal(node.value)
        return node.field.upper().encode() + b" " + _literal(node.value)
    if isinstance(node, All):
        return b"ALL"
    if isinstance(node, And):
        return b"(" + b" ".join(imap_query(n) for n in node.items) + b")"
    if isinstance(node, Or):
        return b"OR " + imap_query(node.left) + b" " + imap_query(node.right)
    assert isinstance(node, Not)
    return b"NOT " + imap_query(node.item)


class ImapSearch:
    """One logged-in, selected IMAP connection: `uids(node)` runs UID SEARCH and times it."""

    def __init__(self, conn: imaplib.IMAP4, mailbox: str = "INBOX") -> None:
        self.conn = conn
        typ, data = conn.select(mailbox, readonly=True)
        if typ != "OK":
            raise AssertionError(f"SELECT {mailbox}: {data}")
        self._tag = 0
        self.last_ms = 0.0

    def uids(self, node: Node) -> list[int]:
        """Matching UIDs, ascending. Raises AssertionError with Dovecot's answer when the search fails."""
        self._tag += 1
        tag = b"S%d" % self._tag
        start = time.perf_counter()
        self.conn.send(tag + b" UID SEARCH CHARSET UTF-8 " + imap_query(node) + b"\r\n")
        found: list[int] = []
        while True:
            line = self.conn.readline()
            if not line:
                raise AssertionError("the IMAP connection closed during a search")
            if line.startswith(b"* SEARCH"):
                found += [int(x) for x in line[8:].split()]
            elif line.startswith(tag + b" "):
                self.last_ms = (time.perf_counter() - start) * 1000
                if not line[len(tag) + 1 :].startswith(b"OK"):
                    raise AssertionError(f"UID SEARCH {imap_query(node)!r}: {line!r}")
                return sorted(found)

    def close(self) -> None:
        try:
            self.conn.logout()
        except (OSError, imaplib.IMAP4.error):
            pass
