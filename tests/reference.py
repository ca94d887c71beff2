"""Brute-force reference for ftsd's search semantics (design §4), sharing no code with ftsd.

Everything here is deliberately independent of ftsd's analysis: the stdlib ``email`` package with
``email.policy.default`` (ftsd uses compat32), the stdlib ``html.parser`` and ``unicodedata``; no ICU, no
import from ``ftsd``. Query nodes are evaluated by duck typing on their class name (``Key``, ``All``, ``And``,
``Or``, ``Not``), so this module works with ``ftsd.query``'s AST without importing it.

Semantics:

* ``normalise``: NFKD + Unicode case folding, non-spacing/enclosing combining marks and invisible format
  characters (Cf) removed, runs of white space collapsed to one space (leading/trailing space is kept: it is
  significant in a substring).
* field texts (``decoded_fields``): SUBJECT/FROM/TO/CC/BCC = the whole decoded header value (RFC 2047, display
  names, addresses and comments), several occurrences joined by a newline; ``header:<name>`` = the same for any
  header; BODY = every ``text/*`` part decoded to Unicode (HTML as visible text) plus, for nested
  ``message/*`` parts, their header lines and body, plus attachment file names (``INDEX_PART_FILENAMES``);
  TEXT = the top-level header lines ("Name: value") + BODY.
* the one documented exception (``LONG_RUN_LIMIT``): a maximal run of more than 64 word characters in the
  normalised field text is replaced by one space before any substring test, so it is not searchable and no
  match can span it (spaces are not re-collapsed after the replacement).
* a key matches when its normalised value is a substring of the normalised field text; an empty (normalised)
  value matches every message, except that HEADER name "" needs the header to be present (RFC 9051,
  ``EMPTY_HEADER_KEY_NEEDS_HEADER``).

Decoding never raises: charsets are chosen by ``choose_codec`` (declared, with fallbacks for wrong, unknown or
missing labels), and a header value the email package cannot parse is taken as its raw latin-1 text.
"""

from __future__ import annotations

import binascii
import codecs
import email
import email.message
import email.policy
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from email.headerregistry import HeaderRegistry
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

# --- the documented exception ------------------------------------------------------------------------------

#: A maximal run of word characters (Python ``\w``) longer than this, in the normalised text, is not searchable.
LONG_RUN_LIMIT = 64
LONG_RUN_RE = re.compile(rf"(?<!\w)\w{{{LONG_RUN_LIMIT + 1},}}")  # the look-behind only saves time

#: ``HEADER name ""`` matches the messages that have a `name` header (RFC 9051 §6.4.4: "If the string to search
#: is zero-length, this matches all messages that have a header line with the specified field-name regardless
#: of the contents"); every other empty key matches every message (design §4).
EMPTY_HEADER_KEY_NEEDS_HEADER = True

#: BODY also holds the file name of every leaf part that has one (Content-Disposition filename or Content-Type
#: name, RFC 2231/2047 decoded), before the part's text: a search for "invoice.pdf" or "Yinxiang" finds the
#: message with that attachment, as ftsd does. (Not named in design §4; the reference follows ftsd here.)
INDEX_PART_FILENAMES = True

#: Field names of ``decoded_fields`` (plus one ``header:<lower-case name>`` entry per header present).
FIELDS = ("subject", "from", "to", "cc", "bcc", "body", "text")
HEADER_PREFIX = "header:"

_SPACE_RE = re.compile(r"\s+")
_MARK_CATEGORIES = frozenset({"Mn", "Me", "Cf"})  # Cf: invisible format characters (soft hyphen, ZWSP, bidi)


def _mark_class() -> re.Pattern[str]:
    """A character class of every non-spacing/enclosing mark and format character (Mn/Me/Cf), as code point
    ranges."""
    ranges: list[str] = []
    start = prev = -2
    for cp in range(0x80, 0x110000):
        if unicodedata.category(chr(cp)) in _MARK_CATEGORIES:
            if cp != prev + 1:
                if start >= 0:
                    ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(prev))}")
                start = cp
            prev = cp
    ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(prev))}")
    return re.compile(f"[{''.join(ranges)}]+")


