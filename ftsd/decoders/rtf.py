"""RTF bytes -> plain text, with striprtf (a small, maintained, pure-Python converter; linear regexes).

In: the RTF file. Out: its text; `\\ansicpgNNNN` in the header picks the code page for `\\'hh` escapes and raw
8-bit bytes (cp1252 when absent, as Word writes it); `\\uN` escapes are Unicode. Embedded pictures and
other destinations (`{\\*\\...}`) are dropped by striprtf. Runs in the sandbox: it is pure Python, but a few
MB of RTF is a few seconds of regex work, which the timeout must be able to cut.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable

from striprtf.striprtf import rtf_to_text

from ftsd.errors import DecodeError

_to_text: Callable[..., str] = rtf_to_text  # striprtf ships py.typed but leaves this one untyped


def _codepage(head: bytes) -> str:
    found = re.search(rb"\\ansicpg(\d{3,5})", head)
    if found:
        try:
            return codecs.lookup(f"cp{int(found.group(1))}").name
        except LookupError:
            pass
    return "cp1252"


def rtf_text(data: bytes, max_chars: int) -> str:
    """The text of an RTF document. Raises: DecodeError if it does not start like one."""
    if not data.lstrip()[:5] == b"{\\rtf":
        raise DecodeError("not an RTF document")
    encoding = _codepage(data[:4096])
    return _to_text(data.decode(encoding, "replace"), encoding=encoding, errors="replace")
