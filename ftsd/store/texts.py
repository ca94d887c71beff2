"""Kept texts (fts.store_texts): a message's field texts as the per-message check compares them, normalised at
indexing time and kept in its document (value slot schema.SLOT_TEXTS), so that a phrase or another key the index
cannot settle alone is checked without reading, parsing, decoding and normalising the message file again.

The check looks into searchable(normalise(x)) of a field's text x (search.py, MaildirText): "text" is the header
lines + "\\n" + the body, "headers" the lines "Name: value", SUBJECT/FROM/.../HEADER name the values of that header
joined by "\\n". All of them are pieces of one sequence of *segments* joined by white space: per header line its
"Name:" and its value, then the body. Normalising collapses white space, and blanking long words (searchable)
replaces word runs, which never hold white space: so the text of segments s1..sn joined by white space is the
space-joined *cores* (a segment's normalised text without its one leading and trailing space, blanked) of the
segments that have any, with a space before it when s1 is empty or starts with white space, and after it when sn
is empty or ends with it. The cores of all segments, joined, are one string T; text, headers and body are slices
of T, a header's values the join of their cores. tests/test_kept_texts.py holds every field equal to what the
message file gives.

Layout: version, codec, a fingerprint of the settings that shape the texts, the (kind, space before, space after,
start, end) of text/headers/body, then T + "\\n" + JSON of the header values' names and segments, compressed
with LZ4 (its block format, size first: it inflates ~7x faster than zlib, for ~1.5x the bytes, and inflating is
most of a check's cost; bench/results/phrases-s7.md). A document whose
fingerprint differs (settings changed since it was indexed) is checked against the message file. A blob that
does not unpack, or inflates beyond the bound, is a damaged index (DatabaseCorruptError, like a damaged table).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from types import MappingProxyType
from typing import NamedTuple

import lz4.block as lz4_block
import xapian

from ftsd.analysis import normalise, searchable
from ftsd.errors import CorruptIndexError
from ftsd.settings import Settings

VERSION = 1
LZ4 = 2  # the codec byte (1 was zlib in development: never written by a release)
_HEAD = "<BBI" + "BII" * 3
HEAD_SIZE = struct.calcsize(_HEAD)
_EMPTY, _SPACE, _TOKENS = 0, 1, 2  # a segment's or a field's kind: "" / " " / cores (with spaces around)
_FIELD_AT = MappingProxyType({"text": 3, "headers": 6, "body": 9})  # each field's (flags, start, end) in the header
_HEAD_CHARS = 1 << 20  # header lines kept at most (message.py reads at most 1 MiB of a header block as such)


class Segment(NamedTuple):
    kind: int
    before: bool  # normalised text starts with a space
    after: bool  # ... ends with one
    start: int  # the core: T[start:end]
    end: int


def fingerprint(settings: Settings) -> int:
    """The settings the kept texts depend on (besides the analysis itself, tied to the schema version)."""
    fts, dec = settings.fts, settings.decoders
    shape = (fts.max_word_chars, fts.max_text_chars, fts.max_message_bytes, sorted(fts.header_excludes),
             sorted(fts.header_includes), dec.attachments, dec.max_part_bytes, dec.command, sorted(dec.command_types))
    return zlib.crc32(repr(shape).encode())


def limit(settings: Settings) -> int:
    """Most bytes a message's texts may inflate to (UTF-8: at most 4 bytes a character), beyond which a message's
    texts are not kept and a kept blob is damage."""
    return 4 * (settings.fts.max_text_chars + 2 * _HEAD_CHARS)


def _joined(segments: Sequence[Segment]) -> Segment:
    """The field of segments joined by white space, as one Segment over T (their tokened cores are contiguous)."""
    if len(segments) == 1:
        return segments[0]
    if not segments:
        return Segment(_EMPTY, False, False, 0, 0)
    tokened = [s for s in segments if s.kind == _TOKENS]
    if not tokened:
        return Segment(_SPACE, True, True, 0, 0)
    first, last = segments[0], segments[-1]
    return Segment(_TOKENS, first.kind != _TOKENS or first.before, last.kind != _TOKENS or last.after,
                   tokened[0].start, tokened[-1].end)


def encode(header_items: Sequence[tuple[str, str]], body: str, settings: Settings) -> bytes | None:
    """The kept texts of one message: its header lines (name, decoded value) and its body. None when they are
    larger than limit() (the message is then checked against its file)."""
    mwc = settings.fts.max_word_chars
    cores: list[str] = []
    at = 0

    def segment(text: str) -> Segment:
        nonlocal at
        norm = normalise(text)
        if not norm or norm == " ":
            return Segment(_SPACE if norm else _EMPTY, bool(norm), bool(norm), at, at)
        before, after = norm[0] == " ", norm[-1] == " "
        core = searchable(norm[before : len(norm) - after], mwc)
        start = at + 1 if cores else at
        cores.append(core)
        at = start + len(core)
        return Segment(_TOKENS, before, after, start, at)

    heads: list[Segment] = []
    values: list[list[object]] = []
    for name, value in header_items:
        heads.append(segment(name + ":"))
        seg = segment(value)
        heads.append(seg)
        values.append([name.lower(), *seg])
    headers = _joined(heads)
    body_seg = segment(body)
    text = _joined([*(heads or [Segment(_EMPTY, False, False, 0, 0)]), body_seg])
    payload = " ".join(cores).encode("utf-8", "surrogatepass") + b"\n" + json.dumps(values).encode()
    if len(payload) > limit(settings):
        return None
    head = [VERSION, LZ4, fingerprint(settings)]
    for seg in (text, headers, body_seg):
        head += [seg.kind | seg.before << 2 | seg.after << 3, seg.start, seg.end]
    packed: bytes = lz4_block.compress(payload)
    return struct.pack(_HEAD, *head) + packed


def _render(core: str, seg: Segment) -> str:
    """The text of a field or value: `core` (its slice of T) with the spaces around it."""
    if seg.kind != _TOKENS:
        return " " if seg.kind == _SPACE else ""
    return (" " if seg.before else "") + core + (" " if seg.after else "") if seg.before or seg.after else core


def _damaged(why: str) -> xapian.DatabaseCorruptError:
    return xapian.DatabaseCorruptError(f"kept texts of a document: {why}")


def _table_damaged(exc: Exception) -> CorruptIndexError:
    """The header table is parsed when a key needs it, outside the searcher's Xapian error translation."""
    return CorruptIndexError(f"damaged index (kept texts of a document: header table, {type(exc).__name__})")


