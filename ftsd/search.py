"""Search: one query AST (ftsd/query.py) -> the exact set of matching UIDs of one mailbox. The one evaluator:
IMAP SEARCH (CLI, HTTP API) and the Solr bridge's Lucene queries both end here.

The index settles what it can: a key of at most 40 characters without a space is answered exactly by the lexicon
entries that contain it (see analysis.py). What it cannot settle alone -- phrases (pieces that must be adjacent),
longer strings, headers that are not indexed on their own, and messages not indexed yet -- is narrowed by the
index to candidates (messages that hold every piece) and then checked against the message's text.
Each node evaluates to (sure, maybe) UID sets; only `maybe - sure` is checked, one message at a time, against a
TextSource: the message file in the Maildir (MaildirText), the normalised texts ftsd's indexer kept in the document
(KeptText, fts.store_texts), or the field texts a Solr document keeps (StoredText).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from email.message import Message
from functools import reduce
from pathlib import Path
from typing import Protocol

from ftsd.analysis import Analyzer, QueryPieces, normalise, searchable
from ftsd.errors import SearchTimeoutError, UnusableIndexError
from ftsd.maildir import Mailbox, read_message
from ftsd.message import ParsedMessage, decode_header_value, header_indexed, parse_headers, parse_message
from ftsd.query import All, And, Key, Node, Not, Or, Where
from ftsd.settings import Settings
from ftsd.store.searcher import Query, Searcher
from ftsd.store.texts import KeptTexts, fingerprint

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
# Every header line: the `headers` field of a Solr document holds them all; ftsd's own indexer keeps the values
# of the headers above out of it (they have fields of their own), so those are candidates too.
_HEADER_LINES = ("headers", *_OWN_FIELD_HEADERS)
CHECK_BATCH = 256  # messages whose kept texts are read at once (a few MB at most: they stay packed until checked)


@dataclass(frozen=True, slots=True)
class Deadline:
    """The time budget of one search (limits.search_time_s), checked between keys, candidates and mailboxes:
    past it the search stops with SearchTimeoutError instead of holding a thread for minutes."""

    seconds: float = 0.0
    at: float = math.inf  # time.monotonic() value

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(seconds, time.monotonic() + seconds) if seconds > 0 else cls()

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise SearchTimeoutError(f"search stopped after {self.seconds:g} s (limits.search_time_s): use fewer "
                                     "keys or longer strings, or raise the limit")


@dataclass(frozen=True, slots=True)
class MailboxResult:
    mailbox: str
    uidvalidity: int
    uids: list[int]
    verified: int = 0  # messages checked to settle the answer (against kept texts or the message file)
    read: int = 0  # of those, messages whose file was read from the Maildir


@dataclass(frozen=True, slots=True)
class Answer:
    """The matching UIDs of one mailbox, ascending, and how many messages were checked to settle them."""

    uids: list[int]
    verified: int


@dataclass(slots=True)
class _Plan:
    """Per key: the index query for its candidates, and the one for its sure matches (None: no UID is sure)."""

    query: Query
    sure: Query | None

    @property
    def exact(self) -> bool:
        return self.sure is self.query


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
    if key.field == "headers":
        return _HEADER_LINES, False
    return _FIELD_SOURCES[key.field], True


class TextCache:
    """Normalised field texts of recently checked messages, by file identity (path, size, mtime): a phrase or a
    key with punctuation checks hundreds of candidates, and the same search often comes again (paging, a
    refresh, a client typing). Bounded in characters (fts.verify_cache_mb; 0: off), least recently used dropped
    first. A path is only ever looked up by a search of the user whose Maildir holds it."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars
        self._items: OrderedDict[tuple[str, int, int, int], dict[str, str]] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def texts(self, key: tuple[str, int, int, int]) -> dict[str, str]:
        """The cached texts of one message file (a new, empty entry if none)."""
        with self._lock:
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

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._chars = 0


