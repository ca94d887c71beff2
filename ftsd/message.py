"""Parse: message bytes -> the searchable fields {subject, from, to, cc, bcc, headers, body} + what each part gave.

The `compat32` parser with explicit decoding is used on purpose: `email.policy.default` parses ~40x slower
(~160 msg/s against ~6,700 msg/s measured on the SpamAssassin corpus) and raises on dirt that real mail has. Its
Message tree is built by mimeparse from slices of the text where it can (most mail), by the FeedParser otherwise.
Header values are RFC 2047-decoded with the charset fallback of decoders.charset; text parts are decoded with their
declared charset (or a guess); HTML is reduced to visible text; nested message/rfc822 parts contribute their
headers and body; other parts go to the attachment decoders. Nothing here raises on bad input: a part that cannot
be read is recorded with the reason and the rest of the message is kept; a message the MIME parser cannot take
(nesting deeper than _MAX_PARSE_DEPTH, more than _MAX_PARTS parts: the stdlib parser recurses once per level and
would hit RecursionError near 1,000) keeps its headers and its raw body text, so it is still indexed and found.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.header
import email.parser
import email.utils
import logging
import quopri
import re
from dataclasses import dataclass, field
from email.feedparser import FeedParser
from email.message import Message

from ftsd.decoders import decode_attachment, find_decoder, wants_command
from ftsd.decoders.charset import decode_text
from ftsd.decoders.html import html_to_text
from ftsd.mimeparse import Part, parse_text
from ftsd.settings import DecoderSettings, Settings

ADDRESS_FIELDS = ("from", "to", "cc", "bcc")
_OWN = ("subject", *ADDRESS_FIELDS)  # header fields indexed on their own
# Parts that are text even though their type is not text/*. (PGP signatures are base64 noise: not indexed.)
_TEXTLIKE = {"message/delivery-status", "message/disposition-notification"}
_MAX_DEPTH = 20
# The parser itself stops well before Python's recursion limit, and before a flood of tiny parts eats memory
# (each part is a Message object of ~1 KB: 3 million "--b" lines would take GBs).
_MAX_PARSE_DEPTH = 64
_MAX_PARTS = 10_000
_MAX_HEAD = 1_048_576  # header block of a message parsed as raw text

log = logging.getLogger(__name__)


class MimeTooComplex(ValueError):
    """The message nests MIME parts too deeply or has too many of them for a structured parse."""


class _BoundedParser(FeedParser):
    """compat32 FeedParser that gives up (MimeTooComplex) past a nesting depth or a number of parts, before
    the recursion of the stdlib parser can reach Python's limit."""

    def __init__(self, max_depth: int = _MAX_PARSE_DEPTH, max_parts: int = _MAX_PARTS) -> None:
        super().__init__(Part)
        self._max_depth = max_depth
        self._parts_left = max_parts

    def _new_message(self) -> None:
        if len(self._msgstack) >= self._max_depth:  # type: ignore[attr-defined]
            raise MimeTooComplex(f"MIME parts nested more than {self._max_depth} deep")
        self._parts_left -= 1
        if self._parts_left < 0:
            raise MimeTooComplex(f"more than {_MAX_PARTS} MIME parts")
        super()._new_message()  # type: ignore[misc]


def parse_bytes(raw: bytes, headersonly: bool = False) -> Message:
    """Parse message bytes like email.parser.BytesParser (compat32), within the limits of _BoundedParser: the
    same Message, from slices of the text where mimeparse can (most mail), else by the FeedParser.
    Raises: MimeTooComplex."""
    text = raw.decode("ascii", "surrogateescape")
    fast = parse_text(text, Part, headersonly)
    return fast if fast is not None else _feed(text, headersonly)


def _feed(text: str, headersonly: bool) -> Message:
    parser = _BoundedParser()
    if headersonly:
        parser._set_headersonly()  # type: ignore[attr-defined]
    parser.feed(text)
    return parser.close()


@dataclass(frozen=True, slots=True)
class PartInfo:
    """What became of one MIME part (the debugging view of `ftsd status -u USER -m MAILBOX --uid UID`)."""

    part: str
    content_type: str
    filename: str | None
    size: int
    decoder: str | None
    chars: int
    skipped: str | None = None


