"""A fast path for the compat32 FeedParser: the same `email.message.Message` tree, built from slices of the text.

The FeedParser reads a message line by line in Python (a deque of lines, a stack of boundary predicates called on
every line): on list mail that is most of the parse time. Here a header block is one regex match and split into
fields with another; a multipart body is cut at its boundary lines, found by one regex search per part. The result
is the Message the FeedParser builds: the same headers, unixfrom, payloads, preambles, epilogues and defects (the
tests compare the two on generated and real mail).

Only the plain shapes are taken: anything the FeedParser treats in a special way returns None and the caller uses
the FeedParser itself. That is: a lone CR as a line ending (in the header block; anywhere in a multipart
message), a header block ended by a line that is no header and not blank, a continuation or `:` line first, an
envelope `From ` line other than the first, message/* and multipart/digest, a multipart without a boundary or
without its start or close boundary, a part ended by an enclosing boundary, two boundary lines in a row, a part
whose header block runs into its end, a boundary over 70 characters, nesting past _MAX_DEPTH, more than _MAX_PARTS
parts or _MAX_PATTERN_CHARS of boundary patterns (the FeedParser then applies the parser's limits and raises).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email import errors
from email.message import Message
from typing import Any

# The header lines of a block as the FeedParser's headerRE takes them (a field name and `:`, or a continuation),
# each up to and including its LF (or the end of the text). A CR before the LF stays in the line.
_BLOCK = re.compile(r"(?:(?:[\041-\071\073-\176]+:|[\t ])[^\n]*(?:\n|\Z))*")
# One field of a header block (the block holds only field lines and their continuations, so the matches tile it):
# the name, and the value as compat32's header_source_parse makes it, but for trailing CR and LF.
_FIELD = re.compile(r"([\041-\071\073-\176]+):[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)\n?")
# Bounds of the fast path's own work (past them the FeedParser reads the message, at its own cost): each level's
# boundary search reads the lines of the levels inside it again, against every enclosing boundary, and re compiles
# each level's pattern in Python (~1-3 us a character), so depth, boundary length and the characters compiled per
# message are kept small -- a crafted message then costs the fast path at most a few tens of ms before it gives up.
_MAX_DEPTH = 8
_MAX_BOUNDARY = 70  # RFC 2046's longest boundary
_MAX_PATTERN_CHARS = 16_384  # boundary characters compiled into patterns, per message
_MAX_PARTS = 1_000


def _lone_cr(text: str) -> bool:
    return "\r" in text and text.count("\r") != text.count("\r\n")


def _strip_eol(text: str) -> str:
    """`text` without one line break at its end (the FeedParser's NLCRE_eol)."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith(("\n", "\r")) else text


_NO_HEADER = object()


class Part(Message):
    """A compat32 Message that finds a header by name in a dict, not by lowering every name in turn, and parses its
    content type and a header's parameters (Content-Type, Content-Disposition) once, not on every call: the walk of
    a part asks for its type, charset and file name several times. Every method that changes the headers drops the
    caches; the answers are Message's own."""

    _header_list: list[tuple[str, Any]]
    _first: dict[str, tuple[str, Any]] | None
    _params: dict[str, Any]
    _type: tuple[str, str] | None  # (default type, content type) of the last get_content_type

    @property
    def _headers(self) -> list[tuple[str, Any]]:
        return self._header_list

    @_headers.setter
    def _headers(self, headers: list[tuple[str, Any]]) -> None:
        self._header_list = headers
        self._changed()

    def _changed(self) -> None:
        self._first = None
        self._params = {}
        self._type = None

    def get_content_type(self) -> str:
        default = self.get_default_type()
        known = self._type
        if known is None or known[0] != default:
            known = self._type = (default, super().get_content_type())
        return known[1]

    def _first_of(self) -> dict[str, tuple[str, Any]]:
        first = self._first
        if first is None:
            first = {}
            for k, v in self._header_list:
                first.setdefault(k.lower(), (k, v))
            self._first = first
        return first

    def get(self, name: str, failobj: Any = None) -> Any:
        found = self._first_of().get(name.lower())
        return failobj if found is None else self.policy.header_fetch_parse(*found)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first_of()

    def _get_params_preserve(self, failobj: Any, header: str) -> Any:
        key = header.lower()
        if key not in self._params:
            self._params[key] = super()._get_params_preserve(_NO_HEADER, header)  # type: ignore[misc]
        params = self._params[key]
        return failobj if params is _NO_HEADER else list(params)  # a copy: a caller may change what it gets

    def __setitem__(self, name: str, val: Any) -> None:
        super().__setitem__(name, val)
        self._changed()

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name)
        self._changed()

    def set_raw(self, name: str, value: Any) -> None:
        super().set_raw(name, value)
        self._changed()

    def replace_header(self, _name: str, _value: Any) -> None:
        super().replace_header(_name, _value)
        self._changed()

    def set_boundary(self, boundary: str) -> None:
        super().set_boundary(boundary)
        self._changed()


class _Giveup(Exception):
    """The message is outside the fast path: the FeedParser reads it."""


