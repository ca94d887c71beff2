"""OOXML (docx, xlsx, pptx and their macro/template variants) and OpenDocument (odt, ods, odp) -> text.

In: the bytes of the zip. Out: the text of its XML parts, a line per paragraph (per row for spreadsheets,
cells tab-separated), cut near fts.max_text_chars. Only the stdlib: `zipfile`, and expat as a streaming parser,
so no XML tree is ever built and a part is read in 64 KB chunks.

Zip bombs: more than MAX_MEMBERS members, or members that declare more than MAX_DECLARED bytes in all, are
refused before anything is inflated; then the bytes actually inflated are counted, and past MAX_INFLATED
(50x the text cap) the document is refused too, within a fraction of a second. DOCTYPEs are refused (OOXML
and ODF have none), which also rules out entity-expansion tricks. An OOXML file that is an OLE2 container
holding an `EncryptedPackage` is a password-protected document, as is an ODF with encryption-data.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Callable
from typing import Protocol
from xml.parsers import expat

from ftsd.digits import ascii_int
from ftsd.errors import DecodeError

MAX_MEMBERS = 10_000
MAX_DECLARED = 1_000_000_000
MAX_INFLATED = 100_000_000  # bytes inflated from one archive: past it, a zip bomb
_CHUNK = 1 << 16
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_PACKAGE = "EncryptedPackage".encode("utf-16-le")  # the OLE2 directory entry's name


# What zipfile raises on damaged, oddly compressed or password-protected members.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError, OSError)


class _Sink(Protocol):
    full: bool

    def start(self, name: str, attrs: dict[str, str]) -> None: ...
    def end(self, name: str) -> None: ...
    def data(self, text: str) -> None: ...


class _Text:
    """Character data inside elements named `inside`, a newline after each of `lines`, `marks` as given."""

    def __init__(self, inside: str, lines: set[str], marks: dict[str, str], limit: int) -> None:
        self.inside, self.lines, self.marks, self.limit = inside, lines, marks, limit
        self.depth = 0
        self.chunks: list[str] = []
        self.size = 0
        self.full = False

    def emit(self, text: str) -> None:
        self.chunks.append(text)
        self.size += len(text)
        self.full = self.size >= self.limit

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if name == self.inside:
            self.depth += 1
        elif name in self.marks:
            self.emit(self.marks[name])

    def end(self, name: str) -> None:
        if name == self.inside:
            self.depth -= 1
        elif name in self.lines and self.chunks and self.chunks[-1] != "\n":
            self.emit("\n")

    def data(self, text: str) -> None:
        if self.depth:
            self.emit(text)

    def text(self) -> str:
        return "".join(self.chunks)


class _SharedStrings(_Text):
    """xl/sharedStrings.xml: one string per <si>, phonetic guides (<rPh>) left out."""

    def __init__(self, limit: int) -> None:
        super().__init__("t", set(), {}, limit)
        self.strings: list[str] = []
        self.phonetic = 0

    def start(self, name: str, attrs: dict[str, str]) -> None:
        self.phonetic += name == "rPh"
        super().start(name, attrs)

    def end(self, name: str) -> None:
        self.phonetic -= name == "rPh"
        super().end(name)
        if name == "si":
            self.strings.append("".join(self.chunks))
            self.chunks.clear()

    def data(self, text: str) -> None:
        if not self.phonetic:
            super().data(text)


class _Sheet(_Text):
    """A worksheet: a line per row, cells tab-separated; shared-string cells looked up, inline strings kept."""

    def __init__(self, shared: list[str], into: _Text) -> None:
        super().__init__("", set(), {}, into.limit)
        self.shared, self.into = shared, into
        self.kind = ""
        self.value: list[str] = []
        self.row: list[str] = []
        self.reading = False

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if name == "c":
            self.kind, self.value = attrs.get("t", "n"), []
        self.reading = name == "v" or (name == "t" and self.kind == "inlineStr")

    def end(self, name: str) -> None:
        self.reading = False
        if name == "c":
            value = "".join(self.value).strip()
            if self.kind == "s":
                index = ascii_int(value, 9)
                value = self.shared[index] if index is not None and index < len(self.shared) else ""
            if value and self.kind != "b":
                self.row.append(value)
        elif name == "row" and self.row:
            self.into.emit("\t".join(self.row) + "\n")
            self.row.clear()
        self.full = self.into.full

    def data(self, text: str) -> None:
        if self.reading:
            self.value.append(text)


class _Archive:
    """A zip opened with the bomb checks; members are parsed while inflated bytes are counted."""

    def __init__(self, data: bytes) -> None:
        if data.startswith(OLE_MAGIC):
            if _ENCRYPTED_PACKAGE in data:
                raise DecodeError("encrypted document")
            raise DecodeError("an OLE2 file, not a zip: a legacy Office document under the wrong name?")
        try:
            self.zip = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
            raise DecodeError(f"not a zip archive: {exc}") from None
        infos = self.zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise DecodeError(f"zip bomb: {len(infos)} members")
        declared = sum(info.file_size for info in infos)
        if declared > MAX_DECLARED:
            raise DecodeError(f"zip bomb: members declare {declared} bytes uncompressed")
        self.names = [info.filename for info in infos]
        self.inflated = 0

    def numbered(self, pattern: str) -> list[str]:
        """Member names matching `pattern` (whose one group is a number of at most 9 ASCII digits), in numeric
        order."""
        found = [(int(m.group(1) or 0), name) for name in self.names if (m := re.fullmatch(pattern, name))]
        return [name for _, name in sorted(found)]

    def read_small(self, name: str, limit: int = 1 << 20) -> bytes:
        try:
            with self.zip.open(name) as member:
                data = member.read(limit)
        except _ZIP_ERRORS as exc:
            raise DecodeError(f"{name}: {exc}") from None
        self.inflated += len(data)
        return data

    def parse(self, name: str, sink: _Sink) -> None:
        """Stream member `name` through expat into `sink`, stopping early once the sink is full."""
        parser = expat.ParserCreate(namespace_separator="}")
        parser.buffer_text = True
        local: Callable[[str], str] = lambda tag: tag.rpartition("}")[2]  # noqa: E731
        parser.StartElementHandler = lambda tag, attrs: sink.start(local(tag), attrs)
        parser.EndElementHandler = lambda tag: sink.end(local(tag))
        parser.CharacterDataHandler = sink.data
        parser.StartDoctypeDeclHandler = _refuse_doctype
        try:
            with self.zip.open(name) as member:
                while chunk := member.read(_CHUNK):
                    self.inflated += len(chunk)
                    if self.inflated > MAX_INFLATED:
                        raise DecodeError(f"zip bomb: more than {MAX_INFLATED} bytes inflated")
                    parser.Parse(chunk, False)
                    if sink.full:
                        return
                parser.Parse(b"", True)
        except expat.ExpatError as exc:
            raise DecodeError(f"{name}: malformed XML: {exc}") from None
        except _ZIP_ERRORS as exc:
            raise DecodeError(f"{name}: {exc}") from None


def _refuse_doctype(*_: object) -> None:
    raise DecodeError("XML with a DOCTYPE (entity expansion?)")


def _parse_all(archive: _Archive, names: list[str], sink: _Text) -> str:
    for name in names:
        if sink.full:
            break
        archive.parse(name, sink)
    return sink.text()


def _main_part(archive: _Archive, default: str) -> str:
    """The officeDocument target named by _rels/.rels, else the usual name."""
    if "_rels/.rels" in archive.names:
        rels = archive.read_small("_rels/.rels").decode("utf-8", "replace")
        for rel in re.findall(r"<Relationship\b[^>]*>", rels):
            target = re.search(r'Target="([^"]+)"', rel)
            if rel.find("/officeDocument\"") > 0 and target and target.group(1).lstrip("/") in archive.names:
                return target.group(1).lstrip("/")
    return default


def docx_text(data: bytes, max_chars: int) -> str:
    """Word: the body, then footnotes, endnotes, comments, headers and footers."""
    archive = _Archive(data)
    main = _main_part(archive, "word/document.xml")
    folder = main.rpartition("/")[0] + "/"
    notes = [folder + name for name in ("footnotes.xml", "endnotes.xml", "comments.xml")]
    extra = [name for name in notes if name in archive.names]
    for kind in ("header", "footer"):
        extra += archive.numbered(re.escape(folder) + kind + r"([0-9]{0,9})\.xml")
    sink = _Text("t", {"p", "tr"}, {"tab": "\t", "br": "\n", "cr": "\n", "tc": "\t"}, max_chars)
    return _parse_all(archive, [main, *extra], sink)


def pptx_text(data: bytes, max_chars: int) -> str:
    """PowerPoint: slides in order, then the speaker notes."""
    archive = _Archive(data)
    names = (archive.numbered(r"ppt/slides/slide([0-9]{1,9})\.xml")
             + archive.numbered(r"ppt/notesSlides/notesSlide([0-9]{1,9})\.xml"))
    return _parse_all(archive, names, _Text("t", {"p"}, {"br": "\n", "tab": "\t"}, max_chars))


def xlsx_text(data: bytes, max_chars: int) -> str:
    """Excel: sheet names, then each sheet's rows (shared strings and inline strings resolved)."""
    archive = _Archive(data)
    out = _Text("", set(), {}, max_chars)
    if "xl/workbook.xml" in archive.names:
        workbook = archive.read_small("xl/workbook.xml").decode("utf-8", "replace")
        out.emit("".join(f"{name}\n" for name in re.findall(r'<(?:\w+:)?sheet\b[^>]*\bname="([^"]*)"', workbook)))
    shared = _SharedStrings(max_chars)
    if "xl/sharedStrings.xml" in archive.names:
        archive.parse("xl/sharedStrings.xml", shared)
    for name in archive.numbered(r"xl/worksheets/sheet([0-9]{1,9})\.xml"):
        if out.full:
            break
        archive.parse(name, _Sheet(shared.strings, out))
    return out.text()


def odf_text(data: bytes, max_chars: int) -> str:
    """OpenDocument: everything inside <office:body> of content.xml."""
    archive = _Archive(data)
    if "META-INF/manifest.xml" in archive.names and b"encryption-data" in archive.read_small("META-INF/manifest.xml"):
        raise DecodeError("encrypted document")
    if "content.xml" not in archive.names:
        raise DecodeError("no content.xml: not an OpenDocument file")
    marks = {"s": " ", "tab": "\t", "line-break": "\n", "table-cell": "\t"}
    return _parse_all(archive, ["content.xml"], _Text("body", {"p", "h", "table-row"}, marks, max_chars))
