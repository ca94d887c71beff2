"""Bytes in a declared (possibly wrong or missing) charset -> str. Total: never raises on any input.

Order: the declared charset if Python knows it and the bytes decode cleanly; else UTF-8 if they are valid
UTF-8 (mail labelled latin-1 is often UTF-8); else ICU's charset detector; else the declared charset with
replacement characters; else windows-1252, which maps every byte.
"""

from __future__ import annotations

import codecs

import icu

# Labels seen in real mail that Python does not know, mapped to what the sender meant.
_ALIASES = {
    "3diso-8859-1": "iso-8859-1",
    "default": "windows-1252",
    "unknown-8bit": "windows-1252",
    "x-unknown": "windows-1252",
    "iso-8859-8-i": "iso-8859-8",
    "ks_c_5601-1987": "cp949",
    "x-user-defined": "windows-1252",
    "gb2312": "gb18030",  # gb18030 is a superset; senders labelled GBK text gb2312
    "gbk": "gb18030",
}


_SINGLE_BYTE_DEFAULTS = {"ascii", "latin-1", "iso8859-1", "iso8859-15", "cp1252"}
_NO_MAIL_CHARSETS = frozenset({"undefined", "idna", "punycode"})


def _decoded(data: bytes, charset: str, errors: str = "strict") -> str | None:
    """`data` in `charset`, or None where that codec fails on it (any codec error, not only UnicodeDecodeError:
    a codec that only ever raises must never take the message down)."""
    try:
        return data.decode(charset, errors)
    except (UnicodeError, LookupError):
        return None


def known_charset(label: str | None) -> str | None:
    """Python's codec name for a MIME charset label, or None if unknown."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):  # ValueError: a NUL inside the label ("utf\0-8"), as crafted mail has
        return None
    # bytes-to-bytes codecs (base64, rot13, zlib...) are no charsets; "undefined" and "idna" refuse any bytes
    if not getattr(info, "_is_text_encoding", True) or info.name in _NO_MAIL_CHARSETS:
        return None
    return info.name


def _detect(data: bytes) -> str | None:
    try:
        detector = icu.CharsetDetector(data)
        match = detector.detect()
        if match.getConfidence() >= 30:
            return known_charset(match.getName())
    except icu.ICUError:
        pass
    return None


def decode_text(data: bytes, declared: str | None) -> str:
    """Decode `data` using the declared charset with fallbacks. Total on arbitrary bytes."""
    charset = known_charset(declared)
    if charset in _SINGLE_BYTE_DEFAULTS and not data.isascii():
        # Latin-1 decodes any bytes, so a UTF-8 body mislabelled latin-1 would become mojibake ("KÃ¶lsch"):
        # valid UTF-8 with non-ASCII bytes is almost never meant as Latin-1.
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    if charset and charset not in ("ascii", "us-ascii"):
        text = _decoded(data, charset)
        if text is not None:
            return text
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if charset and charset != "ascii":
        # One stray byte in otherwise good Big5/GB text: keep the declared charset rather than guess another.
        text = _decoded(data, charset, "replace")
        if text is not None and text.count("\ufffd") <= max(2, len(text) // 200):
            return text
    detected = _detect(data)
    if detected:
        text = _decoded(data, detected)
        if text is not None:
            return text
        text = _decoded(data, detected, "replace")
        if text is not None and text.count("\ufffd") <= max(2, len(text) // 200):
            return text
    return _decoded(data, charset or "windows-1252", "replace") or data.decode("windows-1252", "replace")