@dataclass(slots=True)
class ParsedMessage:
    """The decoded, not yet normalised, text of every searchable field."""

    subject: str = ""
    from_: str = ""
    to: str = ""
    cc: str = ""
    bcc: str = ""
    headers: str = ""  # every top-level header as "Name: value" lines (TEXT searches header names too)
    other_headers: str = ""  # the same with the values of subject/from/to/cc/bcc left out (indexed on their own)
    body: str = ""
    parts: list[PartInfo] = field(default_factory=list)
    # (name, decoded value) of the headers in `headers`, in order (the texts kept with fts.store_texts)
    header_items: list[tuple[str, str]] = field(default_factory=list)

    def header_field(self, name: str) -> str:
        return {"subject": self.subject, "from": self.from_, "to": self.to, "cc": self.cc, "bcc": self.bcc}[name]


# An RFC 2047 encoded word. As lenient as Dovecot's decoder: anywhere in the value (not only between spaces),
# white space allowed inside the encoded text (seen in spam), no line break inside.
_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([qQbB])\?([^?\r\n]*)\?=")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")


def decode_base64(data: bytes) -> bytes:
    """What decodes of base64 data: characters outside the alphabet skipped, padding supplied, a dangling
    last character dropped. Never raises."""
    data = _NOT_BASE64.sub(b"", data)
    cut = len(data) % 4
    data = data[: len(data) - 1] if cut == 1 else data + b"=" * ((4 - cut) % 4)
    return binascii.a2b_base64(data)


# Leading lines of base64 characters (blank ones too, white space around them allowed), then at most one line that
# ends in padding or a last line without a line break: one C-level match, not a Python loop over the lines.
_WS = rb"[ \t\x0b\x0c]*"
_BASE64_DATA = re.compile(
    rb"(?:" + _WS + rb"[A-Za-z0-9+/]*" + _WS + rb"(?:\r\n|\r|\n))*"
    rb"(?:" + _WS + rb"[A-Za-z0-9+/]*=+" + _WS + rb"(?:\r\n|\r|\n|\Z)|" + _WS + rb"[A-Za-z0-9+/]*" + _WS + rb"\Z)?"
)


def split_base64(payload: bytes) -> tuple[bytes, bytes]:
    """(base64 data, clear text after it) of a base64 part's raw payload. The data is the leading lines of base64
    characters (blank lines included), up to the first line with padding; a list server or a virus scanner
    may have appended a footer in clear text after it."""
    m = _BASE64_DATA.match(payload)
    end = m.end() if m else 0
    return payload[:end], payload[end:]


def _base64_footer(part: Message) -> tuple[bytes, bytes] | None:
    """(decoded data, clear footer) of a base64 text part followed by clear text; None for any other part."""
    if str(part.get("content-transfer-encoding", "")).strip().lower() != "base64":
        return None
    try:
        payload = part.get_payload()  # decodes 8-bit bytes with the declared charset, which may be garbage
    except Exception:
        return None
    if not isinstance(payload, str):
        return None
    data, footer = split_base64(payload.encode("utf-8", "surrogateescape"))
    return (decode_base64(data), footer) if footer.strip() else None


def _word_bytes(encoding: str, text: str) -> bytes:
    data = text.encode("utf-8", "surrogateescape")
    return binascii.a2b_qp(data, header=True) if encoding in "qQ" else decode_base64(data)


def _clear_text(text: str) -> str:
    # compat32 keeps undeclared 8-bit header bytes as surrogate escapes: decode them properly
    return text if text.isascii() else decode_text(text.encode("utf-8", "surrogateescape"), None)


def _raw_value(value: object) -> str:
    if isinstance(value, email.header.Header):
        # compat32 wraps a value with 8-bit bytes in a Header whose one chunk is the raw text (surrogates)
        chunks = getattr(value, "_chunks", None)
        if isinstance(chunks, list) and all(isinstance(c, tuple) and isinstance(c[0], str) for c in chunks):
            return "".join(c[0] for c in chunks)
        return str(value)
    return str(value)