_MARKS_RE = _mark_class()  # nothing ASCII is dropped


# --- normalisation ---------------------------------------------------------------------------------------------


def _fold(s: str) -> str:
    # NFKD before and after folding: folding can produce decomposable characters and vice versa.
    t = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", s).casefold())
    return _MARKS_RE.sub("", t)


_NON_ASCII_RE = re.compile("([^\x00-\x7f]+)")


def normalise(s: str) -> str:
    """Case-fold, NFKD, drop combining marks, collapse white space runs to one space. ``unicodedata`` only.

    Same result as ``_fold`` on the whole string, only faster: on ASCII, NFKD is the identity, casefold() is
    lower() and there are no marks, and none of the three steps depends on context across an ASCII character
    (casefold has no final-sigma rule; canonical reordering only moves marks, which are non-ASCII).
    """
    if s.isascii():
        return _SPACE_RE.sub(" ", s.lower())
    parts = _NON_ASCII_RE.split(s)
    parts[0::2] = [p.lower() for p in parts[0::2]]
    parts[1::2] = [_fold(p) for p in parts[1::2]]
    return _SPACE_RE.sub(" ", "".join(parts))


def searchable(normalised: str) -> str:
    """The normalised field text as the substring test sees it: ``\\w{65,}`` runs replaced by one space."""
    return LONG_RUN_RE.sub(" ", normalised)


def has_marks(word: str) -> bool:
    """True if the word carries accents or other combining marks (``Fahrländer``), i.e. folding strips some."""
    return _MARKS_RE.search(unicodedata.normalize("NFKD", word)) is not None


# --- bytes -> str ---------------------------------------------------------------------------------------------

# Labels Python does not know (or knows as a narrower charset than senders use), after the WHATWG Encoding
# Standard and what is seen in real mail. Anything else unknown falls back like an undeclared charset.
_LABEL_FIXES = {
    "default": None,
    "chinesebig5": "big5hkscs",
    "unknown-8bit": None,
    "x-unknown": None,
    "x-user-defined": None,
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "big5": "big5hkscs",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
}
_ASCII_CODECS = frozenset({"ascii"})


def codec_for(label: str | None) -> str | None:
    """Python codec name for a MIME charset label, or None if unknown/absent. QP-mangled ``3Diso-8859-1`` ok."""
    if not label:
        return None
    name = label.strip().strip("\"'").strip().lower()
    if name.startswith("3d"):  # "charset=3Diso-8859-1": the '=' of a quoted-printable-encoded header
        name = name[2:].strip("\"'")
    name = name.removesuffix("_charset")  # "gb2312_charset", "default_charset" (seen in spam)
    if name in _LABEL_FIXES:
        fixed = _LABEL_FIXES[name]
        if fixed is None:
            return None
        name = fixed
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    return info.name if getattr(info, "_is_text_encoding", True) else None  # not "base64", "rot13", ...


def _two_byte(codec: str, lead_ranges: tuple[tuple[int, int], ...]) -> Callable[[str], bool]:
    """Is a character encoded in `codec` with a lead byte in one of the ranges (symbols, level-1 characters)?"""

    def common(ch: str) -> bool:
        try:
            b = ch.encode(codec)
        except UnicodeEncodeError:
            return False
        return len(b) == 2 and any(lo <= b[0] <= hi for lo, hi in lead_ranges)

    return common


_KANA = re.compile("[\u3000-\u30ff\uff01-\uff5e]")  # CJK punctuation, kana, full-width ASCII
_JIS_COMMON = _two_byte("shift_jis", ((0x81, 0x84), (0x88, 0x98)))  # symbols, JIS level-1 kanji
_CJK_CANDIDATES: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("big5hkscs", _two_byte("big5", ((0xA1, 0xC6),))),  # symbols, Big5 level-1 (frequent) hanzi
    ("gb18030", _two_byte("gb2312", ((0xA1, 0xA9), (0xB0, 0xD7)))),  # symbols, GB2312 level-1 hanzi
    ("euc_kr", lambda ch: "\uac00" <= ch <= "\ud7a3" or _two_byte("euc_kr", ((0xA1, 0xAC),))(ch)),
    ("shift_jis", lambda ch: bool(_KANA.match(ch)) or _JIS_COMMON(ch)),
    ("euc_jp", lambda ch: bool(_KANA.match(ch)) or _JIS_COMMON(ch)),
)


