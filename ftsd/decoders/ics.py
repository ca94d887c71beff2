"""iCalendar (.ics, text/calendar: invitations) -> the values people search for.

In: the calendar bytes (UTF-8 by RFC 5545; other charsets guessed). Out: one line per SUMMARY, DESCRIPTION,
LOCATION, COMMENT, CATEGORIES, CONTACT, ORGANIZER and ATTENDEE value, after unfolding continuation lines and
undoing the \\n \\, \\; escapes; organizers and attendees as "Common Name <address>". Pure string work, linear
in the input, so it runs in-process.
"""

from __future__ import annotations

import re

from ftsd.decoders.charset import decode_text

_TEXT = {"SUMMARY", "DESCRIPTION", "LOCATION", "COMMENT", "CATEGORIES", "CONTACT"}
_PEOPLE = {"ORGANIZER", "ATTENDEE"}
_FOLD = re.compile(r"\r?\n[ \t]")
_ESCAPE = re.compile(r"\\([nN,;\\])")
_MAX_HEAD = 4096  # name and parameters end within this many characters, or the line is not one we index


def _split(line: str) -> tuple[list[str], str]:
    """'NAME;P1=a;P2="x:y":value' -> (['NAME', 'P1=a', 'P2="x:y"'], 'value'): ':' and ';' in quotes are data."""
    parts: list[str] = []
    start, quoted = 0, False
    for i, ch in enumerate(line[:_MAX_HEAD]):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in ";:":
            parts.append(line[start:i])
            start = i + 1
            if ch == ":":
                return parts, line[start:]
    return [line], ""


def _unescape(value: str) -> str:
    return _ESCAPE.sub(lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def ics_text(data: bytes, max_chars: int) -> str:
    """The searchable values of every component (events, to-dos, journal entries)."""
    lines: list[str] = []
    size = 0
    for line in _FOLD.sub("", decode_text(data, "utf-8")).splitlines():
        head, value = _split(line)
        name = head[0].upper()
        if name in _TEXT and value:
            lines.append(_unescape(value))
        elif name in _PEOPLE:
            address = value[7:] if value.lower().startswith("mailto:") else value
            cn = next((p[3:].strip('"') for p in head[1:] if p.upper().startswith("CN=")), "")
            lines.append(f"{cn} <{address}>" if cn else address)
        else:
            continue
        size += len(lines[-1])
        if size >= max_chars:
            break
    return "\n".join(lines)
