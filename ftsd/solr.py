"""Solr bridge: Dovecot's stock `fts_solr` plugin -> ftsd's per-user index, and its searches -> exact UIDs.

In: the requests Dovecot 2.3 sends to `<url>select` (query-string parameters) and `<url>update` (a streamed XML
body); out: the XML (or JSON) replies it parses (docs/dovecot-solr-protocol.md). No web framework here: the
routes in api/solr.py hand over parameters and body chunks and send back a SolrReply.

Indexing: each `<doc>` (uid, box = mailbox GUID, user, and the field texts body/hdr/subject/from/to/cc/bcc)
becomes one document of that user's index, analysed exactly as the Maildir indexer does (hdr goes to the
`headers` field), with the raw field texts kept in the document data. Re-adding an id replaces the document, as
Solr does; Solr atomic updates (`<field update="set|add">`) merge into the stored texts instead.

Searching: Lucene-classic queries (`field:value`, `\\`-escapes, `""`, `~`, `( )`, `+ - NOT AND OR`) are taken
as logic, IMAP-style: `-a OR -b` is (not a) or (not b). Values match as case-insensitive substrings of the
normalised field text (design §4), never by word or stem. Dovecot trusts the answer as definite, so whatever the
index alone cannot settle (phrases, punctuation between runs, strings longer than 40 characters, `field:""`) is checked
against the stored field texts before a UID is returned (documents written by ftsd's own Maildir indexer keep no
text: for them the message is read from the Maildir when this host has it).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any
from xml.parsers import expat
from xml.sax.saxutils import escape

from ftsd.analysis import Analyzer, QueryPieces, normalise, searchable
from ftsd.errors import FtsdError, IndexLockedError, QueryError
from ftsd.indexer.sync import IndexReport
from ftsd.maildir import Mailbox, list_mailboxes, read_uidlist, scan_mailbox
from ftsd.message import parse_message
from ftsd.service import index_path, open_searcher, open_writer, uidlist_dir
from ftsd.settings import Settings
from ftsd.store.schema import Document, build_document
from ftsd.store.searcher import Query, Searcher
from ftsd.store.writer import IndexWriter
from ftsd.userdb import User, lookup_user

log = logging.getLogger(__name__)

# Solr field -> ftsd index field. `hdr` (every header line "Name: value") goes to `headers`.
TEXT_FIELDS = {"body": "body", "hdr": "headers", "subject": "subject", "from": "from", "to": "to", "cc": "cc",
               "bcc": "bcc"}
KEY_FIELDS = ("uid", "box", "user", "id")
# `hdr` candidates also come from the header fields: ftsd's own indexer keeps their values out of `headers`.
_HDR_CANDIDATES = ("headers", "subject", "from", "to", "cc", "bcc")
MAX_ROWS = 1_000_000
_GUID = re.compile(r"[0-9A-Za-z]{1,64}")


# == Lucene query AST ===========================================================================================

@dataclass(frozen=True, slots=True)
class Term:
    """`field:value` (value unescaped; "" for `field:""`)."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class MatchAll:
    """`*:*`, and the implicit base of a purely negative query."""


@dataclass(frozen=True, slots=True)
class AndQ:
    items: tuple[SolrNode, ...]


@dataclass(frozen=True, slots=True)
class OrQ:
    items: tuple[SolrNode, ...]


@dataclass(frozen=True, slots=True)
class NotQ:
    item: SolrNode


SolrNode = Term | MatchAll | AndQ | OrQ | NotQ

_LOCAL_PARAMS = re.compile(r"\{!([^}]*)\}")
_FIELD = re.compile(r"((?:[^\s()\"\\:+\-!]|\\.)(?:[^\s()\"\\:]|\\.)*):(?=\S)", re.S)
# Dovecot escapes a space in a value but not a newline or tab: only a plain space ends a term.
_WORD = re.compile(r"(?:[^ ()\"\\]|\\.)+", re.S)
_QUOTED = re.compile(r"\"((?:[^\"\\]|\\.)*)\"", re.S)
_SUFFIX = re.compile(r"(?:~[\d.]*|\^[\d.]+)+")
_ESCAPED = re.compile(r"\\(.)", re.S)
_OPERATORS = {"AND": "and", "&&": "and", "OR": "or", "||": "or", "NOT": "not"}