def guess_cjk(data: bytes) -> str | None:
    """The CJK codec undeclared 8-bit text is in, if it looks like one; None for single-byte text.

    Double-byte text has its high bytes in pairs; of the codecs that decode it, the right one yields mostly
    *frequent* characters (the level-1 rows of Big5/GB2312/JIS, Hangul syllables, kana), a wrong one mostly
    rare ones or errors. Needs no statistics tables, and agrees with ICU's detector on the SpamAssassin corpus.
    """
    high = [i for i, b in enumerate(data) if b >= 0x80]
    if len(high) < 8:
        return None
    paired = sum(1 for i in high if (i + 1 < len(data) and data[i + 1] >= 0x80) or (i and data[i - 1] >= 0x80))
    if paired < 0.7 * len(high):
        return None
    scores: dict[str, float] = {}
    for codec, common in _CJK_CANDIDATES:
        text = data.decode(codec, "replace")
        chars = [ch for ch in text if not ch.isascii()]
        if chars:
            scores[codec] = (sum(1 for ch in chars if common(ch)) - 2 * text.count("\ufffd")) / len(chars)
    best = max(scores, key=lambda c: scores[c], default=None)
    if best is None or scores[best] < 0.8:  # not convincingly CJK (e.g. "»»»" decoration in latin-1)
        return None
    # Hangul shares its byte rows with the level-1 hanzi of GB2312 and Big5: Korean separates words with spaces,
    # so its runs of 8-bit bytes are short, while Chinese and Japanese run on for whole clauses.
    if best != "euc_kr" and scores.get("euc_kr", 0) >= scores[best] - 0.05:
        runs = [len(r) for r in re.findall(rb"[\x80-\xff]+", data)]
        if sum(runs) / len(runs) < 12:
            return "euc_kr"
    return best


# Turkish letters in ISO-8859-9/windows-1254 (ç ö ü ı ş ğ â î û and capitals): text whose letters above 0x9F are
# all among them, with at least one of those windows-1252 has as Icelandic ý þ ð Ý Þ Ð, is Turkish. (0x80-0x9F
# are the same typographic quotes and dashes in windows-1252 and -1254.)
_TURKISH_BYTES = frozenset(b"\xe7\xf6\xfc\xfd\xfe\xf0\xe2\xee\xfb\xc7\xd6\xdc\xdd\xde\xd0\xc2\xce\xdb")
_TURKISH_ONLY = frozenset(b"\xfd\xfe\xf0\xdd\xde\xd0")


def _looks_turkish(data: bytes) -> bool:
    letters = {b for b in data if b >= 0xA0}
    return bool(letters) and letters <= _TURKISH_BYTES and bool(letters & _TURKISH_ONLY)


def _decodes(data: bytes, codec: str) -> bool:
    try:
        data.decode(codec)
        return True
    except UnicodeDecodeError:
        return False


