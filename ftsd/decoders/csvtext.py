"""CSV and TSV -> text: a line per record, fields tab-separated, quoting undone.

In: the file's bytes (charset guessed: UTF-8, else ICU's detector). Out: the text. The dialect (comma,
semicolon, tab, pipe) is sniffed from the first 2,000 characters only: the Sniffer's regexes are quadratic
on some inputs, and this runs in-process. A file the csv module rejects (a field past its size limit, a
stray NUL) comes back as plain decoded text instead, which indexes the same words.
"""

from __future__ import annotations

import csv
import io

from ftsd.decoders.charset import decode_text

_SNIFF = 2000


def csv_text(data: bytes, max_chars: int) -> str:
    """The fields of every record, cut near `max_chars`."""
    text = decode_text(data, None)[:max_chars].lstrip("\ufeff")
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:_SNIFF], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = csv.reader(io.StringIO(text, newline=""), dialect)
        return "\n".join("\t".join(field.strip() for field in row) for row in rows)
    except csv.Error:
        return text