def _plain(name: str) -> bool:
    """A header name JSON writes as is (json.dumps escapes only quotes, backslashes and what is not printable
    ASCII)."""
    return name.isascii() and name.isprintable() and '"' not in name and "\\" not in name


class KeptTexts:
    """The texts of one document, inflated (decode()). T stays bytes while it is ASCII (most mail: its byte offsets
    are then its character offsets, and a key is looked for in place, bytes.find within the field's range, without
    decoding or slicing ~20 KB per check); T not ASCII is decoded once (decode() must check it is UTF-8 anyway)."""

    __slots__ = ("_payload", "_cut", "_t", "_head", "_values")

    def __init__(self, payload: bytes, cut: int, t: str | None, head: tuple[int, ...]) -> None:
        """`head`: the unpacked layout header (decode() checked its fields' bounds)."""
        self._payload = payload  # T + "\n" + the header table
        self._cut = cut
        self._t = t  # None: T is ASCII
        self._head = head
        self._values: dict[str, list[Segment]] | None = None

    @property
    def t(self) -> str:
        if self._t is None:
            self._t = self._payload[: self._cut].decode("ascii")
        return self._t

    def _field(self, name: str) -> Segment:
        """"text", "body" or "headers" (made when asked: three Segments per check cost ~4 us)."""
        flags, start, end = self._head[_FIELD_AT[name] : _FIELD_AT[name] + 3]
        return Segment(flags & 3, bool(flags & 4), bool(flags & 8), start, end)

    @property
    def table(self) -> bytes:
        """The header table (JSON), as kept."""
        return self._payload[self._cut + 1 :]

    def _core(self, seg: Segment) -> str:
        if self._t is None:
            return self._payload[seg.start : seg.end].decode("ascii")
        return self._t[seg.start : seg.end]

    def field(self, name: str) -> str:
        """"text", "body" or "headers"."""
        seg = self._field(name)
        return _render(self._core(seg) if seg.kind == _TOKENS else "", seg)

    def holds(self, name: str, needle: str) -> bool:
        """Whether field `name` ("text", "body", "headers") contains `needle`: `needle in field(name)`, found in
        place. Without a space at its edges, a needle is in the field iff it is in the field's core (the spaces
        around it are single), so only the core's range is searched."""
        at = _FIELD_AT[name]
        flags, start, end = self._head[at : at + 3]
        if flags & 3 != _TOKENS or needle[:1] == " " or needle[-1:] == " ":
            return needle in self.field(name)
        if self._t is None:
            return self._payload.find(needle.encode("utf-8", "surrogatepass"), start, end) >= 0
        return self._t.find(needle, start, end) >= 0

    def _row(self, row: object) -> tuple[str, Segment]:
        """One [name, kind, before, after, start, end] row of the header table, checked."""
        if not isinstance(row, list) or len(row) != 6:
            raise ValueError("row")
        name, kind, before, after, start, end = row
        if not (isinstance(name, str) and isinstance(start, int) and isinstance(end, int)
                and 0 <= start <= end <= self._length() and kind in (0, 1, 2)):
            raise ValueError("row")
        return name, Segment(kind, bool(before), bool(after), start, end)

    def _length(self) -> int:
        return self._cut if self._t is None else len(self._t)

    def values(self) -> dict[str, list[Segment]]:
        """Header name (lower case) -> the segments of its values. Raises CorruptIndexError."""
        if self._values is None:
            out: dict[str, list[Segment]] = {}
            try:
                rows = json.loads(self.table)
                for name, seg in map(self._row, rows if isinstance(rows, list) else [None]):
                    out.setdefault(name, []).append(seg)
            except (ValueError, TypeError, RecursionError) as exc:  # RecursionError: JSON nested thousands deep
                raise _table_damaged(exc) from None
            self._values = out
        return self._values

    def _segments(self, name: str) -> list[Segment]:
        """The segments of header `name`'s values: only its rows parsed, where the name is written as is."""
        if self._values is not None or not _plain(name):
            return self.values().get(name, [])
        needle, table, out = b'["' + name.encode() + b'", ', self._payload, []
        at = table.find(needle, self._cut + 1)
        try:
            while at >= 0:
                end = table.index(b"]", at + len(needle))
                out.append(self._row(json.loads(table[at : end + 1]))[1])
                at = table.find(needle, end)
        except (ValueError, TypeError, RecursionError) as exc:
            raise _table_damaged(exc) from None
        return out

    def header(self, name: str) -> str:
        """The values of header `name` (lower case) joined by "\\n", normalised ("" when it has none). Raises
        CorruptIndexError."""
        segments = self._segments(name)
        if len(segments) < 2:
            return _render(self._core(segments[0]), segments[0]) if segments else ""
        whole = _joined(segments)
        if whole.kind != _TOKENS:
            return _render("", whole)
        core = " ".join(self._core(s) for s in segments if s.kind == _TOKENS)
        return (" " if whole.before else "") + core + (" " if whole.after else "")

    def has_header(self, name: str) -> bool:
        """Raises CorruptIndexError."""
        return bool(self._segments(name))


