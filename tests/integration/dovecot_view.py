"""Why Dovecot's own search (no FTS plugin) and ftsd answer a key differently for one message: each documented
category of docs/search-differences.md ("Dovecot's own search") has a check here. A difference no check explains
is a bug, in ftsd or in the assumptions written down there.

The checks look at the message the way Dovecot 2.3's search reads it: header values RFC 2047-decoded, text parts
decoded from their transfer encoding and charset with HTML left as source, MIME part headers in TEXT, and
strings compared after case mapping only (i;unicode-casemap: no accent folding, white space as written).
Stdlib email (compat32) and the reference's HTML-to-text (tests/reference.py), nothing from ftsd's decoding.
"""

from __future__ import annotations

import codecs
import email
import email.header
import email.message
import re
import unicodedata
from dataclasses import dataclass

from ftsd.query import Key
from tests.reference import html_visible_text
from tests.reference import normalise as ref_normalise

ADDRESS_FIELDS = ("from", "to", "cc", "bcc")

# category -> one line (the same lines head the entries of docs/search-differences.md)
CATEGORIES = {
    "html-source": "Dovecot searches HTML parts as source (tags, attributes, <title>, entities); ftsd the visible text",
    "mime-part-headers": "Dovecot's TEXT includes the headers of MIME parts; ftsd's holds the message's headers only",
    "address-form": "Dovecot's FROM/TO/CC/BCC match its re-serialised addresses; ftsd the header as written",
    "normalised": "the string occurs in the message only after ftsd's folding or decoding (accents, white space, "
                  "HTML visible text, charsets, base64 footers, attachments)",
    "header-line-form": "TEXT: ftsd writes header lines as `Name: value`; Dovecot keeps `Name:value` as written",
    "dovecot-unreadable": "Dovecot does not search a part it cannot decode (unknown charset, broken MIME)",
    "long-runs": "ftsd does not search runs of more than 64 word characters (base64, signatures, hashes)",
}


def fold(text: str) -> str:
    """Dovecot's comparison: case mapped and decomposed, nothing else."""
    return unicodedata.normalize("NFD", text).casefold()


def _decode_header(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:
        return value


def _known(label: str | None) -> bool:
    if not label:
        return True
    try:
        codecs.lookup(label.strip().strip("\"'"))
        return True
    except LookupError:
        return False


@dataclass(frozen=True, slots=True)
class DovecotView:
    headers: dict[str, str]  # lower-case name -> decoded values, newline-joined
    header_lines: str  # top-level header lines as written ("Name:value" spacing kept), values decoded
    part_headers: str  # the header blocks of MIME parts below the top level
    html: str  # HTML parts as source
    text: str  # every text part (and part of unknown type) decoded, HTML as source
    unreadable: bool  # an unknown charset label, a part Python cannot decode cleanly, or 8-bit header bytes


_HEADER_LINE = re.compile(rb"^([^:\s]+):([ \t]*)", re.M)
_LONG_RUN = re.compile(r"\w{65,}")


def dovecot_view(raw: bytes) -> DovecotView:
    msg = email.message_from_bytes(raw)
    head = raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    spacing = {m[1].decode("latin-1").lower(): m[2].decode() for m in _HEADER_LINE.finditer(head)}
    headers: dict[str, list[str]] = {}
    lines = []
    unreadable = not head.isascii()
    for name, value in msg.items():
        decoded = _decode_header(str(value))
        headers.setdefault(name.lower(), []).append(decoded)
        lines.append(f"{name}:{spacing.get(name.lower(), ' ')}{decoded}")
    part_headers, html, text = [], [], []
    for part in msg.walk():
        if part is not msg:
            part_headers.append("\n".join(f"{n}: {_decode_header(str(v))}" for n, v in part.items()))
        if part.is_multipart():
            continue
        try:
            payload = part.get_payload(decode=True)
        except Exception:
            payload = None
        data = payload if isinstance(payload, bytes) else b""
        label = part.get_content_charset()
        unreadable |= not _known(label)
        try:
            decoded = data.decode(label or "utf-8") if _known(label) else data.decode("latin-1")
        except (UnicodeDecodeError, LookupError):
            unreadable = True
            decoded = data.decode("latin-1")
        text.append(decoded)
        if part.get_content_type() == "text/html":
            html.append(decoded)
    return DovecotView({k: "\n".join(v) for k, v in headers.items()}, "\n".join(lines), "\n".join(part_headers),
                       "\n".join(html), "\n".join(text), unreadable)


def explain(key: Key, view: DovecotView, dovecot_matched: bool) -> str | None:
    """The category that explains why Dovecot and ftsd disagree on `key` for this message, or None."""
    needle = fold(key.value)
    name = key.header if key.field == "header" else key.field
    if dovecot_matched:  # ftsd missed what Dovecot found: only text ftsd leaves out on purpose explains it
        if name in ("body", "text") and needle in fold(view.html) and \
                ref_normalise(key.value) not in ref_normalise(html_visible_text(view.html)):
            return "html-source"
        if name == "text" and needle in fold(view.part_headers):
            return "mime-part-headers"
        if name == "text" and ":" in needle and needle in fold(view.header_lines):
            return "header-line-form"
        if name in ADDRESS_FIELDS and needle not in fold(view.headers.get(name or "", "")):
            return "address-form"
        if any(needle in run for run in _LONG_RUN.findall(fold(_seen(name, view)))):
            return "long-runs"
        return None
    # ftsd found what Dovecot did not
    if name in ADDRESS_FIELDS:
        return "address-form"
    seen = _seen(name, view)
    if needle not in fold(seen):
        return "normalised" if name != "text" or needle not in fold(seen.replace(":", ": ")) else "header-line-form"
    if view.unreadable:
        return "dovecot-unreadable"
    return None


def _seen(name: str | None, view: DovecotView) -> str:
    """The text Dovecot searches for a key on field `name` (a header name for HEADER)."""
    if name == "body":
        return view.text
    if name == "text":
        return view.header_lines + "\n" + view.part_headers + "\n" + view.text
    return view.headers.get(name or "", "")