def _unescape(text: str) -> str:
    return _ESCAPED.sub(r"\1", text)


def _strip_suffix(word: str) -> str:
    """Drop an unescaped fuzzy `~[n]` or boost `^n` suffix: substring matching has no use for them."""
    i = 0
    while i < len(word):
        if word[i] == "\\":
            i += 2
            continue
        if word[i] in "~^" and _SUFFIX.fullmatch(word, i):
            return word[:i]
        i += 1
    return word


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, value): ( ) op not mod term group; a term's value is 'field\\0value'."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "()":
            out.append((c, c))
            i += 1
        elif c in "+-!" and i + 1 < len(text) and not text[i + 1].isspace():
            out.append(("not", "!") if c == "!" else ("mod", c))
            i += 1
        elif m := _FIELD.match(text, i):
            name, i = _unescape(m[1]), m.end()
            if text[i] == "(":
                out.append(("group", name))
            elif q := _QUOTED.match(text, i):
                i = q.end() + (len(s[0]) if (s := _SUFFIX.match(text, q.end())) else 0)
                out.append(("term", name + "\0" + _unescape(q[1])))
            else:
                w = _WORD.match(text, i)
                assert w is not None  # _FIELD's look-ahead guarantees a non-space character
                i = w.end()
                out.append(("term", name + "\0" + _unescape(_strip_suffix(w[0]))))
        elif m := _WORD.match(text, i):
            i = m.end()
            op = _OPERATORS.get(m[0])
            out.append(("op", op) if op in ("and", "or") else ("not", "!") if op else ("term", "\0" + m[0]))
        else:
            raise QueryError(f"unexpected {c!r} at position {i + 1} of Solr query {text!r}")
    return out


class _LuceneParser:
    """Recursive descent over the tokens. Explicit AND/OR are logic (AND binds tighter); a level of clauses
    with no operator at all is a Lucene boolean query (`+` required, `-` excluded, others optional unless
    the default operator is AND)."""

    def __init__(self, text: str, default_and: bool) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.default_and = default_and

    def parse(self) -> SolrNode:
        node = self._level(None, 0)
        if self.i < len(self.toks):
            raise QueryError(f"unbalanced ')' in Solr query {self.text!r}")
        return node

    def _peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _level(self, default_field: str | None, depth: int) -> SolrNode:
        if depth > 100:
            raise QueryError("Solr query nested too deeply")
        items: list[tuple[str | None, SolrNode]] = []
        ops: list[str | None] = []
        pending: str | None = None
        while (tok := self._peek()) is not None and tok[0] != ")":
            if tok[0] == "op":
                if not items or pending:
                    raise QueryError(f"misplaced {tok[1].upper()} in Solr query {self.text!r}")
                pending = tok[1]
                self.i += 1
                continue
            mod = None
            if tok[0] in ("mod", "not"):
                mod = "-" if tok[0] == "not" else tok[1]
                self.i += 1
            clause = self._clause(default_field, depth)
            if items:
                ops.append(pending)
            items.append((mod, clause))
            pending = None
        if pending or not items:
            raise QueryError(f"incomplete Solr query {self.text!r}")
        return self._combine(items, ops)

    def _clause(self, default_field: str | None, depth: int) -> SolrNode:
        tok = self._peek()
        self.i += 1
        if tok is None:
            raise QueryError(f"Solr query {self.text!r} ends where a clause was expected")
        kind, value = tok
        if kind in ("(", "group"):
            if kind == "group":
                if self._peek() != ("(", "("):
                    raise QueryError(f"expected '(' after {value}: in Solr query {self.text!r}")
                self.i += 1
                default_field = value
            node = self._level(default_field, depth + 1)
            if self._peek() != (")", ")"):
                raise QueryError(f"unbalanced '(' in Solr query {self.text!r}")
            self.i += 1
            return node
        if kind != "term":
            raise QueryError(f"unexpected {value!r} in Solr query {self.text!r}")
        name, _, text = value.partition("\0")
        if not name:
            if text == "*" and default_field is None:
                return MatchAll()
            if default_field is None:
                raise QueryError(f"term {text!r} without a field in Solr query {self.text!r}")
            name, text = default_field, _unescape(_strip_suffix(text))
        if name == "*" and text == "*":
            return MatchAll()
        if name not in TEXT_FIELDS and name not in KEY_FIELDS:
            raise QueryError(f"undefined field {name!r} in Solr query {self.text!r}")
        return Term(name, text)

    def _combine(self, items: list[tuple[str | None, SolrNode]], ops: list[str | None]) -> SolrNode:
        if all(op is None for op in ops):
            required = [n for m, n in items if m == "+" or (m is None and self.default_and)]
            optional = [n for m, n in items if m is None and not self.default_and]
            parts = required + [NotQ(n) for m, n in items if m == "-"]
            if optional and not required:
                parts.append(_or(optional))
            if not required and not optional:
                parts.insert(0, MatchAll())
            return _and(parts)
        nodes = [NotQ(n) if m == "-" else n for m, n in items]
        groups = [[nodes[0]]]
        for op, node in zip(ops, nodes[1:], strict=True):
            if (op or ("and" if self.default_and else "or")) == "and":
                groups[-1].append(node)
            else:
                groups.append([node])
        return _or([_and(g) for g in groups])