def _inflate(data: memoryview, bound: int) -> bytes:
    if len(data) < 4 or int.from_bytes(data[:4], "little") > bound:  # LZ4's size prefix: checked before it allocates
        raise _damaged("larger than the bound")
    try:
        out: bytes = lz4_block.decompress(data)
    except lz4_block.LZ4BlockError as exc:
        raise _damaged(str(exc)) from None
    return out


def decode(blob: bytes, settings: Settings, mark: int | None = None) -> KeptTexts | None:
    """The texts kept in a document's value; None when they were kept under other settings or by a layout this
    ftsd lacks (then the message file answers). `mark`: fingerprint(settings), if the caller has it. Raises
    xapian.DatabaseCorruptError for a blob that does not unpack or inflates beyond limit()."""
    if len(blob) < HEAD_SIZE or blob[0] != VERSION or blob[1] != LZ4:
        if blob[:1] and blob[0] > VERSION:  # a later ftsd's layout: the message file answers
            return None
        raise _damaged("header")
    head = struct.unpack_from(_HEAD, blob)
    if head[2] != (fingerprint(settings) if mark is None else mark):
        return None
    payload = _inflate(memoryview(blob)[HEAD_SIZE:], limit(settings))
    cut = payload.rfind(b"\n")  # T has none (normalised), the JSON table none either: a scan of the table only
    if cut < 0:
        raise _damaged("no header table")
    t: str | None = None  # ASCII (the table always is: JSON's escapes): T is valid UTF-8 and as long in characters
    if not payload.isascii():
        try:
            t = payload[:cut].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise _damaged("not UTF-8") from None
    length = cut if t is None else len(t)
    for name, i in _FIELD_AT.items():
        flags, start, end = head[i : i + 3]
        if flags & 3 > _TOKENS or flags > 15 or not start <= end <= length:
            raise _damaged(f"{name} bounds")
    # the table's rows are parsed only when a key needs them; "]]" ends a table of rows (len(table) >= 2 then)
    if not (payload.endswith(b"]]") or len(payload) == cut + 3 and payload.endswith(b"[]")):
        raise _damaged("header table cut short")
    return KeptTexts(payload, cut, t, head)
