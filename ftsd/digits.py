"""Numbers written in decimal ASCII digits. str.isdigit() is also true of "²" and "٣", which int() refuses or reads
as a digit of another script, and int() refuses strings of over 4,300 digits: every number parsed with these comes
from a file, a header or a request somebody else wrote, so a bad one is "no number", never an exception."""

from __future__ import annotations

UID_MAX = 0xFFFF_FFFF  # IMAP UIDs are 32-bit non-zero numbers (RFC 3501 nz-number)


def ascii_int(text: str, max_digits: int = 20) -> int | None:
    """The number `text` writes in at most `max_digits` ASCII digits (no sign, no spaces), else None."""
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def parse_uid(text: str) -> int | None:
    """An IMAP UID (1 to 2^32 - 1) in ASCII digits, else None."""
    uid = ascii_int(text, 10)
    return uid if uid and uid <= UID_MAX else None
