"""Parse: message bytes -> the searchable fields {subject, from, to, cc, bcc, headers, body} + what each part gave.

The `compat32` parser with explicit decoding is used on purpose: `email.policy.default` parses ~40x slower
(~160 msg/s against ~6,700 msg/s measured on the SpamAssassin corpus) and raises on dirt that real mail has.
Header values are RFC 2047-decoded with the charset fallback of decoders.charset; text parts are decoded with their
declared charset (or a guess); HTML is reduced to visible text; nested message/rfc822 parts contribute their
headers and body; other parts go to the attachment decoders. Nothing here raises on bad input: a part that cannot
be read is recorded with the reason and the rest of the message is kept.
"""

from __future__ import annotations

import email
import email.header
import email.parser
import email.utils
from dataclasses import dataclass, field
from email.message import Message

from ftsd.decoders import decode_attachment, find_decoder
from ftsd.decoders.charset import decode_text
from ftsd.decoders.html import html_to_text
from ftsd.settings import Settings

ADDRESS_FIELDS = ("from", "to", "cc", "bcc")
# Parts that are text even though their type is not text/*. (PGP signatures are base64 noise: not indexed.)
_TEXTLIKE = {"message/delivery-status", "message/disposition-notification"}
_MAX_DEPTH = 20


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

    def header_field(self, name: str) -> str:
        return {"subject": self.subject, "from": self.from_, "to": self.to, "cc": self.cc, "bcc": self.bcc}[name]


def decode_header_value(value: object) -> str:
    """An RFC 2047 header value as str; unknown charsets and raw 8-bit bytes fall back to guessing."""
    if isinstance(value, email.header.Header):
        value = value.encode()
    text = str(value)
    try:
        chunks = email.header.decode_header(text)
    except Exception:  # malformed encoded-words: keep the raw text
        chunks = [(text, None)]
    out = []
    for data, charset in chunks:
        if isinstance(data, str):
            # compat32 keeps undeclared 8-bit header bytes as surrogate escapes: decode them properly
            out.append(decode_text(data.encode("utf-8", "surrogateescape"), None) if not data.isascii() else data)
        else:
            out.append(decode_text(data, charset))
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


def _header_lines(msg: Message) -> str:
    return "\n".join(f"{name}: {decode_header_value(value)}" for name, value in msg.items())


class _Walker:
    """Collects the body text of a message tree, part by part, within the configured limits."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.texts: list[str] = []
        self.chars = 0
        self.parts: list[PartInfo] = []

    def add(self, text: str) -> int:
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
        self.leaf(part, number or "1", ctype, depth)

    def leaf(self, part: Message, number: str, ctype: str, depth: int) -> None:
        try:
            data = part.get_payload(decode=True) or b""
        except Exception:  # compat32 is lenient, but a broken payload must cost only this part
            data = str(part.get_payload()).encode("utf-8", "surrogateescape")
        if not isinstance(data, bytes):
            data = b""
        filename = _filename(part)
        if filename:
            self.add(filename)
        decoder: str | None = "text"
        skipped = None
        if ctype == "message/rfc822":  # encoded (e.g. base64) nested message: parse it as a message
            inner = email.message_from_bytes(data)
            self.add(_header_lines(inner))
            self.walk(inner, number, depth + 1)
            return
        # A multipart whose boundary is missing or broken arrives as one leaf: its raw text is the best we have.
        plain_text = part.get_content_maintype() in ("text", "multipart") or ctype in _TEXTLIKE
        if plain_text and ctype not in ("text/plain", "text/html") and find_decoder(ctype, filename):
            plain_text = False  # text/calendar, text/csv, text/rtf: their decoder gives cleaner text
        if plain_text:
            text = decode_text(data, part.get_content_charset())
            if ctype == "text/html":
                text, decoder = html_to_text(text), "html"
        else:
            decoded = decode_attachment(data, ctype, filename, self.settings.decoders)
            text, decoder, skipped = decoded.text, decoded.decoder, decoded.skipped
        chars = self.add(text)
        self.parts.append(PartInfo(number, ctype, filename, len(data), decoder, chars, skipped))


def parse_message(raw: bytes, settings: Settings) -> ParsedMessage:
    """Decode every searchable field of one message. Never raises on malformed mail."""
    too_big = len(raw) > settings.fts.max_message_bytes
    parser = email.parser.BytesParser()
    msg = parser.parsebytes(raw, headersonly=too_big)
    parsed = ParsedMessage()
    for name in ("subject", *ADDRESS_FIELDS):
        values = msg.get_all(name) or []
        text = "\n".join(decode_header_value(v) for v in values)
        setattr(parsed, "from_" if name == "from" else name, text)
    own = ("subject", *ADDRESS_FIELDS)
    items = [(n, v) for n, v in msg.items() if n.lower() in own or header_indexed(n, settings)]
    parsed.headers = "\n".join(f"{name}: {decode_header_value(value)}" for name, value in items)
    parsed.other_headers = "\n".join(
        f"{name}:" if name.lower() in own else f"{name}: {decode_header_value(value)}" for name, value in items
    )
    walker = _Walker(settings)
    if too_big:
        walker.parts.append(PartInfo("", msg.get_content_type(), None, len(raw), None, 0, "message too large"))
    else:
        walker.walk(msg, "")
    parsed.body = "\n".join(walker.texts)
    parsed.parts = walker.parts
    return parsed


def parse_headers(raw: bytes) -> Message:
    """Only the header block of a message (for HEADER keys and their verification)."""
    return email.parser.BytesParser().parsebytes(raw, headersonly=True)