class TextSource(Protocol):
    """The text of one message, as the per-message check reads it: normalised (analysis.searchable) field texts."""

    def field(self, key: Key) -> str:
        """The normalised text `key` looks into."""
        ...

    def contains(self, key: Key, needle: str) -> bool:
        """`needle in self.field(key)` (a source may find it without building the field's text)."""
        ...

    def has_header(self, name: str) -> bool:
        """Whether the message has this header (what `HEADER name ""` asks)."""
        ...


class MaildirText:
    """The normalised field texts of one message file, read lazily from the Maildir. Header keys read and parse
    only the header block; BODY and TEXT decode the whole message. Texts are kept in `cache` by file identity."""

    _HEAD_BYTES = 65536

    def __init__(self, path: Path, settings: Settings, cache: TextCache | None = None) -> None:
        self.path = path
        self.settings = settings
        self._raw: bytes | None = None
        self._size: int | None = None
        self._head: Message | None = None
        self._parsed: ParsedMessage | None = None
        self._key: tuple[str, int, int, int] | None = None
        self._store = cache
        if cache is not None and cache.max_chars:
            st = path.stat(follow_symlinks=False)  # OSError: expunged since the scan (the caller's business)
            self._key = (str(path), st.st_size, st.st_mtime_ns, settings.fts.max_word_chars)
            self._cache = cache.texts(self._key)
        else:
            self._cache = {}

    def _norm(self, text: str) -> str:
        return searchable(normalise(text), self.settings.fts.max_word_chars)

    def raw(self) -> bytes:
        if self._raw is None:  # a regular file only, at most the message limit (maildir.read_message)
            message = read_message(self.path, self.settings.fts.max_message_bytes)
            self._raw, self._size = message.data, message.size
        return self._raw

    def headers(self) -> Message:
        if self._head is None:
            head = self._raw
            if head is None:
                head = read_message(self.path, self._HEAD_BYTES, self._HEAD_BYTES).data
                if b"\n\n" not in head and b"\r\n\r\n" not in head:  # headers longer than that: read it all
                    head = self.raw()
            self._head = parse_headers(head)
        return self._head

    def has_header(self, name: str) -> bool:
        return self.headers().get_all(name) is not None

    def _parsed_message(self) -> ParsedMessage:
        if self._parsed is None:
            raw = self.raw()
            self._parsed = parse_message(raw, self.settings, size=self._size)
        return self._parsed

    def field(self, key: Key) -> str:
        name = key.field if key.field != "header" else (key.header or "").lower()
        if name not in self._cache:
            if name in ("text", "body", "headers"):
                p = self._parsed_message()
                text = {"text": p.headers + "\n" + p.body, "body": p.body, "headers": p.headers}[name]
            else:  # any header: the header block is enough
                values = self.headers().get_all(name) or []
                text = "\n".join(decode_header_value(v) for v in values)
            self._cache[name] = self._norm(text)
            if self._key is not None and self._store is not None:
                self._store.added(self._key, len(self._cache[name]))
        return self._cache[name]

    def contains(self, key: Key, needle: str) -> bool:
        return needle in self.field(key)


class StoredText:
    """The field texts a Solr document keeps (Solr names: body, hdr, subject, from, to, cc, bcc)."""

    def __init__(self, fields: Mapping[str, str], max_word_chars: int) -> None:
        self.fields = fields
        self.max_word_chars = max_word_chars
        self._norm: dict[str, str] = {}

    def _raw(self, key: Key) -> str:
        name = key.field if key.field != "header" else (key.header or "").lower()
        if name == "text":
            return self.fields.get("hdr", "") + "\n" + self.fields.get("body", "")
        return self.fields.get("hdr" if name == "headers" else name, "")

    def field(self, key: Key) -> str:
        name = key.field if key.field != "header" else f"header:{key.header}"
        if name not in self._norm:
            self._norm[name] = searchable(normalise(self._raw(key)), self.max_word_chars)
        return self._norm[name]

    def contains(self, key: Key, needle: str) -> bool:
        return needle in self.field(key)

    def has_header(self, name: str) -> bool:
        return bool(self.fields.get(name.lower()))


class NoText(Exception):
    """The message has no text here to check a key against (kept texts that lack it, and no message file)."""