def _and(nodes: Sequence[SolrNode]) -> SolrNode:
    return nodes[0] if len(nodes) == 1 else AndQ(tuple(nodes))


def _or(nodes: Sequence[SolrNode]) -> SolrNode:
    return nodes[0] if len(nodes) == 1 else OrQ(tuple(nodes))


def parse_lucene(text: str, default_op: str = "OR") -> SolrNode:
    """A Lucene-classic query (with optional `{!lucene q.op=AND}` local params) -> AST. Raises: QueryError."""
    text = text.strip()
    if m := _LOCAL_PARAMS.match(text):
        for item in m[1].split():
            key, _, value = item.partition("=")
            if key == "q.op":
                default_op = value.upper()
        text = text[m.end() :]
    if not text.strip():
        raise QueryError("empty Solr query")
    return _LuceneParser(text, default_op == "AND").parse()


# == scope: which user, which mailboxes =========================================================================

def _values_of(node: SolrNode, name: str) -> frozenset[str] | None:
    """The values `name` must take for node to match, or None when node does not restrict it."""
    if isinstance(node, Term):
        return frozenset([node.value]) if node.field == name else None
    if isinstance(node, AndQ):
        known = [v for v in (_values_of(n, name) for n in node.items) if v is not None]
        return reduce(frozenset.__and__, known) if known else None
    if isinstance(node, OrQ):
        each = [_values_of(n, name) for n in node.items]
        return None if any(v is None for v in each) else reduce(frozenset.__or__, (v for v in each if v is not None))
    return None


def _scope_user(node: SolrNode) -> str:
    users = _values_of(node, "user")
    if users is None or len(users) != 1:
        raise QueryError("a Solr query must name exactly one user (user:NAME in q or fq)")
    (name,) = users
    if not name:
        raise QueryError("public namespaces (empty user) are not supported by ftsd's Solr endpoint")
    return name


# == evaluation =================================================================================================

Fields = dict[str, str]