class _Builder:
    def __init__(self, text: str, factory: Callable[[], Message]) -> None:
        self.text = text
        self.factory = factory
        self.parts = 0
        self.pattern_chars = 0

    def headers(self, start: int, end: int) -> tuple[Message, int]:
        """A new Message with the header block at text[start:end] (end: where the part ends); the offset of its
        body (after the blank line)."""
        self.parts += 1
        if self.parts > _MAX_PARTS:
            raise _Giveup
        text = self.text
        msg = self.factory()
        pos = start
        if text.startswith("From ", start):
            eol = text.find("\n", start, end)
            if eol < 0:
                raise _Giveup
            line = text[start:eol + 1]
            if _lone_cr(line):
                raise _Giveup
            msg.set_unixfrom(_strip_eol(line))
            pos = eol + 1
        m = _BLOCK.match(text, pos, end)
        assert m is not None  # the pattern matches the empty string
        block_end = m.end()
        block = text[pos:block_end]
        if block[:1] in (" ", "\t") or _lone_cr(block):
            raise _Giveup
        if text.startswith("\n", block_end, end):
            body = block_end + 1
        elif text.startswith("\r\n", block_end, end):
            body = block_end + 2
        elif block_end == len(text) and end == len(text):
            body = block_end  # headers up to the end of the message, no body
        else:
            raise _Giveup
        raw = [(name, value.rstrip("\r\n")) for name, value in _FIELD.findall(block)]
        msg._headers = raw  # type: ignore[attr-defined]
        return msg, body


def parse_text(text: str, factory: Callable[[], Message], headersonly: bool = False) -> Message | None:
    """The Message the FeedParser makes of `text` (with `headersonly`: the headers, and all after the blank line
    as the payload); None outside the fast path."""
    builder = _Builder(text, factory)
    try:
        msg, body = builder.headers(0, len(text))
        maintype = msg.get_content_maintype()
        if headersonly or maintype not in ("multipart", "message"):
            msg.set_payload(text[body:])
            return msg
        if _lone_cr(text):
            return None
        _entity_body(builder, msg, body, len(text), [], 0)
    except _Giveup:
        return None
    return msg


def _boundary_line(boundaries: list[str]) -> re.Pattern[str]:
    """A line the FeedParser's boundary predicate of any of `boundaries` matches (no lone CR in the text), with the
    line break before it (a leading literal: the regex engine skips to each LF in C). Searched from the LF that
    ends the line before the first one to look at."""
    alternatives = "|".join(re.escape(b) for b in boundaries)
    return re.compile(r"\n--(?:" + alternatives + r")(?:--)?[ \t]*(?:\r?\n|\Z)")


def _which(line: str, boundary: str) -> str | None:
    """'sep' or 'end' when `line` (a match of _boundary_line: LF, the line, its line break) is a boundary line of
    `boundary`, else None."""
    rest = line[1:].rstrip("\r\n")
    if not rest.startswith("--" + boundary):
        return None
    tail = rest[len(boundary) + 2:]
    end = tail.startswith("--")
    if end:
        tail = tail[2:]
    if tail.strip(" \t"):
        return None
    return "end" if end else "sep"


def _entity(b: _Builder, start: int, end: int, outer: list[str], depth: int) -> Message:
    """The part at text[start:end]; `end` is the start of the line that ends it (a boundary line of an enclosing
    multipart)."""
    msg, body = b.headers(start, end)
    _entity_body(b, msg, body, end, outer, depth)
    return msg


def _entity_body(b: _Builder, msg: Message, body: int, end: int, outer: list[str], depth: int) -> None:
    maintype = msg.get_content_maintype()
    if maintype == "message" or msg.get_content_type() == "multipart/digest":
        raise _Giveup
    if maintype != "multipart":
        msg.set_payload(b.text[body:end])
        return
    if depth >= _MAX_DEPTH:
        raise _Giveup
    boundary = msg.get_boundary()
    if boundary is None or "\n" in boundary or "\r" in boundary or len(boundary) > _MAX_BOUNDARY:
        raise _Giveup
    if str(msg.get("content-transfer-encoding", "8bit")).lower() not in ("7bit", "8bit", "binary"):
        msg.defects.append(errors.InvalidMultipartContentTransferEncodingDefect())
    _multipart_body(b, msg, boundary, body, end, outer, depth)


def _multipart_body(b: _Builder, msg: Message, boundary: str, body: int, end: int, outer: list[str],
                    depth: int) -> None:
    text = b.text
    stack = [*outer, boundary]
    b.pattern_chars += sum(map(len, stack))
    if b.pattern_chars > _MAX_PATTERN_CHARS:
        raise _Giveup
    lines = _boundary_line(stack)
    m = lines.search(text, body - 1, end)  # text[body - 1] is the LF of the blank line
    if m is None or _which(m.group(), boundary) != "sep" or any(_which(m.group(), o) for o in outer):
        raise _Giveup  # no start boundary (or the close one first, or an enclosing one)
    preamble = text[body:m.start() + 1]
    if preamble:
        msg.preamble = _strip_eol(preamble)
    while True:
        part_start = m.end()
        m = lines.search(text, part_start - 1, end)
        if m is None or any(_which(m.group(), o) for o in outer):
            raise _Giveup  # the close boundary is missing
        kind = _which(m.group(), boundary)
        if m.start() + 1 == part_start:
            raise _Giveup  # two boundary lines in a row: the FeedParser skips the second
        part = _entity(b, part_start, m.start() + 1, stack, depth + 1)
        msg.attach(part)
        if part.get_content_maintype() == "multipart":
            epilogue = part.epilogue
            part.epilogue = None if epilogue == "" else _strip_eol(epilogue) if epilogue is not None else None
        else:
            payload = part._payload  # type: ignore[attr-defined]
            if isinstance(payload, str):
                part._payload = _strip_eol(payload)  # type: ignore[attr-defined]
        if kind == "end":
            break
    # the rest up to the enclosing boundary line (found by the caller) or the end of the text
    msg.epilogue = text[m.end():end]
