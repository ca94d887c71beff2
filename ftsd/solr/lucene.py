"""Solr's query language as ftsd takes it: the Lucene-classic parser every `select` q/fq and every
`<delete><query>` goes through, the Solr field names, and which user and mailboxes a query names (Scope).

Pure text -> ftsd's one query AST (ftsd/query.py): text fields become substring Keys (`hdr` the `headers`
key), `uid`/`box`/`user`/`id` become Where keys; search.py evaluates it as it does an IMAP SEARCH.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import reduce

from ftsd.digits import parse_uid
from ftsd.errors import QueryError
from ftsd.query import NOTHING, All, And, Key, Node, Not, Or, Where, conjoin, disjoin

# Solr field -> ftsd index field. `hdr` (every header line "Name: value") goes to `headers`.
TEXT_FIELDS = {"body": "body", "hdr": "headers", "subject": "subject", "from": "from", "to": "to", "cc": "cc",
               "bcc": "bcc"}
KEY_FIELDS = ("uid", "box", "user", "id")


# == Lucene terms -> ftsd's query AST ===========================================================================

_HEADER_FIELDS = ("subject", "from", "to", "cc", "bcc")


def _term(name: str, value: str) -> Node:
    """One `field:value` as ftsd's AST. Text fields are substring keys (hdr: every header line); an empty value
    asks whether the field is there (IMAP `HEADER SUBJECT ""`). Key fields name the message."""
    if name in TEXT_FIELDS:
        field = "headers" if name == "hdr" else name
        if not value and name in _HEADER_FIELDS:
            return Key("header", "", name)
        return Key(field, value)
    if name == "user":
        return Where(user=value)
    if name == "box":
        return Where(mailbox=value)
    uid_s, _, rest = value.partition("/")
    uid = parse_uid(uid_s)
    if uid is None:  # no message has it
        return NOTHING
    if name == "uid":
        return Where(uid=uid)
    box, _, user = rest.partition("/")
    return Where(user=user, mailbox=box, uid=uid)


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


_SUFFIX_CHARS = frozenset("~^0123456789.")


def _strip_suffix(word: str) -> str:
    """Drop an unescaped fuzzy `~[n]` or boost `^n` suffix: substring matching has no use for them. Linear: the
    suffix can only lie in the trailing run of `~^0-9.`, and it starts at the first `~`/`^` of that run that
    comes after the last `^` without digits (such a `^` makes every suffix through it invalid)."""
    run = len(word)
    while run > 0 and word[run - 1] in _SUFFIX_CHARS:
        run -= 1
    if run == len(word):
        return word
    backslashes = 0  # the run's first character is escaped by an odd number of backslashes before it
    while run - backslashes > 0 and word[run - backslashes - 1] == "\\":
        backslashes += 1
    first = run + 1 if backslashes % 2 else run
    for i in range(len(word) - 1, first - 1, -1):  # a bare `^`: the suffix can only start after it
        if word[i] == "^" and (i + 1 == len(word) or word[i + 1] in "~^"):
            first = i + 1
            break
    start = next((i for i in range(first, len(word)) if word[i] in "~^"), None)
    return word[:start] if start is not None and _SUFFIX.fullmatch(word, start) else word


def _excerpt(text: str, size: int = 200) -> str:
    """A query for an error message: its start only (a hostile query may be megabytes long)."""
    return repr(text) if len(text) <= size else repr(text[:size]) + f"... ({len(text)} characters)"


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
            elif text[i] == '"':
                raise QueryError(f"unterminated quote at position {i + 1} of Solr query {_excerpt(text)}")
            else:
                w = _WORD.match(text, i)
                if w is None:  # _FIELD's look-ahead leaves only a ')' here
                    raise QueryError(f"unexpected {text[i]!r} at position {i + 1} of Solr query {_excerpt(text)}")
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

    def parse(self) -> Node:
        node = self._level(None, 0)
        if self.i < len(self.toks):
            raise QueryError(f"unbalanced ')' in Solr query {self.text!r}")
        return node

    def _peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _level(self, default_field: str | None, depth: int) -> Node:
        if depth > 100:
            raise QueryError("Solr query nested too deeply")
        items: list[tuple[str | None, Node]] = []
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

    def _clause(self, default_field: str | None, depth: int) -> Node:
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
                return All()
            if default_field is None:
                raise QueryError(f"term {text!r} without a field in Solr query {self.text!r}")
            name, text = default_field, _unescape(_strip_suffix(text))
        if name == "*" and text == "*":
            return All()
        if name not in TEXT_FIELDS and name not in KEY_FIELDS:
            raise QueryError(f"undefined field {name!r} in Solr query {self.text!r}")
        return _term(name, text)

    def _combine(self, items: list[tuple[str | None, Node]], ops: list[str | None]) -> Node:
        if all(op is None for op in ops):
            required = [n for m, n in items if m == "+" or (m is None and self.default_and)]
            optional = [n for m, n in items if m is None and not self.default_and]
            parts = required + [Not(n) for m, n in items if m == "-"]
            if optional and not required:
                parts.append(disjoin(optional))
            if not required and not optional:
                parts.insert(0, All())
            return conjoin(parts)
        nodes = [Not(n) if m == "-" else n for m, n in items]
        groups = [[nodes[0]]]
        for op, node in zip(ops, nodes[1:], strict=True):
            if (op or ("and" if self.default_and else "or")) == "and":
                groups[-1].append(node)
            else:
                groups.append([node])
        return disjoin([conjoin(g) for g in groups])


def parse_lucene(text: str, default_op: str = "OR") -> Node:
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

@dataclass(frozen=True, slots=True)
class Scope:
    """What a query names: one user, and maybe only some mailboxes (GUIDs) and UIDs (None: not restricted)."""

    user: str
    mailboxes: frozenset[str] | None
    uids: frozenset[int] | None

    @classmethod
    def of(cls, node: Node) -> Scope:
        """The scope `node` requires. Raises: QueryError unless it names exactly one (non-empty) user."""
        users = _values_of(node, "user")
        if users is None or len(users) != 1:
            raise QueryError("a Solr query must name exactly one user (user:NAME in q or fq)")
        (name,) = users
        if not isinstance(name, str) or not name:
            raise QueryError("public namespaces (empty user) are not supported by ftsd's Solr endpoint")
        boxes, uids = _values_of(node, "mailbox"), _values_of(node, "uid")
        return cls(name, None if boxes is None else frozenset(map(str, boxes)),
                   None if uids is None else frozenset(u for u in uids if isinstance(u, int)))


def _values_of(node: Node, name: str) -> frozenset[str | int] | None:
    """The values Where.`name` must take for node to match, or None when node does not restrict it."""
    if isinstance(node, Where):
        value = getattr(node, name)
        return None if value is None else frozenset([value])
    if isinstance(node, And):
        known = [v for v in (_values_of(n, name) for n in node.items) if v is not None]
        return reduce(frozenset.__and__, known) if known else None
    if isinstance(node, Or):
        left, right = _values_of(node.left, name), _values_of(node.right, name)
        return None if left is None or right is None else left | right
    return None