class _BoxSearch:
    """One query over one mailbox: (sure, maybe) UID sets from the index, maybe - sure checked on stored text."""

    def __init__(self, searcher: Searcher, analyzer: Analyzer, user: str, guid: str,
                 maildir: Callable[[int], Fields | None]) -> None:
        self.searcher, self.analyzer, self.user, self.guid = searcher, analyzer, user, guid
        self.maildir = maildir
        self.universe = searcher.indexed_uids(guid)
        self.pieces: dict[str, QueryPieces] = {}

    def _pieces(self, value: str) -> QueryPieces:
        if value not in self.pieces:
            self.pieces[value] = self.analyzer.pieces(value)
        return self.pieces[value]

    def run(self, node: SolrNode) -> set[int]:
        if not self.universe:
            return set()
        sure, maybe = self._sets(node)
        return sure | {uid for uid in maybe - sure if self._verify(uid, node)}

    def _key_matches(self, term: Term, uid: int | None) -> bool:
        if term.field == "user":
            return term.value == self.user
        if term.field == "box":
            return term.value == self.guid
        if term.field == "uid":
            return term.value.isdigit() and (uid is None or int(term.value) == uid)
        uid_s, _, rest = term.value.partition("/")
        box, _, user = rest.partition("/")
        return box == self.guid and user == self.user and uid_s.isdigit() and (uid is None or int(uid_s) == uid)

    def _sets(self, node: SolrNode) -> tuple[set[int], set[int]]:
        u = self.universe
        if isinstance(node, MatchAll):
            return u, u
        if isinstance(node, Term) and node.field in KEY_FIELDS:
            if not self._key_matches(node, None):
                return set(), set()
            if node.field in ("uid", "id"):
                found = {int(node.value.partition("/")[0])} & u
                return found, found
            return u, u
        if isinstance(node, Term):
            pieces = self._pieces(node.value)
            if pieces.runs is None:
                return set(), set()
            if not pieces.text or not pieces.runs:  # `field:""` or only punctuation: read every document
                return set(), u
            found = self._lookup((TEXT_FIELDS[node.field],), pieces.runs)
            maybe = found | self._lookup(_HDR_CANDIDATES, pieces.runs) if node.field == "hdr" else found
            return (found if pieces.exact else set()), maybe
        if isinstance(node, AndQ):
            pairs = [self._sets(n) for n in node.items]
            return reduce(set.__and__, (p[0] for p in pairs)), reduce(set.__and__, (p[1] for p in pairs))
        if isinstance(node, OrQ):
            pairs = [self._sets(n) for n in node.items]
            return reduce(set.__or__, (p[0] for p in pairs)), reduce(set.__or__, (p[1] for p in pairs))
        sure, maybe = self._sets(node.item)
        return u - maybe, u - sure

    def _lookup(self, fields: Sequence[str], runs: Sequence[str]) -> set[int]:
        exact_chars, partial = self.analyzer.exact_chars, self.analyzer.partial
        query: Query = Searcher.and_([self.searcher.piece(fields, run, exact_chars, partial) for run in runs])
        return self.searcher.uids(query, self.guid) & self.universe

    def _verify(self, uid: int, node: SolrNode) -> bool:
        data = self.searcher.document_data(self.guid, uid)
        fields = data.get("fields") if data else None
        if not isinstance(fields, dict):  # written by ftsd's Maildir indexer, which keeps no text
            fields = self.maildir(uid)
        if fields is None:  # and the message is not readable here: the index answer stands (a superset)
            log.warning("%s %s UID %d: no text to check the match against, kept", self.user, self.guid, uid)
            return True
        cache: dict[str, str] = {}
        return self._eval(node, uid, fields, cache)

    def _eval(self, node: SolrNode, uid: int, fields: Fields, cache: dict[str, str]) -> bool:
        if isinstance(node, MatchAll):
            return True
        if isinstance(node, Term) and node.field in KEY_FIELDS:
            return self._key_matches(node, uid)
        if isinstance(node, Term):
            pieces = self._pieces(node.value)
            raw = fields.get(node.field, "")
            if pieces.runs is None:
                return False
            if not pieces.text:
                return bool(raw)  # IMAP `SUBJECT ""`: the header is there
            if node.field not in cache:
                cache[node.field] = searchable(normalise(raw), self.analyzer.max_word_chars)
            return pieces.text in cache[node.field]
        if isinstance(node, AndQ):
            return all(self._eval(n, uid, fields, cache) for n in node.items)
        if isinstance(node, OrQ):
            return any(self._eval(n, uid, fields, cache) for n in node.items)
        return not self._eval(node.item, uid, fields, cache)