def choose_codec(data: bytes, label: str | None = None) -> tuple[str, str]:
    """(codec, errors) for bytes in a declared (maybe wrong, unknown or absent) charset.

    8-bit bytes that are valid UTF-8 are UTF-8 whatever the label says (UTF-8 mail labelled iso-8859-1 is
    common; latin-1 text is practically never valid UTF-8). Otherwise the declared charset if Python knows it
    (with replacement characters if the bytes are not valid in it; 7-bit ones such as ISO-2022-JP included).
    With no usable label: UTF-8 (plain ASCII included), else ISO-2022-JP if its escape sequences are there, else
    a CJK codec if the bytes look like one (``guess_cjk``), else windows-1254 if they look Turkish, else
    windows-1252, else latin-1 (maps every byte).
    """
    codec = codec_for(label)
    if codec and codec not in _ASCII_CODECS:
        if not data.isascii() and _decodes(data, "utf-8"):
            return "utf-8", "strict"
        return codec, "strict" if _decodes(data, codec) else "replace"
    if (b"\x1b$" in data or b"\x1b(J" in data) and _decodes(data, "iso2022_jp_ext"):  # ISO-2022-JP escapes
        return "iso2022_jp_ext", "strict"
    if _decodes(data, "utf-8"):
        return "utf-8", "strict"
    cjk = guess_cjk(data)
    if cjk:
        return cjk, "replace"
    if _looks_turkish(data):
        return "cp1254", "strict"
    return ("cp1252" if _decodes(data, "cp1252") else "latin-1"), "strict"


def decode_bytes(data: bytes, label: str | None = None) -> str:
    """Bytes in a declared (maybe wrong, unknown or absent) charset -> str (``choose_codec``). Never raises."""
    return data.decode(*choose_codec(data, label))


_SURROGATES_RE = re.compile("[\udc80-\udcff]+")


def _unescape_surrogates(s: str) -> str:
    """The email package keeps raw 8-bit header bytes as surrogate escapes: decode them as raw bytes.

    The whole value at once where possible: a double-byte character's second byte may be ASCII (Big5 ``~``).
    """
    if not _SURROGATES_RE.search(s):
        return s
    try:
        return decode_bytes(s.encode("ascii", "surrogateescape"))
    except UnicodeEncodeError:  # already decoded non-ASCII text around the raw bytes: run by run
        return _SURROGATES_RE.sub(lambda m: decode_bytes(m.group().encode("ascii", "surrogateescape")), s)


# --- headers --------------------------------------------------------------------------------------------------

# Every header is decoded as *unstructured* text: RFC 2047 words decoded, but nothing dropped (the address
# parser of policy.default would drop comments such as the name in "jm@jmason.org (Justin Mason)").
_UNSTRUCTURED = HeaderRegistry(use_default_map=False)
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")
_ENCODED_WORD_RE = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?\s]*)\?=")


def _encoded_word_bytes(encoding: str, encoded: str) -> bytes:
    try:
        if encoding in "qQ":
            return binascii.a2b_qp(encoded.encode("ascii", "replace"), header=True)
        return binascii.a2b_base64(encoded.encode("ascii", "replace") + b"==")
    except (ValueError, binascii.Error):
        return b""


def _fix_encoded_word_charsets(value: str) -> str:
    """Relabel each RFC 2047 word with the codec ``choose_codec`` picks for its bytes, then let the email package
    decode it: ``=?default?Q?..?=``, ``=?us-ascii?Q?caf=E9?=``, UTF-8 labelled iso-8859-1, big5 -> big5hkscs."""

    def fix(m: re.Match[str]) -> str:
        label = m.group(1).split("*", 1)[0]  # "*": RFC 2231 language suffix
        codec, _errors = choose_codec(_encoded_word_bytes(m.group(2), m.group(3)), label)
        return f"=?{codec}?{m.group(2)}?{m.group(3)}?="

    return _ENCODED_WORD_RE.sub(fix, value)


def decode_header_value(name: str, raw_value: str) -> str:
    """Raw (folded, possibly 8-bit-as-surrogates) header value -> decoded text. Never raises."""
    unfolded = _LINE_BREAK_RE.sub("", raw_value)
    if unfolded.isascii() and "=?" not in unfolded:
        return unfolded  # what the unstructured parser returns for such text (checked on the whole corpus)
    try:
        text = _unescape_surrogates(unfolded)
        if "=?" in text:
            text = _fix_encoded_word_charsets(text)
        return str(_UNSTRUCTURED(name, text))
    except Exception:  # pathological header: raw latin-1 text of this value
        return unfolded.encode("ascii", "surrogateescape").decode("latin-1", "replace")