class KeptText:
    """The texts ftsd's indexer kept in a document (fts.store_texts, store/texts.py): already normalised, so a
    check is a string search. HEADER keys on a header left out of the index (fts.header_excludes) are not in them:
    those read the message file (`file()`; None: not readable here)."""

    def __init__(self, kept: KeptTexts, settings: Settings, file: Callable[[], TextSource | None],
                 indexed: dict[str, bool] | None = None) -> None:
        """`indexed`: header name -> whether its values are kept, shared by the checks of one search."""
        self.kept, self.settings, self._file = kept, settings, file
        self._source: TextSource | None = None
        self._fields: dict[str, str] = {}  # rendered once per field, however many keys of the query look at it
        self._indexed = {} if indexed is None else indexed

    def _kept(self, name: str) -> bool:
        kept = self._indexed.get(name)
        if kept is None:
            kept = self._indexed[name] = name in _OWN_FIELD_HEADERS or header_indexed(name, self.settings)
        return kept

    def _fallback(self) -> TextSource:
        if self._source is None:
            self._source = self._file()
            if self._source is None:
                raise NoText("a header not kept, and no message file")
        return self._source

    def field(self, key: Key) -> str:
        if key.field in ("text", "body", "headers"):
            if key.field not in self._fields:
                self._fields[key.field] = self.kept.field(key.field)
            return self._fields[key.field]
        name = key.field if key.field != "header" else (key.header or "").lower()
        if not self._kept(name):
            return self._fallback().field(key)
        if (cached := "header:" + name) not in self._fields:  # "header:": a header may be called "body"
            self._fields[cached] = self.kept.header(name)
        return self._fields[cached]

    def contains(self, key: Key, needle: str) -> bool:
        if key.field in ("text", "body", "headers"):  # found in place: no copy of the field's text per check
            return self.kept.holds(key.field, needle)
        return needle in self.field(key)

    def has_header(self, name: str) -> bool:
        name = name.lower()
        return self.kept.has_header(name) if self._kept(name) else self._fallback().has_header(name)


class IndexTexts:
    """Per UID of one mailbox of an index: the texts its document keeps (ftsd's own with fts.store_texts, already
    normalised; a Solr document's fields), else the message file when this host has the Maildir. `find_mailbox`
    is called once, on the first document that needs the file."""

    def __init__(self, searcher: Searcher, guid: str, settings: Settings, cache: TextCache,
                 find_mailbox: Callable[[], Mailbox | None]) -> None:
        self.searcher, self.guid, self.settings, self.cache = searcher, guid, settings, cache
        self._find = find_mailbox
        self._box: Mailbox | None | bool = False  # False: not looked for yet
        self.files = 0  # message files handed out (the checks that read the Maildir)
        self._mark = fingerprint(settings)
        self._blobs: dict[int, bytes] = {}  # prefetch()ed kept texts, still packed
        self._indexed: dict[str, bool] = {}  # header name -> kept (KeptText._kept)

    def prefetch(self, uids: Sequence[int]) -> None:
        """Read the kept texts of these UIDs at once (the next batch of checks), in place of the last batch's."""
        self._blobs = self.searcher.kept_blobs(self.guid, uids)

    def settle(self, uids: Sequence[int], judge: Callable[[KeptTexts], bool],
               check: Callable[[], None]) -> dict[int, bool]:
        """`judge` on the kept texts of those of `uids` (prefetch()ed) that have usable ones: one loop without a
        TextSource per message. The others (no kept texts, other settings, a judge that failed) are left to
        __call__. `check`: the deadline, before each. Raises: CorruptIndexError (a damaged blob)."""
        out: dict[int, bool] = {}
        blobs, kept_of, settings, mark = self._blobs, self.searcher.kept, self.settings, self._mark
        for uid in uids:
            blob = blobs.get(uid)
            if blob is None:
                continue
            check()
            kept = kept_of(blob, settings, mark)
            if kept is None:
                continue
            try:
                out[uid] = judge(kept)
            except UnusableIndexError:
                raise
            except Exception:  # noqa: BLE001 -- __call__'s check logs it and answers for this message alone
                continue
            del blobs[uid]
        return out

    def __call__(self, uid: int) -> TextSource | None:
        blob = self._blobs.pop(uid, None)
        if blob is not None:
            kept = self.searcher.kept(blob, self.settings, self._mark)
            if kept is not None:
                return KeptText(kept, self.settings, lambda: self.file(uid), self._indexed)
        got = self.searcher.message_texts(self.guid, uid, self.settings, self._mark)
        if isinstance(got, KeptTexts):
            return KeptText(got, self.settings, lambda: self.file(uid))
        fields = got.get("fields") if got else None
        if isinstance(fields, dict):
            return StoredText(fields, self.settings.fts.max_word_chars)
        return self.file(uid)

    def file(self, uid: int) -> TextSource | None:
        if self._box is False:
            self._box = self._find()
        path = self._box.messages.get(uid) if isinstance(self._box, Mailbox) else None
        if not path:
            return None
        self.files += 1
        return MaildirText(Path(path), self.settings, self.cache)