class _MaildirTexts:
    """Field texts of messages indexed by ftsd's own Maildir indexer, read from the Maildir (found lazily by GUID)
    when this host has it: such documents keep no text, and a match that needs checking must still be exact."""

    def __init__(self, settings: Settings, user: User, guid: str) -> None:
        self.settings, self.user, self.guid = settings, user, guid
        self._box: Mailbox | None | bool = False  # False: not looked for yet

    def _mailbox(self) -> Mailbox | None:
        if self._box is False:
            self._box = None
            try:
                for name, path in list_mailboxes(self.user.maildir):
                    listed = read_uidlist(path / "dovecot-uidlist")
                    if listed is None or listed.guid == self.guid:
                        box = scan_mailbox(self.user.maildir, name, uidlist_dir(self.user))
                        if box.guid == self.guid:
                            self._box = box
                            break
            except FtsdError as exc:
                log.info("%s: Maildir not readable for checking matches: %s", self.user.name, exc)
        return self._box if isinstance(self._box, Mailbox) else None

    def __call__(self, uid: int) -> Fields | None:
        box = self._mailbox()
        path = box.messages.get(uid) if box else None
        try:
            raw = path.read_bytes() if path else None
        except OSError:
            raw = None
        if raw is None:
            return None
        p = parse_message(raw, self.settings)
        return {"body": p.body, "hdr": p.headers, "subject": p.subject, "from": p.from_, "to": p.to, "cc": p.cc,
                "bcc": p.bcc}


@dataclass(frozen=True, slots=True)
class Hit:
    box: str
    uid: int
    user: str


def search(settings: Settings, node: SolrNode) -> list[Hit]:
    """Every document of the query's user (and mailboxes) matching node, unsorted. Raises: QueryError, StoreError."""
    name = _scope_user(node)
    user = lookup_user(settings, name)
    searcher = open_searcher(user)
    if searcher is None:  # nothing indexed yet for this user: no hits (the last-UID lookup then means 0)
        return []
    try:
        analyzer = Analyzer.of(settings.fts)
        boxes = _values_of(node, "box")
        guids = sorted(boxes) if boxes is not None else searcher.guids()
        hits: list[Hit] = []
        for guid in guids:
            if _GUID.fullmatch(guid):
                box = _BoxSearch(searcher, analyzer, name, guid, _MaildirTexts(settings, user, guid))
                hits += [Hit(guid, uid, name) for uid in box.run(node)]
        return hits
    finally:
        searcher.close()


# == select =====================================================================================================

@dataclass(frozen=True, slots=True)
class SolrReply:
    """What a route sends back: status, body, content type."""

    status: int
    body: bytes
    media_type: str = "application/xml; charset=UTF-8"


def _param(params: Sequence[tuple[str, str]], name: str, default: str) -> str:
    values = [v for k, v in params if k == name]
    return values[-1] if values else default


def _sort_key(spec: str) -> list[tuple[str, bool]]:
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, direction = item.partition(" ")
        direction = direction.strip().lower() or "asc"
        if name not in ("uid", "box", "user", "id", "score") or direction not in ("asc", "desc"):
            raise QueryError(f"cannot sort on {item!r} (uid, box, user, id, score; asc or desc)")
        out.append((name, direction == "desc"))
    return out


def _sorted(hits: list[Hit], spec: str) -> list[Hit]:
    keys: dict[str, Callable[[Hit], Any]] = {
        "uid": lambda h: h.uid, "box": lambda h: h.box, "user": lambda h: h.user,
        "id": lambda h: f"{h.uid}/{h.box}/{h.user}", "score": lambda h: 0,
    }
    for name, desc in reversed(_sort_key(spec) or [("box", False), ("uid", False)]):
        hits.sort(key=keys[name], reverse=desc)
    return hits


def _doc_fields(hit: Hit, fl: Sequence[str]) -> list[tuple[str, str, str]]:
    """(xml type, name, text) of the requested stored fields of one hit."""
    out = []
    for name in fl:
        if name == "uid":
            out.append(("long", "uid", str(hit.uid)))
        elif name == "box":
            out.append(("str", "box", hit.box))
        elif name == "user":
            out.append(("str", "user", hit.user))
        elif name == "id":
            out.append(("str", "id", f"{hit.uid}/{hit.box}/{hit.user}"))
        elif name == "score":
            out.append(("float", "score", "1.0"))
    return out


def _fl(spec: str) -> list[str]:
    names = [n for n in re.split(r"[\s,]+", spec) if n]
    return ["id", "uid", "box", "user"] if not names or "*" in names else names