def decode_header_value(value: object) -> str:
    """An RFC 2047 header value as str, unfolded; unknown charsets and raw 8-bit bytes fall back to guessing.

    White space is dropped only between two adjacent encoded words (RFC 2047 §6.2): the folded space between
    `=?utf-8?q?J=C3=BCrg?=` and `<j@example.org>` stays. Adjacent words in one charset are decoded together (a
    multi-byte character may be split across them)."""
    text = _raw_value(value)
    if "\n" in text or "\r" in text:
        text = _LINE_BREAK.sub("", text)  # RFC 5322 unfolding: the white space after a break stays
    if "=?" not in text:
        return _clear_text(text)
    out: list[str] = []
    pending: tuple[str, bytearray] | None = None  # charset and bytes of the encoded words just read
    pos = 0
    for m in _ENCODED_WORD.finditer(text):
        gap = text[pos : m.start()]
        charset = m.group(1).split("*", 1)[0].lower()  # "*": RFC 2231 language suffix
        data = _word_bytes(m.group(2), m.group(3))
        pos = m.end()
        if pending is not None and not gap.strip():  # only white space between two encoded words: dropped
            if pending[0] == charset:
                pending[1].extend(data)
                continue
            out.append(decode_text(bytes(pending[1]), pending[0]))
        else:
            if pending is not None:
                out.append(decode_text(bytes(pending[1]), pending[0]))
            out.append(_clear_text(gap))
        pending = (charset, bytearray(data))
    if pending is not None:
        out.append(decode_text(bytes(pending[1]), pending[0]))
    out.append(_clear_text(text[pos:]))
    return "".join(out)


def _matches(name: str, patterns: list[str]) -> bool:
    return any(name == p or (p.endswith("*") and name.startswith(p[:-1])) for p in patterns)


def header_indexed(name: str, settings: Settings) -> bool:
    """False for headers excluded by fts.header_excludes (and not re-included by fts.header_includes)."""
    fts = settings.fts
    if not fts.header_excludes:
        return True
    name = name.lower()
    return not _matches(name, [p.lower() for p in fts.header_excludes]) or \
        _matches(name, [p.lower() for p in fts.header_includes])


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return None
    return decode_header_value(name) if name else None


def _raw_items(msg: Message) -> list[tuple[str, str]]:
    """(name, value) of every header as parsed. msg.items() wraps each value with 8-bit bytes in a Header whose one
    chunk is this same text (what _raw_value reads back): decoding the raw text gives the same string."""
    return msg._headers  # type: ignore[attr-defined,no-any-return]


def _decoded(value: str) -> str:
    """decode_header_value of a parsed value; plain ASCII without an encoded word is itself, unfolded."""
    if value.isascii() and "=?" not in value:  # unfolded: every CR and LF goes (see decode_header_value)
        return value.replace("\n", "").replace("\r", "") if "\n" in value or "\r" in value else value
    return decode_header_value(value)


def _header_lines(msg: Message) -> str:
    return "\n".join(f"{name}: {_decoded(value)}" for name, value in _raw_items(msg))


class _Walker:
    """Collects the body text of a message tree, part by part, within the configured limits."""

    def __init__(self, settings: Settings, *, only_attachments: bool = False) -> None:
        self.settings = settings
        self.only_attachments = only_attachments  # the Solr bridge: Dovecot sent the rest already
        self.texts: list[str] = []
        self.chars = 0
        self.parts: list[PartInfo] = []

    def add(self, text: str, attachment: bool = False) -> int:
        if self.only_attachments and not attachment:
            return 0
        room = self.settings.fts.max_text_chars - self.chars
        text = text[: max(room, 0)]
        self.texts.append(text)
        self.chars += len(text)
        return len(text)

    def walk(self, part: Message, number: str, depth: int = 0) -> None:
        ctype = part.get_content_type()
        if depth > _MAX_DEPTH:
            self.parts.append(PartInfo(number, ctype, None, 0, None, 0, "nested too deeply"))
            return
        if part.is_multipart():
            for i, sub in enumerate(part.get_payload(), 1):
                if isinstance(sub, Message):
                    if ctype == "message/rfc822" or part.get_content_maintype() == "message":
                        self.add(_header_lines(sub))
                    self.walk(sub, f"{number}.{i}" if number else str(i), depth + 1)
            return
        try:
            self.leaf(part, number or "1", ctype, depth)
        except Exception as exc:  # one broken part (a NUL in its charset, ...) costs only that part
            self.parts.append(PartInfo(number or "1", ctype, None, 0, None, 0, f"{type(exc).__name__}: {exc}"[:200]))

    def leaf(self, part: Message, number: str, ctype: str, depth: int) -> None:
        filename = _filename(part)
        if filename:
            self.add(filename)
        if ctype == "message/rfc822":  # encoded (e.g. base64) nested message: parse it as a message
            inner = parse_bytes(_payload_bytes(part))
            self.add(_header_lines(inner))
            self.walk(inner, number, depth + 1)
            return
        decoder: str | None = "text"
        skipped = None
        # A multipart whose boundary is missing or broken arrives as one leaf: its raw text is the best we have.
        plain_text = part.get_content_maintype() in ("text", "multipart") or ctype in _TEXTLIKE
        if plain_text and ctype not in ("text/plain", "text/html") and find_decoder(ctype, filename):
            plain_text = False  # text/calendar, text/csv, text/rtf: their decoder gives cleaner text
        if plain_text and self.only_attachments:
            return
        if plain_text:
            footer = _base64_footer(part)  # the footer is not the sender's text: never read as HTML
            data = footer[0] if footer is not None else _payload_bytes(part)  # the body decoded once
            size = len(data)
            text = decode_text(data, part.get_content_charset())
            if ctype == "text/html":
                text, decoder = html_to_text(text), "html"
            if footer is not None:
                text += "\n" + decode_text(footer[1], part.get_content_charset())
        else:
            skip = _skip_undecoded(part, ctype, filename, self.settings.decoders)
            if skip is not None:  # an image, audio, video, an archive: its body is never decoded
                (size, skipped), text, decoder = skip, "", None
            else:
                data = _payload_bytes(part)
                size = len(data)
                decoded = decode_attachment(data, ctype, filename, self.settings.decoders,
                                            self.settings.fts.max_text_chars)
                text, decoder, skipped = decoded.text, decoded.decoder, decoded.skipped
        chars = self.add(text, attachment=not plain_text)
        self.parts.append(PartInfo(number, ctype, filename, size, decoder, chars, skipped))


