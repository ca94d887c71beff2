"""IMAP SEARCH text keys (RFC 3501 §6.4.4) -> a small AST, the first stage of every search.

parse_query reads one IMAP-syntax string (HTTP API, Solr bridge), parse_argv the CLI's argv (one atom per
item); the search backend translates the Node; format_query goes back. Both refuse a query over the cost limits
of [limits] (keys, OR width, string bytes, nesting: check_cost) with a QueryCostError naming the setting.
Only TEXT BODY SUBJECT FROM TO CC BCC HEADER ALL with juxtaposition (AND), OR, NOT, parentheses and an optional
CHARSET UTF-8 prefix are accepted; every other key raises QueryError, since silently dropping a filter would
return wrong results. Errors give 1-based character positions (parse_query) or argument numbers (parse_argv);
literal lengths count UTF-8 bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ftsd.errors import QueryCostError, QueryError
from ftsd.settings import LimitSettings

FIELDS = ("text", "body", "subject", "from", "to", "cc", "bcc", "header")
# Fields no IMAP key names but other front-ends need: `headers` is every header line ("Name: value"), Solr's `hdr`.
EXTRA_FIELDS = ("headers",)
MAILBOX_GUID = re.compile(r"[0-9A-Za-z]{1,64}")  # a mailbox GUID as Dovecot writes it (Where.mailbox)
MAX_DEPTH = 200  # nesting of (), OR, NOT never allowed (limits.query_depth is at most this): the stack's bound

_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII except ':'
_UNSUPPORTED = frozenset(
    "ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN KEYWORD "
    "UNKEYWORD BEFORE ON SINCE SENTBEFORE SENTON SENTSINCE LARGER SMALLER UID MODSEQ OLDER YOUNGER SAVEDBEFORE "
    "SAVEDON SAVEDSINCE SAVEDATESUPPORTED FILTER FUZZY EMAILID THREADID ANNOTATION INTHREAD MIMEPART".split()
)
_SEQUENCE_SET = re.compile(r"[\d*$][\d*:,$]*")
_EVALUATED = "(ftsd evaluates TEXT, BODY, SUBJECT, FROM, TO, CC, BCC, HEADER, ALL with AND/OR/NOT)"
_SPACE = " \t\r\n"
_ATOM = re.compile(r'[^ \t\r\n()"]+')
_SURROGATE = re.compile("[\ud800-\udfff]")  # what surrogateescape makes of bytes that are not UTF-8
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
_ESCAPE = re.compile(r"\\(.)", re.S)
_LITERAL = re.compile(r"\{([0-9]{1,20})\+?\}(?:\r?\n)?")  # ASCII digits; int() refuses over 4,300


@dataclass(frozen=True, slots=True)
class Key:
    """A string search key: `field` contains `value` (for HEADER: header `header` contains it)."""

    field: str
    value: str
    header: str | None = None

    def __post_init__(self) -> None:
        name_ok = self.header is None or (_HEADER_NAME.fullmatch(self.header) and self.header == self.header.lower())
        known = self.field in FIELDS or self.field in EXTRA_FIELDS
        if not known or (self.field == "header") != (self.header is not None) or not name_ok:
            raise ValueError(f"invalid Key: field={self.field!r} header={self.header!r}")


@dataclass(frozen=True, slots=True)
class All:
    """The ALL key: matches every message."""


@dataclass(frozen=True, slots=True)
class And:
    """Juxtaposition: every item matches. At least two items."""

    items: tuple[Node, ...]

    def __post_init__(self) -> None:
        if len(self.items) < 2:
            raise ValueError("And needs at least two items")


@dataclass(frozen=True, slots=True)
class Or:
    """OR key1 key2."""

    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Not:
    """NOT key."""

    item: Node


@dataclass(frozen=True, slots=True)
class Where:
    """A message-identity key (the Solr bridge's uid/box/user/id fields): the message is in mailbox `mailbox`
    (GUID) of `user` and has UID `uid`; None matches any. No IMAP syntax: format_query refuses it."""

    user: str | None = None
    mailbox: str | None = None
    uid: int | None = None


Node = Key | All | And | Or | Not | Where
NOTHING: Node = Not(All())  # matches no message


def conjoin(nodes: Sequence[Node]) -> Node:
    """Every node matches (one node: itself)."""
    if not nodes:
        raise ValueError("conjoin needs at least one node")
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def disjoin(nodes: Sequence[Node]) -> Node:
    """Any node matches, as a balanced tree of Or: ten thousand alternatives nest 14 deep, not 10,000."""
    if not nodes:
        raise ValueError("disjoin needs at least one node")
    if len(nodes) == 1:
        return nodes[0]
    half = len(nodes) // 2
    return Or(disjoin(nodes[:half]), disjoin(nodes[half:]))


class _Tok(NamedTuple):
    kind: str  # "(" ")" "atom" "string" (quoted or literal) "end"
    value: str  # for "end": how to call it in messages
    where: str  # "at position 5", "at argument 2", "at the end of the query"


class _QueryTokens:
    """Tokens of an IMAP-syntax string; context-free, so peek/take/string all read the same list."""

    hint = ""

    def __init__(self, text: str) -> None:
        self.toks: list[_Tok] = []
        self.i = pos = 0
        while pos < len(text):
            c, where = text[pos], f"at position {pos + 1}"
            if c in _SPACE:
                pos += 1
            elif c in "()":
                self.toks.append(_Tok(c, c, where))
                pos += 1
            elif c == '"':
                m = _QUOTED.match(text, pos)
                if not m:
                    raise QueryError(f"unterminated quoted string starting {where}")
                if bad := [e[0] for e in _ESCAPE.finditer(m[1]) if e[1] not in '"\\']:
                    raise QueryError(f'invalid escape {bad[0]!r} in quoted string {where} (only \\" and \\\\)')
                self.toks.append(_Tok("string", _ESCAPE.sub(r"\1", m[1]), where))
                pos = m.end()
            elif c == "{":
                pos = self._literal(text, pos, where)
            elif m := _ATOM.match(text, pos):
                self.toks.append(_Tok("atom", m[0], where))
                pos = m.end()
        self.toks.append(_Tok("end", "the end of the query", "at the end of the query"))

    def _literal(self, text: str, pos: int, where: str) -> int:
        m = _LITERAL.match(text, pos)
        if not m:
            raise QueryError(f"malformed literal {where} (expected {{N}} or {{N+}}; quote strings containing '{{')")
        size, start, lit = int(m[1]), m.end(), f"literal {m[0].rstrip()} {where}"
        raw = text[start : start + size].encode()[:size]
        if len(raw) < size:
            raise QueryError(f"{lit} announces {size} bytes but only {len(raw)} remain")
        try:
            value = raw.decode()
        except UnicodeDecodeError:
            raise QueryError(f"{lit} ends inside a UTF-8 character (literal lengths count bytes)") from None
        end = start + len(value)
        if end < len(text) and text[end] not in _SPACE + ")":
            raise QueryError(f"{lit} does not match the data: it is followed by {text[end]!r} at position {end + 1}")
        self.toks.append(_Tok("string", value, where))
        return end

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += tok.kind != "end"
        return tok

    string = take


class _ArgvTokens:
    """Tokens of argv items: in key position parentheses may be glued to a keyword; strings are verbatim."""

    hint = " (a ')' glued to a string argument is part of the string)"

    def __init__(self, args: Sequence[str]) -> None:
        self.args, self.i, self.off = args, 0, 0

    def _next(self) -> tuple[_Tok, int, int]:
        if self.i == len(self.args):
            return _Tok("end", "the end of the arguments", "after the last argument"), self.i, 0
        item, where = self.args[self.i], f"at argument {self.i + 1}"
        rest = item[self.off :]
        if rest[:1] in ("(", ")"):
            tok, off = _Tok(rest[0], rest[0], where), self.off + 1
        else:
            word = rest.rstrip(")")
            tok, off = _Tok("atom", word, where), self.off + len(word)
        return (tok, self.i, off) if 0 < off < len(item) else (tok, self.i + 1, 0)

    def peek(self) -> _Tok:
        return self._next()[0]

    def take(self) -> _Tok:
        tok, self.i, self.off = self._next()
        return tok

    def string(self) -> _Tok:
        if self.off or self.i == len(self.args) or self.args[self.i] in ("(", ")"):  # glued ')', end, or a paren
            return self.take()
        self.i += 1
        return _Tok("string", self.args[self.i - 1], f"at argument {self.i}")


class _Parser:
    """Recursive descent: query = [CHARSET astring] key+ ; key = "(" key+ ")" | ALL | field astring | ..."""

    def __init__(self, toks: _QueryTokens | _ArgvTokens, max_depth: int = MAX_DEPTH) -> None:
        self.t = toks
        self.max_depth = min(max_depth, MAX_DEPTH)

    def query(self) -> Node:
        first = self.t.peek()
        if first.kind == "atom" and first.value.upper() == "CHARSET":
            self.t.take()
            charset = self._string(first, "a charset")
            if charset.value.upper() not in ("UTF-8", "US-ASCII"):
                raise QueryError(f"unsupported charset {charset.value!r} {charset.where} (use UTF-8)")
        node = self._seq(0)
        if (tok := self.t.peek()).kind == ")":
            raise QueryError(f"unbalanced parenthesis: ')' {tok.where} has no matching '('")
        if node is None:
            raise QueryError("empty query" + (" after CHARSET" if first.value.upper() == "CHARSET" else ""))
        return node

    def _seq(self, depth: int) -> Node | None:
        items: list[Node] = []
        while self.t.peek().kind not in ("end", ")"):
            items.append(self._key(depth, None))
        return None if not items else items[0] if len(items) == 1 else And(tuple(items))

    def _key(self, depth: int, parent: _Tok | None) -> Node:
        tok = self.t.take()
        if depth >= self.max_depth:
            raise QueryCostError(f"query nested deeper than {self.max_depth} levels {tok.where} (limits.query_depth)")
        if tok.kind in ("end", ")"):  # only reachable as an operand of OR/NOT
            raise _missing(parent or tok, "a search key", tok)
        if tok.kind == "string":
            raise QueryError(f"unexpected string {tok.value!r} {tok.where} where a search key was expected")
        if tok.kind == "(":
            node = self._seq(depth + 1)
            if self.t.take().kind != ")":
                raise QueryError(f"unbalanced parenthesis: '(' {tok.where} is never closed{self.t.hint}")
            if node is None:
                raise QueryError(f"empty parentheses {tok.where}")
            return node
        name = tok.value.upper()
        if name == "ALL":
            return All()
        if name == "HEADER":
            header = self._string(tok, "a header field name")
            if not _HEADER_NAME.fullmatch(header.value):
                raise QueryError(f"invalid header field name {header.value!r} {header.where} (printable ASCII, no ':')")
            return Key("header", self._string(tok, "a string").value, header.value.lower())
        if name.lower() in FIELDS:
            return Key(name.lower(), self._string(tok, "a string").value)
        if name == "OR":
            return Or(self._key(depth + 1, tok), self._key(depth + 1, tok))
        if name == "NOT":
            return Not(self._key(depth + 1, tok))
        if name == "CHARSET":
            raise QueryError(f"CHARSET {tok.where} must come before the first search key")
        if name in _UNSUPPORTED or name.startswith("X-") or _SEQUENCE_SET.fullmatch(name):
            raise QueryError(f"unsupported search key {name} {tok.where} {_EVALUATED}")
        raise QueryError(f"unknown search key {tok.value!r} {tok.where} {_EVALUATED}")

    def _string(self, key: _Tok, what: str) -> _Tok:
        tok = self.t.string()
        if tok.kind not in ("atom", "string"):
            raise _missing(key, what, tok)
        return tok


def _missing(key: _Tok, what: str, found: _Tok) -> QueryError:
    found_s = found.value if found.kind == "end" else f"{found.value!r} {found.where}"
    return QueryError(f"missing argument: {key.value.upper()} {key.where} needs {what}, found {found_s}")


def parse_query(text: str | bytes, limits: LimitSettings | None = None) -> Node:
    """Parse IMAP SEARCH syntax in one string (bytes must be UTF-8); raise QueryError on anything else, and
    QueryCostError (a QueryError) when the query is over the cost limits."""
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError as e:
            raise QueryError(f"invalid UTF-8 at byte offset {e.start}") from None
    if m := _SURROGATE.search(text):
        raise QueryError(f"invalid UTF-8 (lone surrogate) at position {m.start() + 1}")
    limits = limits or LimitSettings()
    return check_cost(_Parser(_QueryTokens(text), limits.query_depth).query(), limits)


def parse_argv(args: Sequence[str], limits: LimitSettings | None = None) -> Node:
    """Parse the CLI form: one atom per item, string arguments verbatim, parentheses alone or glued to keywords."""
    if isinstance(args, str):
        raise TypeError("parse_argv takes a sequence of arguments, not one string (use parse_query)")
    for i, arg in enumerate(args):
        if _SURROGATE.search(arg):
            raise QueryError(f"invalid UTF-8 in argument {i + 1}")
    limits = limits or LimitSettings()
    return check_cost(_Parser(_ArgvTokens(args), limits.query_depth).query(), limits)


def check_cost(node: Node, limits: LimitSettings | None = None) -> Node:
    """node, if it is within the cost limits: search keys, alternatives of one OR (a chain of ORs counts as one
    OR), UTF-8 bytes of all strings, nesting. Raises: QueryCostError naming the limit. Iterative: any depth."""
    limits = limits or LimitSettings()
    keys = size = 0
    stack: list[tuple[Node, int]] = [(node, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limits.query_depth:
            raise QueryCostError(f"query nested deeper than {limits.query_depth} levels (limits.query_depth)")
        if isinstance(item, Key):
            keys += 1
            size += len(item.value.encode("utf-8", "surrogatepass")) + len(item.header or "")
        elif isinstance(item, And):
            stack += [(n, depth + 1) for n in item.items]
        elif isinstance(item, Not):
            stack.append((item.item, depth + 1))
        elif isinstance(item, Or):
            width = _or_width(item, limits.query_or_width)
            if width > limits.query_or_width:
                raise QueryCostError(f"an OR with more than {limits.query_or_width} alternatives "
                                     "(limits.query_or_width)")
            stack += [(item.left, depth + 1), (item.right, depth + 1)]
    if keys > limits.query_keys:
        raise QueryCostError(f"query has {keys} search keys; at most {limits.query_keys} (limits.query_keys)")
    if size > limits.query_bytes:
        raise QueryCostError(f"the strings of the query add up to {size} bytes; at most {limits.query_bytes} "
                             "(limits.query_bytes)")
    return node


def _or_width(node: Or, stop: int) -> int:
    """Alternatives of the OR chain rooted at node (ORs directly inside ORs flattened; Where keys free), counted up
    to stop + 1."""
    width, todo = 0, [node.left, node.right]
    while todo and width <= stop:
        item = todo.pop()
        if isinstance(item, Or):
            todo += [item.left, item.right]
        elif not isinstance(item, Where):  # Dovecot's mailbox lists (box:(a OR b ...)) cost no lookup
            width += 1
    return width


def format_query(node: Node, *, _top: bool = True) -> str:
    """IMAP SEARCH syntax for node, with every string quoted; parse_query(format_query(n)) == n."""
    match node:
        case All():
            return "ALL"
        case Key(field="header", header=str(header)):
            return f"HEADER {_quote(header)} {_quote(node.value)}"
        case Key(field="headers"):
            raise ValueError(f"{node} has no IMAP SEARCH syntax")
        case Key():
            return f"{node.field.upper()} {_quote(node.value)}"
        case Or():
            return f"OR {format_query(node.left, _top=False)} {format_query(node.right, _top=False)}"
        case Not():
            return f"NOT {format_query(node.item, _top=False)}"
        case And():
            inner = " ".join(format_query(item, _top=False) for item in node.items)
            return inner if _top else f"({inner})"
        case Where():
            raise ValueError(f"{node} has no IMAP SEARCH syntax")


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