TextSources = Callable[[int], TextSource | None]  # UID -> its text (None: not readable here)


@dataclass(slots=True)
class MailboxSearch:
    """Evaluates one AST over one mailbox: index first, then each undecided message against its TextSource.

    `present`: the UIDs the answer is about (a Maildir scan; for the Solr bridge, the indexed ones). UIDs present
    but not indexed are checked one by one. `texts(uid)` gives a message's text; when it gives None, the
    message matches if `keep_unreadable` (the index's candidate answer stands) and else not (expunged)."""

    searcher: Searcher | None
    guid: str
    present: AbstractSet[int]
    texts: TextSources
    settings: Settings
    user: str = ""
    keep_unreadable: bool = False
    deadline: Deadline = field(default_factory=Deadline)
    shared: bool = False  # one search of several mailboxes of this index: keys are matched once for all of them
    analyzer: Analyzer = field(init=False)
    _plans: dict[int, _Plan] = field(default_factory=dict)
    _pieces: dict[str, QueryPieces] = field(default_factory=dict)  # per key string: analysed once, not per check

    def __post_init__(self) -> None:
        self.analyzer = Analyzer.of(self.settings.fts)

    def pieces(self, value: str) -> QueryPieces:
        found = self._pieces.get(value)
        if found is None:
            found = self._pieces[value] = self.analyzer.pieces(value)
        return found

    def plan(self, key: Key) -> _Plan:
        pieces = self.pieces(key.value)
        fields_, own = _fields(key, self.settings)
        if not pieces.text:  # "" matches every message; HEADER name "" those that have the header (RFC 3501)
            everything = Searcher.all_()
            return _Plan(everything, everything if key.field != "header" else None)
        if pieces.runs is None:
            nothing = Searcher.nothing()
            return _Plan(nothing, nothing)
        runs = pieces.runs
        if pieces.marks and key.field == "text":  # TEXT's marks are those of the header lines and the body
            fields_ = _TEXT_MARK_FIELDS
        elif pieces.marks and not own:  # another header's values join at spaces: look up what lies between
            runs = tuple(run for run in pieces.text.split(" ") if run)
        if not runs or not fields_:  # spaces only in a shared pool, or a header not indexed: all are candidates
            return _Plan(Searcher.all_(), None)
        assert self.searcher is not None  # plans are made for indexed mail only
        query = self._lookup(fields_, runs)
        if key.field == "headers" and pieces.exact and not pieces.marks:  # a hit in `headers` itself is sure
            return _Plan(query, self._lookup(("headers",), runs))
        return _Plan(query, query if own and pieces.exact else None)

    def _lookup(self, fields_: tuple[str, ...], runs: tuple[str, ...]) -> Query:
        assert self.searcher is not None
        exact_chars, partial = self.analyzer.exact_chars, self.analyzer.partial
        # `~0~0~0...`: thousands of runs, two distinct ones: each looked up once
        return Searcher.and_([self.searcher.piece(fields_, run, exact_chars, partial) for run in dict.fromkeys(runs)])

    def _plan_of(self, key: Key) -> _Plan:
        if id(key) not in self._plans:
            self.deadline.check()
            self._plans[id(key)] = self.plan(key)
        return self._plans[id(key)]

    def _where(self, node: Where) -> bool | None:
        """Whether a Where key matches this mailbox's messages: all (True), none (False), some UID (None)."""
        if node.user not in (None, self.user) or node.mailbox not in (None, self.guid):
            return False
        return True if node.uid is None else None

    def _all_exact(self, node: Node) -> bool:
        if isinstance(node, Key):
            return self._plan_of(node).exact
        if isinstance(node, All):
            return True
        if isinstance(node, Where):
            return self._where(node) is not None
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
        if isinstance(node, Where):  # only whole-mailbox ones here (see _all_exact)
            return Searcher.all_() if self._where(node) else Searcher.nothing()
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
            self.deadline.check()
            found = self.searcher.uids(plan.query, self.guid, self.shared) & universe
            if plan.exact:
                return found, found
            sure = self.searcher.uids(plan.sure, self.guid, self.shared) & found if plan.sure is not None else set()
            return sure, found
        if isinstance(node, All):
            return universe, universe
        if isinstance(node, Where):
            whole = self._where(node)
            found = universe if whole else set() if whole is False or node.uid is None else {node.uid} & universe
            return found, found
        if isinstance(node, And):
            pairs = [self._sets(n, universe) for n in node.items]
            return reduce(set.__and__, (p[0] for p in pairs)), reduce(set.__and__, (p[1] for p in pairs))
        if isinstance(node, Or):
            (s1, m1), (s2, m2) = self._sets(node.left, universe), self._sets(node.right, universe)
            return s1 | s2, m1 | m2
        sure, maybe = self._sets(node.item, universe)
        return universe - maybe, universe - sure

    def run(self, node: Node) -> Answer:
        present = self.present
        everything = self.searcher.indexed_uids(self.guid) if self.searcher else set()
        # The Solr bridge passes the index's own (cached) set, and an up-to-date mailbox has the same UIDs: no
        # 40,000-element copies per search then (== costs no new set; unequal sizes are told at once).
        whole = present is everything or present == everything
        indexed = everything if whole else everything & present
        if indexed and whole and self._all_exact(node):  # the common case: the index alone, in UID order
            assert self.searcher is not None
            found = self.searcher.sorted_uids(self._query(node), self.guid, self.shared)
            if self.searcher.indexed_uids(self.guid) is not everything:  # reopened meanwhile: keep to `present`
                found = [uid for uid in found if uid in present]
            return Answer(found, 0)
        if indexed and self._all_exact(node):
            assert self.searcher is not None
            sure = self.searcher.uids(self._query(node), self.guid, self.shared) & indexed
            check: set[int] = set()
        elif indexed:
            sure, maybe = self._sets(node, indexed)
            check = maybe - sure
        else:
            sure, check = set(), set()
        if not whole:
            check |= present - indexed  # not indexed yet: only the message's text can tell
        verified: set[int] = set()
        prefetch = getattr(self.texts, "prefetch", None)  # IndexTexts: kept texts read a batch at a time
        settle = getattr(self.texts, "settle", None) if self._on_kept(node) else None
        ordered = sorted(check)
        for start in range(0, len(ordered), CHECK_BATCH):
            batch = ordered[start : start + CHECK_BATCH]
            if prefetch is not None:
                prefetch(batch)
            if settle is not None:  # the kept texts answer the whole query: no TextSource per message
                done: dict[int, bool] = settle(batch, self._judge(node), self.deadline.check)
                verified.update(uid for uid, yes in done.items() if yes)
                batch = [uid for uid in batch if uid not in done]
            verified.update(uid for uid in batch if self._verify(uid, node))
        return Answer(sorted(sure | verified), len(check))

    def _on_kept(self, node: Node) -> bool:
        """Whether kept texts alone answer `node` (evaluate_kept): no Where key, no header left out of them."""
        if isinstance(node, Key):
            if node.field != "header":
                return True
            name = (node.header or "").lower()
            return name in _OWN_FIELD_HEADERS or header_indexed(name, self.settings)
        if isinstance(node, All):
            return True
        if isinstance(node, And):
            return all(map(self._on_kept, node.items))
        if isinstance(node, Or):
            return self._on_kept(node.left) and self._on_kept(node.right)
        return isinstance(node, Not) and self._on_kept(node.item)

    def _judge(self, node: Node) -> Callable[[KeptTexts], bool]:
        pieces = self.pieces
        if isinstance(node, Key) and node.field in ("text", "body", "headers"):  # the usual shape: one key, in place
            wanted = pieces(node.value)
            if wanted.runs is not None:
                name, needle = node.field, wanted.text
                return lambda kept: kept.holds(name, needle)
        return lambda kept: evaluate_kept(node, kept, pieces)

    def _verify(self, uid: int, node: Node) -> bool:
        self.deadline.check()
        try:
            text = self.texts(uid)
            if text is None:
                log.info("%s %s UID %d: no text to check the match against, %s", self.user, self.guid, uid,
                         "kept" if self.keep_unreadable else "left out")
                return self.keep_unreadable
            return evaluate(node, text, self.pieces, (self.user, self.guid, uid))
        except FileNotFoundError as exc:  # expunged since the scan: it is no longer a match
            log.info("%s UID %d vanished during the search: %s", self.guid, uid, exc)
            return False
        except NoText as exc:
            log.info("%s %s UID %d: %s, %s", self.user, self.guid, uid, exc,
                     "kept" if self.keep_unreadable else "left out")
            return self.keep_unreadable
        except UnusableIndexError:  # a damaged kept text: the index is set aside, the search answers from the mail
            raise
        except Exception as exc:  # one unreadable message costs only itself, never the search
            log.warning("%s %s UID %d could not be checked (not a match): %s: %s", self.user, self.guid, uid,
                        type(exc).__name__, exc)
            return False