def select(settings: Settings, params: Sequence[tuple[str, str]]) -> SolrReply:
    """Answer one `select` request (decoded query-string or form parameters). Raises: QueryError, StoreError."""
    started = time.monotonic()
    default_op = _param(params, "q.op", "OR").upper()
    q = parse_lucene(_param(params, "q", "*:*"), default_op)
    filters = [parse_lucene(v) for k, v in params if k == "fq" and v.strip()]
    node = _and([q, *filters])
    try:
        rows = min(int(_param(params, "rows", "10")), MAX_ROWS)
        start = int(_param(params, "start", "0"))
    except ValueError as exc:
        raise QueryError(f"rows and start must be integers: {exc}") from None
    hits = _sorted(search(settings, node), _param(params, "sort", "uid asc"))
    page = hits[max(start, 0) : max(start, 0) + max(rows, 0)]
    fl = _fl(_param(params, "fl", "*"))
    qtime = int((time.monotonic() - started) * 1000)
    if _param(params, "wt", "xml") == "json":
        docs = [{name: int(text) if kind == "long" else float(text) if kind == "float" else text
                 for kind, name, text in _doc_fields(h, fl)} for h in page]
        body = {"responseHeader": {"status": 0, "QTime": qtime},
                "response": {"numFound": len(hits), "start": start, "docs": docs}}
        return SolrReply(200, json.dumps(body).encode(), "application/json; charset=UTF-8")
    lines = [f'<result name="response" numFound="{len(hits)}" start="{start}">']
    for hit in page:
        inner = "".join(f'<{t} name="{n}">{escape(v)}</{t}>' for t, n, v in _doc_fields(hit, fl))
        lines.append(f"<doc>{inner}</doc>")
    lines.append("</result>")
    return SolrReply(200, _response_xml(qtime, "\n".join(lines)))


def _response_xml(qtime: int, inner: str = "") -> bytes:
    head = f'<lst name="responseHeader"><int name="status">0</int><int name="QTime">{qtime}</int></lst>'
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<response>\n{head}\n{inner}\n</response>\n'.encode()


def error_reply(status: int, message: str) -> SolrReply:
    """A Solr-style error body (Dovecot only looks at the status; a human reads the message)."""
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<response>\n<lst name="error">'
            f'<str name="msg">{escape(message)}</str><int name="code">{status}</int></lst>\n</response>\n')
    return SolrReply(status, body.encode())


def update_reply(started: float) -> SolrReply:
    return SolrReply(200, _response_xml(int((time.monotonic() - started) * 1000)))


# == update =====================================================================================================

@dataclass(slots=True)
class _Doc:
    """One `<doc>` being read: key fields, text fields, and the atomic-update operation of each text field."""

    keys: dict[str, str] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)
    chars: dict[str, int] = field(default_factory=dict)
    updates: dict[str, str] = field(default_factory=dict)  # field -> set | add (Solr atomic update)


@dataclass(frozen=True, slots=True)
class _Op:
    """A pending change of one user's index: add (document ready, or fields to merge), delete, delete by query."""

    kind: str  # "add" | "merge" | "delete" | "query"
    user: str
    guid: str = ""
    uid: int = 0
    document: Document | None = None
    fields: dict[str, str] = field(default_factory=dict)
    updates: dict[str, str] = field(default_factory=dict)
    query: SolrNode | None = None


_USER_LOCKS: dict[Path, threading.Lock] = {}
_USER_LOCKS_GUARD = threading.Lock()


def _user_lock(path: Path) -> threading.Lock:
    """One in-process lock per index: concurrent update requests for a user queue here, not on Xapian's lock."""
    with _USER_LOCKS_GUARD:
        return _USER_LOCKS.setdefault(path, threading.Lock())


