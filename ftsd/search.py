"""Search: an IMAP SEARCH AST -> the exact set of matching UIDs of one mailbox.

The index settles what it can: a key whose normalised string is a single run of at most 40 characters is
answered exactly by the lexicon entries that contain it (see analysis.py). What it cannot settle alone -- several
runs that must be adjacent (phrases, punctuation), longer strings, headers that are not indexed on their own, and
messages not indexed yet -- is narrowed by the index to candidates and then checked against the message text
read from the Maildir. Each node evaluates to (sure, maybe) UID sets; only `maybe - sure` is read from disk.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from functools import reduce
from pathlib import Path

from ftsd.analysis import Analyzer, QueryPieces, normalise, searchable
from ftsd.maildir import Mailbox
from ftsd.message import ParsedMessage, decode_header_value, header_indexed, parse_headers, parse_message
from ftsd.query import All, And, Key, Node, Or
from ftsd.settings import Settings
from ftsd.store.searcher import Query, Searcher

log = logging.getLogger(__name__)

_FIELD_SOURCES = {
    "text": ("subject", "from", "to", "cc", "bcc", "headers", "body"),
    "body": ("body",),
    "subject": ("subject",),
    "from": ("from",),
    "to": ("to",),
    "cc": ("cc",),
    "bcc": ("bcc",),
}
_OWN_FIELD_HEADERS = ("subject", "from", "to", "cc", "bcc")
_TEXT_MARK_FIELDS = ("headers", "body")  # analysis.Analyzer.header_and_body


@dataclass(frozen=True, slots=True)
class MailboxResult:
    mailbox: str
    uidvalidity: int
    uids: list[int]
    verified: int = 0  # messages read from the Maildir to settle the answer


@dataclass(slots=True)
class _Plan:
    """Per key: the index query (candidates) and whether the index answer is exact."""

    query: Query
    exact: bool
    pieces: QueryPieces | None = None


def _fields(key: Key, settings: Settings) -> tuple[tuple[str, ...], bool]:
    """Index fields that hold the key's text, and whether they hold exactly that text. No fields: the header is
    not indexed (fts.header_excludes), every message is a candidate."""
    if key.field == "header":
        name = (key.header or "").lower()
        if name in _OWN_FIELD_HEADERS:
            return (name,), True
        if not header_indexed(name, settings):
            return (), False
        return ("headers",), False  # other headers share one pool: a hit there is only a candidate
    return _FIELD_SOURCES[key.field], True


class TextCache:
    """Normalised field texts of recently checked messages, by file identity (path, size, mtime): a phrase or a
    key with punctuation checks hundreds of candidates, and the same search often comes again (paging, a
    refresh, a client typing). Bounded in characters, least recently used dropped first. A path is only ever
    looked up by a search of the user whose Maildir holds it."""

    def __init__(self) -> None:
        self.max_chars = 0
        self._items: OrderedDict[tuple[str, int, int, int], dict[str, str]] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def texts(self, key: tuple[str, int, int, int], max_chars: int) -> dict[str, str]:
        """The cached texts of one message file (a new, empty entry if none)."""
        with self._lock:
            self.max_chars = max_chars
            entry = self._items.get(key)
            if entry is None:
                entry = self._items[key] = {}
            self._items.move_to_end(key)
            return entry

    def added(self, key: tuple[str, int, int, int], chars: int) -> None:
        """Account for `chars` characters stored into the entry of `key`; drop old entries beyond the bound."""
        with self._lock:
            if key not in self._items:  # dropped meanwhile: its texts are not held any more
                return
            self._chars += chars
            while self._chars > self.max_chars and self._items:
                _, old = self._items.popitem(last=False)
                self._chars -= sum(map(len, old.values()))


TEXTS = TextCache()


class _MessageText:
    """The normalised field texts of one message, read lazily from the Maildir, for verification. Header keys
    read and parse only the header block; BODY and TEXT decode the whole message."""

    _HEAD_BYTES = 65536

    def __init__(self, path: Path, settings: Settings) -> None:
        self.path = path
        self.settings = settings
        self._raw: bytes | None = None
        self._head: Message | None = None
        self._parsed: ParsedMessage | None = None
        self._key: tuple[str, int, int, int] | None = None
        limit = settings.fts.verify_cache_mb * 1_000_000
        if limit:
            st = path.stat()  # OSError: expunged since the scan (the caller's business)
            self._key = (str(path), st.st_size, st.st_mtime_ns, settings.fts.max_word_chars)
            self._cache = TEXTS.texts(self._key, limit)
        else:
            self._cache = {}

    def _norm(self, text: str) -> str:
        return searchable(normalise(text), self.settings.fts.max_word_chars)

    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = self.path.read_bytes()
        return self._raw

    def headers(self) -> Message:
        if self._head is None:
            head = self._raw
            if head is None:
                with self.path.open("rb") as f:
                    head = f.read(self._HEAD_BYTES)
                if b"\n\n" not in head and b"\r\n\r\n" not in head:  # headers longer than that: read it all
                    head = self.raw()
            self._head = parse_headers(head)
        return self._head

    def has_header(self, name: str) -> bool:
        return self.headers().get_all(name) is not None

    def field(self, key: Key) -> str:
        name = key.field if key.field != "header" else (key.header or "").lower()
        if name not in self._cache:
            if name not in ("text", "body"):  # any header: the header block is enough
                values = self.headers().get_all(name) or []
                self._cache[name] = self._norm("\n".join(decode_header_value(v) for v in values))
            else:
                if self._parsed is None:
                    self._parsed = parse_message(self.raw(), self.settings)
                p = self._parsed
                self._cache[name] = self._norm(p.headers + "\n" + p.body if name == "text" else p.body)
            if self._key is not None:
                TEXTS.added(self._key, len(self._cache[name]))
        return self._cache[name]


@dataclass(slots=True)
class MailboxSearch:
    """Evaluates one AST over one mailbox: index first, Maildir for the rest."""

    searcher: Searcher | None
    mailbox: Mailbox
    settings: Settings
    analyzer: Analyzer = field(init=False)
    _plans: dict[int, _Plan] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.analyzer = Analyzer.of(self.settings.fts)

    def plan(self, key: Key) -> _Plan:
        pieces = self.analyzer.pieces(key.value)
        fields_, own = _fields(key, self.settings)
        if not pieces.text:  # "" matches every message; HEADER name "" those that have the header (RFC 3501)
            return _Plan(Searcher.all_(), key.field != "header", pieces)
        if pieces.runs is None:
            return _Plan(Searcher.nothing(), True, pieces)
        runs = pieces.runs
        if pieces.marks and key.field == "text":  # TEXT's marks are those of the header lines and the body
            fields_ = _TEXT_MARK_FIELDS
        elif pieces.marks and not own:  # another header's values join at spaces: look up what lies between
            runs = tuple(run for run in pieces.text.split(" ") if run)
        if not runs or not fields_:  # spaces only in a shared pool, or a header not indexed: all are candidates
            return _Plan(Searcher.all_(), False, pieces)
        exact_chars, partial = self.analyzer.exact_chars, self.analyzer.partial
        assert self.searcher is not None  # plans are made for indexed mail only
        query = Searcher.and_([self.searcher.piece(fields_, run, exact_chars, partial) for run in runs])
        return _Plan(query, own and pieces.exact, pieces)

    def _plan_of(self, key: Key) -> _Plan:
        if id(key) not in self._plans:
            self._plans[id(key)] = self.plan(key)
        return self._plans[id(key)]

    def _all_exact(self, node: Node) -> bool:
        if isinstance(node, Key):
            return self._plan_of(node).exact
        if isinstance(node, All):
            return True
        if isinstance(node, And):
            return all(self._all_exact(n) for n in node.items)
        if isinstance(node, Or):
            return self._all_exact(node.left) and self._all_exact(node.right)
        return self._all_exact(node.item)

    def _query(self, node: Node) -> Query:
        if isinstance(node, Key):
            return self._plan_of(node).query
        if isinstance(node, All):
            return Searcher.all_()
        if isinstance(node, And):
            return Searcher.and_([self._query(n) for n in node.items])
        if isinstance(node, Or):
            return Searcher.or_([self._query(node.left), self._query(node.right)])
        return Searcher.not_(self._query(node.item))

    def _sets(self, node: Node, universe: set[int]) -> tuple[set[int], set[int]]:
        """(sure, maybe) UIDs among the indexed ones."""
        assert self.searcher is not None
        if isinstance(node, Key):
            plan = self._plan_of(node)
            found = self.searcher.uids(plan.query, self.mailbox.guid) & universe
            return (found, found) if plan.exact else (set(), found)
        if isinstance(node, All):
            return universe, universe
        if isinstance(node, And):
            pairs = [self._sets(n, universe) for n in node.items]
            return reduce(set.__and__, (p[0] for p in pairs)), reduce(set.__and__, (p[1] for p in pairs))
        if isinstance(node, Or):
            (s1, m1), (s2, m2) = self._sets(node.left, universe), self._sets(node.right, universe)
            return s1 | s2, m1 | m2
        sure, maybe = self._sets(node.item, universe)
        return universe - maybe, universe - sure

    def run(self, node: Node) -> MailboxResult:
        present = set(self.mailbox.messages)
        indexed = self.searcher.indexed_uids(self.mailbox.guid) & present if self.searcher else set()
        if indexed and self._all_exact(node):
            assert self.searcher is not None
            sure = self.searcher.uids(self._query(node), self.mailbox.guid) & indexed
            check: set[int] = set()
        elif indexed:
            sure, maybe = self._sets(node, indexed)
            check = maybe - sure
        else:
            sure, check = set(), set()
        check |= present - indexed  # not indexed yet: only the Maildir can tell
        verified = {uid for uid in check if self._verify(uid, node)}
        return MailboxResult(self.mailbox.name, self.mailbox.uidvalidity, sorted(sure | verified), len(check))

    def _verify(self, uid: int, node: Node) -> bool:
        try:
            return evaluate(node, _MessageText(self.mailbox.messages[uid], self.settings), self.analyzer.pieces)
        except OSError as exc:  # expunged since the scan: it is no longer a match
            log.info("%s UID %d vanished during the search: %s", self.mailbox.name, uid, exc)
            return False


def evaluate(node: Node, text: _MessageText, pieces: Callable[[str], QueryPieces]) -> bool:
    """The AST on one message's text: substring semantics of design §4."""
    if isinstance(node, Key):
        wanted = pieces(node.value)
        if not wanted.text and node.field == "header":
            return text.has_header(node.header or "")
        return wanted.runs is not None and wanted.text in text.field(node)
    if isinstance(node, All):
        return True
    if isinstance(node, And):
        return all(evaluate(n, text, pieces) for n in node.items)
    if isinstance(node, Or):
        return evaluate(node.left, text, pieces) or evaluate(node.right, text, pieces)
    return not evaluate(node.item, text, pieces)