def evaluate_kept(node: Node, kept: KeptTexts, pieces: Callable[[str], QueryPieces]) -> bool:
    """evaluate() on kept texts directly (no Where key, every header kept: MailboxSearch._on_kept), found in
    place. Raises CorruptIndexError (a damaged header table)."""
    if isinstance(node, Key):
        wanted = pieces(node.value)
        field_ = node.field
        if field_ == "header":
            name = (node.header or "").lower()
            if not wanted.text:
                return kept.has_header(name)
            return wanted.runs is not None and wanted.text in kept.header(name)
        if wanted.runs is None:
            return False
        if field_ in ("text", "body", "headers"):
            return kept.holds(field_, wanted.text)
        return wanted.text in kept.header(field_)
    if isinstance(node, All):
        return True
    if isinstance(node, And):
        return all(evaluate_kept(n, kept, pieces) for n in node.items)
    if isinstance(node, Or):
        return evaluate_kept(node.left, kept, pieces) or evaluate_kept(node.right, kept, pieces)
    assert isinstance(node, Not)
    return not evaluate_kept(node.item, kept, pieces)


def evaluate(node: Node, text: TextSource, pieces: Callable[[str], QueryPieces],
             ident: tuple[str, str, int] = ("", "", 0)) -> bool:
    """The AST on one message's text: substring semantics of design §4. `ident`: (user, mailbox GUID, UID)."""
    if isinstance(node, Key):
        wanted = pieces(node.value)
        if not wanted.text and node.field == "header":
            return text.has_header(node.header or "")
        return wanted.runs is not None and text.contains(node, wanted.text)
    if isinstance(node, All):
        return True
    if isinstance(node, Where):
        return all(want is None or want == have for want, have in
                   ((node.user, ident[0]), (node.mailbox, ident[1]), (node.uid, ident[2])))
    if isinstance(node, And):
        return all(evaluate(n, text, pieces, ident) for n in node.items)
    if isinstance(node, Or):
        return evaluate(node.left, text, pieces, ident) or evaluate(node.right, text, pieces, ident)
    assert isinstance(node, Not)
    return not evaluate(node.item, text, pieces, ident)