def _payload_bytes(part: Message) -> bytes:
    try:
        data = part.get_payload(decode=True) or b""
    except Exception:  # compat32 is lenient, but a broken payload must cost only this part
        data = str(part.get_payload()).encode("utf-8", "surrogateescape")
    return data if isinstance(data, bytes) else b""


_HEAD_BYTES = 64  # what find_decoder reads of a part to recognise a format by its magic bytes


def _payload_head(part: Message) -> bytes | None:
    """The first _HEAD_BYTES bytes of the decoded body, read from the start of its encoded text alone; None where
    that is not sure to equal the start of the full decoding (invalid base64, uuencode, ...)."""
    payload = getattr(part, "_payload", None)  # compat32's body text: get_payload() would copy it to check it
    if not isinstance(payload, str):
        return None
    cte = str(part.get("content-transfer-encoding", "")).lower()  # exactly as compat32's get_payload reads it
    try:
        if cte == "base64":
            used = _HEAD_BYTES * 2
            chars = b"".join(payload[:used].encode("ascii").splitlines())
            head = base64.b64decode(chars[: len(chars) // 4 * 4], validate=True)
        elif cte == "quoted-printable":
            used = _HEAD_BYTES * 8
            head = quopri.decodestring(payload[:used].encode("ascii"))
        elif cte in ("x-uuencode", "uuencode", "uue", "x-uue"):
            return None
        else:
            used = _HEAD_BYTES
            head = payload[:used].encode("ascii", "surrogateescape")
    except (ValueError, UnicodeError):  # binascii.Error is a ValueError
        return None
    if len(head) < _HEAD_BYTES and len(payload) > used:
        return None  # white space or escapes filled what was read: the whole body decides
    return head[:_HEAD_BYTES]


def _decoded_size(part: Message) -> int:
    """The size of a body once decoded, estimated from its encoded text (exact for base64 without stray
    characters)."""
    payload = getattr(part, "_payload", None)
    if not isinstance(payload, str):
        return 0
    if str(part.get("content-transfer-encoding", "")).lower() != "base64":
        return len(payload)
    chars = len(payload) - payload.count("\n") - payload.count("\r") - payload.count(" ")
    return max(0, chars * 3 // 4 - (len(payload.rstrip()) - len(payload.rstrip().rstrip("="))))


def _skip_undecoded(part: Message, ctype: str, filename: str | None,
                    limits: DecoderSettings) -> tuple[int, str] | None:
    """(size, reason) of a part that decode_attachment would skip, told from its headers and the first bytes of
    its body; None when the body is needed (a decoder or the external command takes it, or its start is unclear).
    The reasons are decode_attachment's, in its order."""
    if wants_command(limits, ctype, filename) or find_decoder(ctype, filename) is not None:
        return None
    head = _payload_head(part)
    if head is None or find_decoder(ctype, filename, head) is not None:
        return None
    size = _decoded_size(part)
    if not limits.attachments:
        return size, "attachments disabled"
    if size > limits.max_part_bytes:
        return size, f"larger than decoders.max_part_bytes ({size} bytes)"
    return size, f"no decoder for {ctype}"


def parse_message(raw: bytes, settings: Settings, *, size: int | None = None) -> ParsedMessage:
    """Decode every searchable field of one message. Never raises: a message the MIME parser cannot take keeps
    its headers and its raw body as text. `size`: the file's size when `raw` is only its head (a file larger
    than fts.max_message_bytes, of which only the header block is read)."""
    try:
        return _parse(raw, settings, size)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"[:200]
    log.debug("message not parsable as MIME (%s): indexed as raw text", reason)
    return raw_message(raw, settings, reason)


def attachment_text(raw: bytes, settings: Settings) -> tuple[str, list[PartInfo]]:
    """Only the text the attachment decoders give (PDF, office documents, calendar...: no text or HTML part, no
    header, no file name), and what became of each attachment: what the Solr bridge adds to the document Dovecot
    sent, which holds the rest. Bounded like parse_message (fts.max_text_chars, decoders.* limits). Raises:
    MimeTooComplex (and whatever the stdlib parser raises on a message it cannot take)."""
    if len(raw) > settings.fts.max_message_bytes:
        return "", []
    walker = _Walker(settings, only_attachments=True)
    walker.walk(parse_bytes(raw), "")
    return "\n".join(t for t in walker.texts if t), walker.parts


def raw_message(raw: bytes, settings: Settings, reason: str) -> ParsedMessage:
    """The fields of a message that is not parsed as MIME: its headers, and the rest as undecoded text (what
    a reader would see); every byte as text if not even the header block parses. Never raises."""
    try:
        return _raw_fallback(raw, settings, reason)
    except Exception as exc:
        parsed = ParsedMessage(body=decode_text(raw[: settings.fts.max_text_chars], None))
        parsed.headers = parsed.other_headers = parsed.body
        parsed.parts = [PartInfo("", "text/plain", None, len(raw), "raw", len(parsed.body),
                                 f"{reason}; {type(exc).__name__}: {exc}"[:200])]
        return parsed


def _parse(raw: bytes, settings: Settings, size: int | None) -> ParsedMessage:
    too_big = (len(raw) if size is None else size) > settings.fts.max_message_bytes
    msg = parse_bytes(raw, headersonly=too_big)
    parsed = _parsed_headers(msg, settings)
    walker = _Walker(settings)
    if too_big:
        walker.parts.append(PartInfo("", msg.get_content_type(), None, len(raw) if size is None else size, None, 0,
                                     "message too large"))
    else:
        walker.walk(msg, "")
    parsed.body = "\n".join(walker.texts)
    parsed.parts = walker.parts
    return parsed


def _parsed_headers(msg: Message, settings: Settings) -> ParsedMessage:
    """The header fields of a message: each value decoded once, for its own field, `headers` and `other_headers`
    (one pass: list mail has ~50 headers a message)."""
    parsed = ParsedMessage()
    everything = not settings.fts.header_excludes
    fields: dict[str, list[str]] = {name: [] for name in _OWN}
    lines: list[str] = []
    other: list[str] = []
    kept: list[tuple[str, str]] = []
    for name, raw in _raw_items(msg):
        own = fields.get(name.lower())
        if own is None and not everything and not header_indexed(name, settings):
            continue
        value = _decoded(raw)
        line = f"{name}: {value}"
        lines.append(line)
        kept.append((name, value))
        if own is None:
            other.append(line)
        else:
            own.append(value)
            other.append(f"{name}:")
    for name, values in fields.items():
        setattr(parsed, "from_" if name == "from" else name, "\n".join(values))
    parsed.headers = "\n".join(lines)
    parsed.header_items = kept
    parsed.other_headers = "\n".join(other)
    return parsed


def _raw_fallback(raw: bytes, settings: Settings, reason: str) -> ParsedMessage:
    # Only slices of the message: this is also the way out of a MemoryError, so nothing here copies it whole.
    cut = min((i for i in (raw.find(b"\n\n", 0, _MAX_HEAD), raw.find(b"\r\n\r\n", 0, _MAX_HEAD)) if i >= 0),
              default=min(len(raw), _MAX_HEAD))
    parsed = _parsed_headers(parse_bytes(raw[: cut + 1], headersonly=True), settings)
    limit = settings.fts.max_text_chars
    parsed.body = decode_text(raw[cut : cut + limit], None)[:limit]
    parsed.parts = [PartInfo("", "text/plain", None, len(raw), "raw", len(parsed.body), reason)]
    return parsed


def parse_headers(raw: bytes) -> Message:
    """Only the header block of a message (for HEADER keys and their verification)."""
    return parse_bytes(raw, headersonly=True)