class UpdateSession:
    """One `update` request: `feed()` body chunks as they arrive, then `close()`. Documents are analysed as soon as
    their `</doc>` is read and written in batches (by count and by size), so memory stays bounded whatever the
    size of the POST. Everything is committed -- searchable -- before close() returns: Dovecot may search right
    after an add, and with `soft_commit=no` it never sends a commit. Raises: QueryError, UnknownUserError,
    IndexLockedError, StoreError."""

    def __init__(self, settings: Settings, *, flush_docs: int = 500, flush_bytes: int = 32_000_000) -> None:
        self.settings = settings
        self.analyzer = Analyzer.of(settings.fts)
        self.flush_docs, self.flush_bytes = flush_docs, flush_bytes
        self.pending: list[_Op] = []
        self.pending_bytes = 0
        self.added = self.deleted = 0
        self._users: dict[str, User] = {}
        self._parser = expat.ParserCreate("UTF-8")
        self._parser.buffer_text = True
        self._parser.buffer_size = 1 << 16
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end
        self._parser.CharacterDataHandler = self._text
        self._parser.StartDoctypeDeclHandler = self._no_dtd
        self._parser.EntityDeclHandler = self._no_dtd
        self._stack: list[str] = []
        self._doc: _Doc | None = None
        self._field: tuple[str, str] | None = None  # (name, update op) of the open <field>
        self._chars: list[str] | None = None  # text of the open <field>, <id> or <query>
        self._room = 0  # characters the open <field> may still add
        self._started = False

    # -- XML events ---------------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self._started = self._started or bool(data.strip())
        try:
            self._parser.Parse(data, False)
        except expat.ExpatError as exc:
            raise QueryError(f"malformed update XML: {exc}") from None
        self._maybe_flush()

    def close(self) -> None:
        if not self._started:  # no body at all: `update?commit=true` and the like
            return
        try:
            self._parser.Parse(b"", True)
        except expat.ExpatError as exc:
            raise QueryError(f"malformed update XML: {exc}") from None
        self.flush()

    def _no_dtd(self, *args: Any) -> None:
        raise QueryError("DTDs and entity declarations are not accepted in update XML")

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        parent = self._stack[-1] if self._stack else ""
        self._stack.append(name)
        if name == "doc" and parent == "add":
            self._doc = _Doc()
        elif name == "field" and parent == "doc" and self._doc is not None:
            update = attrs.get("update", "")
            if update not in ("", "set", "add"):
                raise QueryError(f"atomic update {update!r} is not supported (set, add)")
            if attrs.get("null") == "true":
                update = "set"
            self._field, self._chars = (attrs.get("name", ""), update), []
            self._room = self.settings.fts.max_text_chars
        elif name in ("id", "query") and parent == "delete":
            self._chars = []

    def _text(self, data: str) -> None:
        if self._chars is None:
            return
        if self._field is not None:  # one huge field must not fill the memory: keep what will be indexed
            data = data[: self._room]
            self._room -= len(data)
        if data:
            self._chars.append(data)

    def _end(self, name: str) -> None:
        self._stack.pop()
        if name == "field" and self._field is not None and self._doc is not None:
            self._end_field(self._doc, *self._field, "".join(self._chars or ()))
            self._field, self._chars = None, None
        elif name == "doc" and self._doc is not None and self._stack[-1:] == ["add"]:
            self._queue(self._end_doc(self._doc))
            self._doc = None
        elif name in ("id", "query") and self._chars is not None:
            text, self._chars = "".join(self._chars).strip(), None
            self._queue(self._delete_id(text) if name == "id" else self._delete_query(text))

    # -- documents ----------------------------------------------------------------------------------------------
    def _end_field(self, doc: _Doc, name: str, update: str, text: str) -> None:
        if name in KEY_FIELDS:
            doc.keys[name] = text.strip() if name != "user" else text
        elif name in TEXT_FIELDS:
            room = self.settings.fts.max_text_chars - doc.chars.get(name, 0)
            parts = doc.texts.setdefault(name, [])
            if room > 0 and text:
                parts.append(text[:room])
                doc.chars[name] = doc.chars.get(name, 0) + min(len(text), room)
            if update:
                doc.updates[name] = update
        else:
            log.debug("Solr update: field %r ignored", name)

    def _identity(self, keys: dict[str, str]) -> tuple[str, str, int]:
        uid_s, _, rest = keys.get("id", "").partition("/")
        box_s, _, user_s = rest.partition("/")
        uid_text, box, user = keys.get("uid", uid_s), keys.get("box", box_s), keys.get("user", user_s)
        if not uid_text.isdigit() or int(uid_text) == 0:
            raise QueryError(f"document without a valid uid: {keys}")
        if not _GUID.fullmatch(box):
            raise QueryError(f"document without a valid box (mailbox GUID): {keys}")
        if not user:
            raise QueryError("public namespaces (empty user) are not supported by ftsd's Solr endpoint")
        self._user(user)
        return user, box, int(uid_text)

    def _end_doc(self, doc: _Doc) -> _Op:
        user, guid, uid = self._identity(doc.keys)
        texts = {name: text for name, parts in doc.texts.items() if (text := "".join(parts))}
        if doc.updates:
            return _Op("merge", user, guid, uid, fields=texts, updates=doc.updates)
        return _Op("add", user, guid, uid, self._document(guid, uid, texts))

    def _document(self, guid: str, uid: int, texts: dict[str, str]) -> Document:
        terms = {TEXT_FIELDS[name]: self.analyzer.terms(text) for name, text in texts.items() if text}
        return build_document(guid, uid, terms, {"uid": uid, "source": "solr", "fields": texts})

    def _delete_id(self, text: str) -> _Op | None:
        uid_s, _, rest = text.partition("/")
        guid, _, user = rest.partition("/")
        if not user:  # public namespace: never indexed here, nothing to delete
            log.info("Solr delete of %r ignored: no user", text)
            return None
        if not uid_s.isdigit() or not _GUID.fullmatch(guid):
            raise QueryError(f"cannot delete id {text!r}: expected uid/box/user")
        self._user(user)
        return _Op("delete", user, guid, int(uid_s))

    def _delete_query(self, text: str) -> _Op:
        node = parse_lucene(text)
        user = _scope_user(node)
        self._user(user)
        return _Op("query", user, query=node)

    def _user(self, name: str) -> User:
        if name not in self._users:
            self._users[name] = lookup_user(self.settings, name)
        return self._users[name]

    # -- writing ------------------------------------------------------------------------------------------------
    def _queue(self, op: _Op | None) -> None:
        if op is not None:
            self.pending.append(op)
            size = len(op.document.data) if op.document else 0
            self.pending_bytes += size + sum(len(t) for t in op.fields.values())

    def _maybe_flush(self) -> None:
        if len(self.pending) >= self.flush_docs or self.pending_bytes >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        """Write and commit everything read so far, one writer per user."""
        ops, self.pending, self.pending_bytes = self.pending, [], 0
        for name in dict.fromkeys(op.user for op in ops):
            self._apply(self._users[name], [op for op in ops if op.user == name])

    def _apply(self, user: User, ops: list[_Op]) -> None:
        lock = _user_lock(index_path(user))
        timeout = self.settings.fts.lock_timeout_s
        if not lock.acquire(timeout=timeout):
            raise IndexLockedError(f"{user.name}: index busy with other updates for {timeout:g}s")
        try:
            batch: list[_Op] = []
            for op in ops:
                if op.kind in ("add", "delete"):
                    batch.append(op)
                    continue
                self._write_batch(user, batch)  # a merge or a delete by query reads the committed index
                batch = []
                self._read_write(user, op)
            self._write_batch(user, batch)
        finally:
            lock.release()

    def _write_batch(self, user: User, ops: list[_Op]) -> None:
        if ops:
            with open_writer(self.settings, user, IndexReport()) as writer:
                self._write(writer, ops)

    def _write(self, writer: IndexWriter, ops: Iterable[_Op]) -> None:
        for op in ops:
            if op.kind == "add":
                assert op.document is not None
                writer.replace(op.guid, op.uid, op.document)
                self.added += 1
            else:
                writer.delete(op.guid, op.uid)
                self.deleted += 1

    def _read_write(self, user: User, op: _Op) -> None:
        if op.kind == "query":
            assert op.query is not None
            hits = search(self.settings, op.query)
            self._write_batch(user, [_Op("delete", user.name, h.box, h.uid) for h in hits])
            return
        searcher = open_searcher(user)
        data = searcher.document_data(op.guid, op.uid) if searcher else None
        if searcher:
            searcher.close()
        texts = dict(data["fields"]) if data and isinstance(data.get("fields"), dict) else {}
        for name, text in op.fields.items():
            texts[name] = texts.get(name, "") + text if op.updates.get(name) == "add" and texts.get(name) else text
        texts.update({name: "" for name, how in op.updates.items() if how == "set" and name not in op.fields})
        self._write_batch(user, [_Op("add", user.name, op.guid, op.uid, self._document(op.guid, op.uid, texts))])

