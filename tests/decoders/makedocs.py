"""Real documents made on the fly for the decoder tests and bench/bench_decoders.py.

Each `make_*` takes a list of paragraphs and returns the bytes of a file of that type holding them, written
by the library people use to write such files (reportlab, python-docx, openpyxl, python-pptx, odfpy) or, for
the tiny text formats and the hostile archives, by hand. Test-only dependencies: reportlab, python-docx,
openpyxl, python-pptx, odfpy, msoffcrypto-tool.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "data" / "attachments"
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def fixture(name: str) -> bytes:
    data = (FIXTURES / name).read_bytes()
    return gzip.decompress(data) if name.endswith(".gz") else data


def make_pdf(paragraphs: list[str], user_password: str | None = None, owner_password: str | None = None) -> bytes:
    from reportlab.lib import pdfencrypt
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    buf = io.BytesIO()
    encrypt = None
    if user_password is not None or owner_password is not None:
        encrypt = pdfencrypt.StandardEncryption(user_password or "", ownerPassword=owner_password or "owner")
    doc = SimpleDocTemplate(buf, encrypt=encrypt)
    style = getSampleStyleSheet()["BodyText"]
    doc.build([Paragraph(p, style) for p in paragraphs])
    return buf.getvalue()


def make_docx(paragraphs: list[str], header: str = "", cell: str = "") -> bytes:
    import docx

    doc = docx.Document()
    for p in paragraphs:
        doc.add_paragraph(p)
    if header:
        doc.sections[0].header.paragraphs[0].text = header
    if cell:
        doc.add_table(rows=1, cols=2).cell(0, 1).text = cell
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def make_xlsx(paragraphs: list[str]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Data"
    for i, p in enumerate(paragraphs):
        sheet.append([i, p, i * 1.5])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def make_xlsx_inline(word: str) -> bytes:
    """A minimal xlsx written by hand whose only string is an inline one (t="inlineStr"), as some exporters do."""
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    sheet = (f'<worksheet {ns}><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>{word}</t></is></c>'
             '<c r="B1"><v>12345</v></c></row></sheetData></worksheet>')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", f'<workbook {ns}><sheets><sheet name="Inline" sheetId="1"/></sheets></workbook>')
        z.writestr("xl/worksheets/sheet1.xml", sheet)
    return buf.getvalue()


def make_pptx(paragraphs: list[str], notes: str = "") -> bytes:
    import pptx

    deck = pptx.Presentation()
    for p in paragraphs:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        assert slide.shapes.title is not None
        slide.shapes.title.text = p[:40]
        slide.placeholders[1].text = p
        if notes:
            assert slide.notes_slide.notes_text_frame is not None
            slide.notes_slide.notes_text_frame.text = notes
    buf = io.BytesIO()
    deck.save(buf)
    return buf.getvalue()


def make_odf(kind: str, paragraphs: list[str]) -> bytes:
    """kind: "odt", "ods" or "odp"."""
    from odf.draw import Frame, Page, TextBox
    from odf.opendocument import OpenDocumentPresentation, OpenDocumentSpreadsheet, OpenDocumentText
    from odf.style import MasterPage, PageLayout
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    if kind == "odt":
        doc = OpenDocumentText()
        for p in paragraphs:
            doc.text.addElement(P(text=p))
    elif kind == "ods":
        doc = OpenDocumentSpreadsheet()
        table = Table(name="Sheet1")
        for p in paragraphs:
            row = TableRow()
            cell = TableCell()
            cell.addElement(P(text=p))
            row.addElement(cell)
            table.addElement(row)
        doc.spreadsheet.addElement(table)
    else:
        doc = OpenDocumentPresentation()
        layout = PageLayout(name="Layout")
        doc.automaticstyles.addElement(layout)
        master = MasterPage(name="Default", pagelayoutname=layout)
        doc.masterstyles.addElement(master)
        for p in paragraphs:
            page = Page(masterpagename=master)
            frame = Frame(width="20cm", height="10cm", x="1cm", y="1cm")
            box = TextBox()
            box.addElement(P(text=p))
            frame.addElement(box)
            page.addElement(frame)
            doc.presentation.addElement(page)
    buf = io.BytesIO()
    doc.write(buf)
    return buf.getvalue()


def make_rtf(paragraphs: list[str]) -> bytes:
    body = "".join(p.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}") + "\\par\n" for p in paragraphs)
    head = "{\\rtf1\\ansi\\ansicpg1252\\deff0{\\fonttbl{\\f0 Times New Roman;}}{\\*\\generator hand;}\n"
    return (head + "{\\b Caf\\'e9 cr\\u232?me}\\par\n" + body + "}").encode("ascii", "replace")


def make_ics(summary: str, description: str, location: str, attendee: str) -> bytes:
    fold = description[:30] + "\r\n " + description[30:]  # a folded continuation line
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VEVENT", "UID:1@example.com",
             f"SUMMARY:{summary}", f"DESCRIPTION:{fold}", f"LOCATION:{location}",
             'ORGANIZER;CN="Boss, The":mailto:boss@example.com',
             f"ATTENDEE;CN={attendee};ROLE=REQ:mailto:a@example.com",
             "DTSTART:20250101T100000Z", "END:VEVENT", "END:VCALENDAR"]
    return ("\r\n".join(lines) + "\r\n").encode()


def make_csv(rows: list[list[str]], delimiter: str = ",") -> bytes:
    import csv

    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter).writerows(rows)
    return buf.getvalue().encode("utf-8")


def encrypt_ooxml(data: bytes, password: str) -> bytes:
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(data)).encrypt(password, out)
    return out.getvalue()


def make_zip_bomb(member: str, inflated_bytes: int) -> bytes:
    """A zip whose `member` is an XML prologue then `inflated_bytes` of spaces, built without ever holding them.

    The deflate stream of a full-flushed block of spaces repeats byte for byte, so it is made once and
    repeated; only the CRC has to run over the whole length. Sizes stay under 4 GiB (no zip64).
    """
    head = f'<w:document xmlns:w="{W_NS}"><w:body>'.encode()
    block = b" " * (1 << 20)
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)
    repeated = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    count = inflated_bytes // len(block)
    stream = first + repeated * count + comp.flush()
    crc = zlib.crc32(head)
    for _ in range(count):
        crc = zlib.crc32(block, crc)
    size = len(head) + count * len(block)
    name = member.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(stream), size, len(name), 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(stream), size,
                          len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(stream), 0)
    return local + stream + central + end