def _raw_headers(msg: email.message.Message) -> list[tuple[str, str]]:
    try:
        return [(str(n), str(v)) for n, v in msg.raw_items()]
    except Exception:
        return []


def _header_lines(headers: Iterable[tuple[str, str]]) -> str:
    return "\n".join(f"{name}: {value}" for name, value in headers)


# --- HTML -----------------------------------------------------------------------------------------------------

_HIDDEN_TAGS = frozenset({"script", "style", "head", "title", "template"})
# Elements that break the line in a browser, so adjacent words never run together.
_BREAK_TAGS = frozenset(
    "address article aside blockquote br caption center dd div dl dt fieldset figcaption figure footer form "
    "frame h1 h2 h3 h4 h5 h6 header hr iframe img input li main nav ol option p pre section select table "
    "tbody td textarea tfoot th thead tr ul body html".split()
)


# What may stand in <head>; anything else (or text) ends a <head> whose end tag is missing, as in a browser.
_HEAD_CONTENT = frozenset("base basefont bgsound link meta noscript object script style template title".split())


class _VisibleText(HTMLParser):
    """Text nodes outside script/style/head, with entities resolved; img alt text (shown when images are off).

    Follows browsers on a missing ``</head>`` (body content or text closes it) and on a ``<head>`` after the
    head or the body (ignored): newsletters and spam have both, and a naive parser hides the whole message.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hidden: list[str] = []
        self.head_done = False

    def _close(self, tag: str) -> None:
        """Close `tag` and whatever is still open inside it."""
        if tag in self.hidden:
            del self.hidden[len(self.hidden) - 1 - self.hidden[::-1].index(tag) :]

    def _body_begins(self) -> None:
        if self.hidden == ["head"]:
            self.hidden.clear()
        self.head_done = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "head":
            if not self.head_done and not self.hidden:
                self.hidden.append(tag)
            return
        if tag not in _HEAD_CONTENT and tag != "html":
            self._body_begins()
        if tag in _HIDDEN_TAGS:
            self.hidden.append(tag)
            return
        if tag in _BREAK_TAGS:
            self.out.append("\n")
        if tag == "img" and not self.hidden:
            alt = dict(attrs).get("alt")
            if alt:
                self.out.append(f" {alt} ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HIDDEN_TAGS:  # <script/> opens nothing
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self._close(tag)
            self.head_done |= tag == "head"
        elif tag in _BREAK_TAGS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if self.hidden == ["head"] and data.strip():
            self._body_begins()
        if not self.hidden:
            self.out.append(data)


def html_visible_text(html: str) -> str:
    """Visible text of an HTML document. Never raises (keeps what was read before a parser error)."""
    parser = _VisibleText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:
        pass
    return "".join(parser.out)


# --- message -> field texts -----------------------------------------------------------------------------------


def _payload_bytes(part: email.message.Message) -> bytes:
    try:
        data = part.get_payload(decode=True)
    except Exception:  # broken transfer encoding: the raw payload
        data = None
        raw = part.get_payload()
        if isinstance(raw, str):
            data = raw.encode("ascii", "surrogateescape")
    return data if isinstance(data, bytes) else b""


# The base64 data of a part: leading lines of base64 characters (or blank), ending at the first padded line.
_BASE64_LINES_RE = re.compile(r"\A(?:[ \t]*[A-Za-z0-9+/]*[ \t]*(?:\r\n|\n|\r))*")
_BASE64_PADDED_RE = re.compile(r"[ \t]*[A-Za-z0-9+/]*=+[ \t]*(?:\r\n|\n|\r|\Z)")
_BASE64_LAST_RE = re.compile(r"[ \t]*[A-Za-z0-9+/]*[ \t]*\Z")


def _base64_with_footer(part: email.message.Message) -> tuple[bytes, bytes] | None:
    """A base64 text part with clear text after its data (a footer appended by a list server or a virus
    scanner): (what the data decodes to, the footer bytes); None for any other part.

    Decodes what decodes: characters outside the alphabet are ignored, a last incomplete group of 2 or 3
    characters gives its 1 or 2 bytes, a lone last character nothing."""
    if str(part.get("content-transfer-encoding", "")).strip().lower() != "base64":
        return None
    try:
        payload = part.get_payload()
    except Exception:  # 8-bit bytes and an impossible charset label
        return None
    if not isinstance(payload, str):
        return None
    lines = _BASE64_LINES_RE.match(payload)
    end = lines.end() if lines else 0
    # after the unpadded lines: at most one line that ends in padding, or a last line without a line break
    last = _BASE64_PADDED_RE.match(payload, end) or _BASE64_LAST_RE.match(payload, end)
    end = last.end() if last else end
    footer = payload[end:]
    if not footer.strip():
        return None
    chars = re.sub(r"[^A-Za-z0-9+/]", "", payload[:end])
    whole = len(chars) // 4 * 4
    data = binascii.a2b_base64(chars[:whole]) if whole else b""
    rest = chars[whole:]
    if len(rest) >= 2:
        data += binascii.a2b_base64(rest + "=" * (4 - len(rest)))
    return data, footer.encode("ascii", "surrogateescape")


def _part_text(part: email.message.Message, content_type: str) -> str:
    try:
        label = part.get_param("charset")
    except Exception:
        label = None
    label = label if isinstance(label, str) else None
    with_footer = _base64_with_footer(part)
    text = decode_bytes(with_footer[0] if with_footer else _payload_bytes(part), label)
    if content_type == "text/html":
        text = html_visible_text(text)
    if with_footer:  # the footer is not part of the sender's HTML: as plain text
        text += "\n" + decode_bytes(with_footer[1], label)
    return text


def _body_chunks(part: email.message.Message, out: list[str], accented: set[str], depth: int = 0) -> None:
    """Append the BODY text of `part` (recursively) to `out`."""
    if depth > 50:
        return
    try:
        content_type = part.get_content_type()  # parsing Content-Type is costly with policy.default: once
    except Exception:
        content_type = "text/plain"
    maintype = content_type.partition("/")[0]
    payload = part.get_payload()
    if isinstance(payload, list):  # multipart/*, or message/* whose payload the parser made a Message
        for sub in payload:
            if not isinstance(sub, email.message.Message):
                continue
            if maintype == "message":  # nested message: its headers, then its body
                lines = _header_lines((n, decode_header_value(n, v)) for n, v in _raw_headers(sub))
                out.append(lines)
                accented.update(_marked_words(lines))
            _body_chunks(sub, out, accented, depth + 1)
        return
    if INDEX_PART_FILENAMES:
        try:
            filename = part.get_filename()
        except Exception:
            filename = None
        if filename:
            out.append(str(filename))
    if maintype in ("text", "multipart", "message"):  # multipart/message without parsed structure: as text
        text = _part_text(part, content_type)
        out.append(text)
        accented.update(_marked_words(text))


_WORD_RE = re.compile(r"\w+")


def _marked_words(text: str) -> set[str]:
    """Words of the raw decoded text that carry accents (kept for query generation)."""
    if text.isascii():
        return set()
    return {w for w in _WORD_RE.findall(text) if not w.isascii() and has_marks(w) and len(w) <= LONG_RUN_LIMIT}


@dataclass(frozen=True, slots=True)
class Decoded:
    """One message, decoded: searchable field texts, all headers by lower-case name, accented raw words."""

    fields: dict[str, str]
    headers: dict[str, str]
    accented: frozenset[str]

    def lookup(self) -> dict[str, str]:
        """Fields plus ``header:<name>`` entries: what ``matches`` takes."""
        return self.fields | {HEADER_PREFIX + k: v for k, v in self.headers.items()}


_POLICY = email.policy.default


def decode_message(raw: bytes) -> Decoded:
    """Parse and decode one message. Never raises."""
    try:
        msg = email.message_from_bytes(raw, policy=_POLICY)
    except Exception:  # the parser is very tolerant; this is belt and braces
        text = searchable(normalise(raw.decode("latin-1")))
        return Decoded(dict.fromkeys(FIELDS, "") | {"body": text, "text": text}, {}, frozenset())
    headers = [(n, decode_header_value(n, v)) for n, v in _raw_headers(msg)]
    by_name: dict[str, list[str]] = {}
    for name, value in headers:
        by_name.setdefault(name.strip().lower(), []).append(value)
    accented: set[str] = set()
    header_lines = _header_lines(headers)
    accented.update(_marked_words(header_lines))
    chunks: list[str] = []
    try:
        _body_chunks(msg, chunks, accented)
    except Exception:  # unexpected parser state: the undecoded body rather than nothing
        chunks = [raw.partition(b"\n\n")[2].decode("latin-1")]
    body = normalise("\n".join(chunks))
    header_texts = {name: searchable(normalise("\n".join(values))) for name, values in by_name.items()}
    fields = {name: header_texts.get(name, "") for name in ("subject", "from", "to", "cc", "bcc")}
    fields["body"] = searchable(body)
    # = searchable(normalise(header_lines + "\n" + body)) without redoing the body: no \w run spans a space.
    body_part = fields["body"][1:] if body.startswith(" ") else fields["body"]
    fields["text"] = searchable(normalise(header_lines).rstrip(" ")) + " " + body_part
    return Decoded(fields, header_texts, frozenset(accented))


def decoded_fields(raw: bytes) -> dict[str, str]:
    """Normalised, searchable texts of subject/from/to/cc/bcc/body/text (``""`` for an absent header)."""
    return decode_message(raw).fields


def header_text(raw: bytes, name: str) -> str:
    """Normalised, searchable text of all values of header `name` (newline-joined); ``""`` if absent."""
    return decode_message(raw).headers.get(name.strip().lower(), "")


# --- query evaluation -----------------------------------------------------------------------------------------


def matches(fields_of_message: Mapping[str, str], node: Any) -> bool:
    """Evaluate a query AST (duck-typed on class name) against one message's field texts.

    `fields_of_message` maps ``subject``.. ``text`` and ``header:<lower-case name>`` to searchable text
    (``Decoded.lookup()``); a missing header is absent from the mapping.
    """
    kind = type(node).__name__
    if kind == "Key":
        needle = normalise(node.value)
        field = node.field.lower()
        if field == "header":
            haystack = fields_of_message.get(HEADER_PREFIX + str(node.header).strip().lower())
            if not needle and not EMPTY_HEADER_KEY_NEEDS_HEADER:
                return True
        else:
            if field not in FIELDS:
                raise ValueError(f"unknown search field {node.field!r}")
            haystack = fields_of_message.get(field, "")
        return haystack is not None and needle in haystack
    if kind == "All":
        return True
    if kind == "And":
        return all(matches(fields_of_message, item) for item in node.items)
    if kind == "Or":
        return matches(fields_of_message, node.left) or matches(fields_of_message, node.right)
    if kind == "Not":
        return not matches(fields_of_message, node.item)
    raise TypeError(f"unknown query node {kind}")


# --- Maildir++ ------------------------------------------------------------------------------------------------


def _maildir_key(filename: str) -> str:
    """Maildir base name (flags after ':' dropped): what dovecot-uidlist records and UIDs are ordered by."""
    return filename.split(":", 1)[0]


def _message_files(mailbox_dir: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for sub in ("cur", "new"):
        d = mailbox_dir / sub
        if not d.is_dir():
            continue
        for entry in os.scandir(d):
            if not entry.name.startswith(".") and entry.is_file():
                files.setdefault(_maildir_key(entry.name), Path(entry.path))
    return files


def _read_uidlist(path: Path) -> tuple[dict[str, int], int]:
    """``dovecot-uidlist`` -> ({base name: uid}, next uid). Version 1 (``uid name``) and 3 (``uid ... :name``)."""
    uids: dict[str, int] = {}
    next_uid = 1
    try:
        lines = path.read_text("utf-8", "surrogateescape").splitlines()
    except OSError:
        return uids, next_uid
    if lines:
        head = lines[0].split()
        if head and head[0] == "1" and len(head) >= 3 and head[2].isdigit():
            next_uid = int(head[2])
        for token in head[1:]:
            if token.startswith("N") and token[1:].isdigit():
                next_uid = int(token[1:])
    for line in lines[1:]:
        tokens = line.split(" ")
        if len(tokens) < 2 or not tokens[0].isdigit():
            continue
        # v3: "<uid> [<ext fields>] :<name>" (the name is everything after the first token starting with ':')
        marker = next((i for i, t in enumerate(tokens) if i and t.startswith(":")), None)
        name = " ".join(tokens[marker:])[1:] if marker is not None else tokens[1]
        if name:
            uids[_maildir_key(name)] = int(tokens[0])
    return uids, next_uid


def assign_uids(mailbox_dir: Path) -> list[tuple[int, Path]]:
    """(uid, path) of every message of one Maildir, ascending uid.

    From ``dovecot-uidlist`` when present (files it does not list get new UIDs after its next UID, in base-name
    order); otherwise 1..n in sorted base-name order.
    """
    files = _message_files(mailbox_dir)
    listed, next_uid = _read_uidlist(mailbox_dir / "dovecot-uidlist")
    out: list[tuple[int, Path]] = []
    for key, uid in listed.items():
        if key in files:
            out.append((uid, files.pop(key)))
    next_uid = max([next_uid, *(uid + 1 for uid, _ in out)])
    for key in sorted(files):
        out.append((next_uid, files[key]))
        next_uid += 1
    return sorted(out)


def maildir_mailboxes(root: Path) -> dict[str, Path]:
    """Mailbox name -> directory of a Maildir++ tree: INBOX = the root, ``.A.B`` -> ``A.B``."""
    boxes = {"INBOX": root}
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith(".") and entry.name not in (".", "..") and entry.is_dir():
            if any((Path(entry.path) / sub).is_dir() for sub in ("cur", "new")):
                boxes[entry.name[1:]] = Path(entry.path)
    return boxes


@dataclass(frozen=True, slots=True)
class Record:
    uid: int
    path: Path
    decoded: Decoded
    lookup: dict[str, str]


def _decode_file(path: Path) -> Decoded:
    return decode_message(path.read_bytes())


class ReferenceIndex:
    """All messages of a Maildir++ tree, decoded once; brute-force ``search``.

    Decoding happens in the constructor (``workers`` > 1 uses a process pool).
    """

    def __init__(self, maildir_root: str | os.PathLike[str], workers: int = 1) -> None:
        self.root = Path(maildir_root)
        self.mailboxes: dict[str, list[Record]] = {}
        layout = {name: assign_uids(path) for name, path in maildir_mailboxes(self.root).items()}
        paths = [p for msgs in layout.values() for _, p in msgs]
        if workers > 1 and len(paths) > 200:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(workers) as pool:
                decoded = dict(zip(paths, pool.map(_decode_file, paths, chunksize=64), strict=True))
        else:
            decoded = {p: _decode_file(p) for p in paths}
        for name, msgs in layout.items():
            self.mailboxes[name] = [Record(uid, p, decoded[p], decoded[p].lookup()) for uid, p in msgs]

    def records(self, mailbox: str | None = None) -> Iterator[Record]:
        """Records of one mailbox, or of all mailboxes (sorted by name, INBOX first) when None."""
        if mailbox is not None:
            yield from self.mailboxes[mailbox]
            return
        for name in sorted(self.mailboxes, key=lambda n: (n != "INBOX", n)):
            yield from self.mailboxes[name]

    def __len__(self) -> int:
        return sum(len(v) for v in self.mailboxes.values())

    def search(self, mailbox: str, node: Any) -> list[int]:
        """UIDs (ascending) of the messages of `mailbox` matching the query AST."""
        return [r.uid for r in self.mailboxes[mailbox] if matches(r.lookup, node)]
