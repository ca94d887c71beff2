"""Legacy binary Office documents (OLE2 compound files) -> text: .doc, .xls, .ppt.

In: the bytes of the file. Out: its text, or DecodeError("encrypted document") for a password-protected one.
- .xls: xlrd (maintained for exactly this format since 2.0): sheet names, then rows, cells tab-separated.
- .doc: olefile opens the container; the text is read through the piece table ([MS-DOC] 2.8.35, the Clx in
  the table stream), so fast-saved documents come out right too. Field codes (HYPERLINK ...) are dropped,
  their results kept. Word 95 and older (another FIB layout) are refused.
- .ppt: olefile, then a walk over the records of the "PowerPoint Document" stream collecting TextCharsAtom
  (UTF-16) and TextBytesAtom (Latin-1); master slides ("Click to edit ...") are skipped.
Only olefile and xlrd are needed; without either, the formats it serves are simply not registered.
"""

from __future__ import annotations

import io
import re
import struct

import olefile
import xlrd  # type: ignore[import-untyped]

from ftsd.errors import DecodeError

_FIB_ENCRYPTED = 0x0100
_FIB_TABLE1 = 0x0200
_FIB_CLX = 0x01A2  # fcClx, lcbClx in FibRgFcLcb97
_COMPRESSED = 0x40000000
_FIELD = re.compile(r"\x13[^\x13\x14\x15]*(?:\x14([^\x13\x15]*))?\x15")  # innermost field: code, result
# Paragraph, cell end, line break, page and column breaks, non-breaking hyphen; other controls dropped.
_WORD_MARKS = {"\r": "\n", "\x07": "\t", "\x0b": "\n", "\x0c": "\n", "\x0e": "\n", "\x1e": "-"}
_WORD_CONTROLS = str.maketrans({**{chr(c): None for c in range(32) if chr(c) not in "\t\n"}, **_WORD_MARKS})

_PPT_TEXT_CHARS, _PPT_TEXT_BYTES, _PPT_MAIN_MASTER = 0x0FA0, 0x0FA8, 0x03F8


def _open(data: bytes) -> olefile.OleFileIO:
    try:
        ole = olefile.OleFileIO(data)
    except (OSError, ValueError, struct.error) as exc:  # olefile raises OSError for "not an OLE2 file"
        raise DecodeError(f"not an OLE2 compound file: {exc}") from None
    if ole.exists("EncryptedPackage") or ole.exists("EncryptedSummary"):
        ole.close()
        raise DecodeError("encrypted document")
    return ole


def _stream(ole: olefile.OleFileIO, name: str) -> bytes:
    if not ole.exists(name):
        raise DecodeError(f"no {name} stream")
    data: bytes = ole.openstream(name).read()
    return data


def doc_text(data: bytes, max_chars: int) -> str:
    """Word 97-2003: the text of every piece of the piece table, in character-position order."""
    ole = _open(data)
    try:
        word = _stream(ole, "WordDocument")
        if len(word) < _FIB_CLX + 8 or struct.unpack_from("<H", word, 0)[0] != 0xA5EC:
            raise DecodeError("not a Word 97-2003 document")
        n_fib, flags = struct.unpack_from("<H", word, 2)[0], struct.unpack_from("<H", word, 0x0A)[0]
        if flags & _FIB_ENCRYPTED:
            raise DecodeError("encrypted document")
        if n_fib < 0x00C1:
            raise DecodeError("Word 95 or older: not supported")
        table = _stream(ole, "1Table" if flags & _FIB_TABLE1 else "0Table")
    finally:
        ole.close()
    fc_clx, lcb_clx = struct.unpack_from("<II", word, _FIB_CLX)
    clx = table[fc_clx:fc_clx + lcb_clx]
    pos = 0
    while pos < len(clx) and clx[pos] == 0x01:  # Prc: formatting, skipped
        pos += 3 + struct.unpack_from("<H", clx, pos + 1)[0]
    if pos + 5 > len(clx) or clx[pos] != 0x02:
        raise DecodeError("no piece table")
    size = struct.unpack_from("<I", clx, pos + 1)[0]
    plc = clx[pos + 5:pos + 5 + size]
    count = (len(plc) - 4) // 12
    cps = struct.unpack_from(f"<{count + 1}I", plc, 0)
    pieces: list[str] = []
    total = 0
    for i in range(count):
        fc = struct.unpack_from("<I", plc, 4 * (count + 1) + 8 * i + 2)[0]
        chars = max(0, min(cps[i + 1] - cps[i], max_chars - total))
        if fc & _COMPRESSED:
            start = (fc & ~_COMPRESSED) // 2
            pieces.append(word[start:start + chars].decode("cp1252", "replace"))
        else:
            pieces.append(word[fc:fc + 2 * chars].decode("utf-16-le", "replace"))
        total += chars
    text = "".join(pieces)
    while "\x13" in text:  # nested fields resolve inside out
        text, found = _FIELD.subn(lambda m: m.group(1) or "", text)
        if not found:
            break
    return text.translate(_WORD_CONTROLS)


def ppt_text(data: bytes, max_chars: int) -> str:
    """PowerPoint 97-2003: text atoms of the slides and notes, master slides left out."""
    ole = _open(data)
    try:
        stream = _stream(ole, "PowerPoint Document")
    finally:
        ole.close()
    parts: list[str] = []
    pos = total = 0
    while pos + 8 <= len(stream) and total < max_chars:
        ver_instance, kind, size = struct.unpack_from("<HHI", stream, pos)
        if ver_instance & 0x0F == 0x0F and kind != _PPT_MAIN_MASTER:
            pos += 8  # a container: walk into it
            continue
        body = stream[pos + 8:pos + 8 + size]
        if kind in (_PPT_TEXT_CHARS, _PPT_TEXT_BYTES):
            text = body.decode("utf-16-le", "replace") if kind == _PPT_TEXT_CHARS else body.decode("latin-1")
            if text != "*":  # the date / slide-number placeholder of notes and handout masters
                parts.append(text)
                total += len(text)
        pos += 8 + size
    return "\n".join(parts).replace("\r", "\n").replace("\x0b", "\n")


def xls_text(data: bytes, max_chars: int) -> str:
    """Excel 97-2003: each sheet's name, then its rows."""
    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True, ragged_rows=True, logfile=io.StringIO())
    except xlrd.XLRDError as exc:
        raise DecodeError("encrypted document" if "encrypted" in str(exc).lower() else str(exc)) from None
    except (struct.error, IndexError, ValueError, AssertionError, KeyError) as exc:
        raise DecodeError(f"unreadable workbook: {type(exc).__name__}: {exc}") from None
    lines: list[str] = []
    total = 0
    try:
        for index in range(book.nsheets):
            sheet = book.sheet_by_index(index)
            lines.append(sheet.name)
            for row in range(sheet.nrows):
                cells = [_cell(value) for value in sheet.row_values(row)]
                lines.append("\t".join(cell for cell in cells if cell))
                total += len(lines[-1])
                if total >= max_chars:
                    return "\n".join(lines)
            book.unload_sheet(index)
    finally:
        book.release_resources()
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()
