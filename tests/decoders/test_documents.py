"""Each supported type: a real document holding a word found nowhere else comes out of decode_attachment."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ftsd.decoders import EXTENSIONS, REGISTRY, decode_attachment, find_decoder
from ftsd.settings import DecoderSettings, FtsSettings
from tests.decoders import makedocs as mk

TEXT_CHARS = FtsSettings().max_text_chars  # fts.max_text_chars: what message.py passes

LIMITS = DecoderSettings()
OOXML = "application/vnd.openxmlformats-officedocument."
ODF = "application/vnd.oasis.opendocument."


def decode(data: bytes, content_type: str, filename: str | None = None) -> str:
    result = decode_attachment(data, content_type, filename, LIMITS, TEXT_CHARS)
    assert result.skipped is None, result
    return result.text


def test_pdf() -> None:
    data = mk.make_pdf(["An ordinary paragraph.", "The pdfquokka hides in the second paragraph, naïve café."])
    text = decode(data, "application/pdf")
    assert "pdfquokka" in text and "naïve café" in text


def test_pdf_with_only_an_owner_password_opens_for_anyone() -> None:
    data = mk.make_pdf(["ownerlocked words"], owner_password="boss")
    assert "ownerlocked" in decode(data, "application/pdf")


def test_pdf_sent_as_octet_stream_is_found_by_extension_or_magic() -> None:
    data = mk.make_pdf(["pdfnarwhal"])
    assert "pdfnarwhal" in decode(data, "application/octet-stream", "Report.PDF")
    assert "pdfnarwhal" in decode(data, "application/octet-stream", None)


def test_docx_body_table_and_header() -> None:
    data = mk.make_docx(["Body with docxokapi inside.", "Zweiter Absatz: Größe"], header="hdrlemur", cell="celltapir")
    text = decode(data, OOXML + "wordprocessingml.document")
    for word in ("docxokapi", "Größe", "hdrlemur", "celltapir"):
        assert word in text
    assert "docxokapi" in decode(data, "application/octet-stream", "letter.docx")


def test_xlsx_shared_strings_numbers_and_sheet_name() -> None:
    text = decode(mk.make_xlsx(["xlsxaxolotl", "other"]), OOXML + "spreadsheetml.sheet")
    assert "xlsxaxolotl" in text and "Data" in text
    assert "1.5" in text.split()  # numeric cells are indexed too


def test_xlsx_inline_strings() -> None:
    text = decode(mk.make_xlsx_inline("inlinegecko"), "application/octet-stream", "export.xlsx")
    assert "inlinegecko" in text and "12345" in text and "Inline" in text


def test_pptx_slides_and_notes() -> None:
    data = mk.make_pptx(["First slide about pptxibis", "Second slide"], notes="notesmarmot")
    text = decode(data, OOXML + "presentationml.presentation")
    assert "pptxibis" in text and "notesmarmot" in text
    assert text.index("pptxibis") < text.index("Second slide")


@pytest.mark.parametrize("kind, mime", [("odt", "text"), ("ods", "spreadsheet"), ("odp", "presentation")])
def test_opendocument(kind: str, mime: str) -> None:
    word = f"{kind}wallaby"
    data = mk.make_odf(kind, ["plain first paragraph", f"then {word} and Ærø"])
    assert word in decode(data, ODF + mime)
    assert "Ærø" in decode(data, "application/octet-stream", f"file.{kind}")


def test_legacy_doc() -> None:
    text = decode(mk.fixture("legacy.doc"), "application/msword")
    assert "quokkaphant" in text and "Grüße" in text and "cellzebu" in text


def test_legacy_xls() -> None:
    text = decode(mk.fixture("legacy.xls"), "application/vnd.ms-excel")
    assert "xlsmarmoset" in text and "Inventory" in text


def test_legacy_ppt() -> None:
    text = decode(mk.fixture("legacy.ppt.gz"), "application/octet-stream", "deck.ppt")
    assert "Pptpangolin" in text and "wombatine" in text
    assert "Click to edit" not in text  # master-slide placeholders are left out


def test_rtf() -> None:
    text = decode(mk.make_rtf(["A paragraph with rtfkinkajou {braced}."]), "application/rtf")
    assert "rtfkinkajou" in text and "Café crème" in text and "{braced}" in text


def test_ics() -> None:
    data = mk.make_ics("Budget icsnumbat review", "Bring the figures for the whole quarter, icsfolded words", "Room 4",
                       "Jane Icsdoe")
    text = decode(data, "text/calendar")
    assert "icsnumbat" in text and "icsfolded" in text and "Room 4" in text
    assert "Jane Icsdoe <a@example.com>" in text and "Boss, The <boss@example.com>" in text
    assert "DTSTART" not in text and "20250101" not in text


def test_csv_and_tsv() -> None:
    rows = [["name", "note"], ["x", 'csvdingo, "quoted"']]
    assert 'csvdingo, "quoted"' in decode(mk.make_csv(rows), "text/csv")
    assert "csvdingo" in decode(mk.make_csv(rows, "\t"), "application/octet-stream", "data.tsv")
    assert "csvdingo" in decode(mk.make_csv(rows, ";"), "text/csv")


def test_every_decoder_has_types_and_extensions() -> None:
    for ext in (".pdf", ".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp", ".doc", ".xls", ".ppt", ".rtf", ".ics",
                ".csv"):
        assert ext in EXTENSIONS
    found = find_decoder("application/octet-stream", "x.docm")
    assert found is not None and found.name == "docx"
    for spec in REGISTRY:
        assert spec.types and spec.extensions and callable(spec.load())


def test_decoder_libraries_load_only_where_they_run() -> None:
    """The CLI and the indexer never import pypdfium2 & co.: only the sandbox process does."""
    code = ("import sys, ftsd.cli, ftsd.service, ftsd.message, ftsd.indexer.pipeline; "
            "print(sorted(m for m in ('pypdfium2', 'olefile', 'xlrd', 'striprtf') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_long_text_is_cut_not_skipped() -> None:
    rows = [[f"word{i}", "x" * 100] for i in range(25_000)]  # ~2.6 M chars of text
    result = decode_attachment(mk.make_csv(rows), "text/csv", None, LIMITS, TEXT_CHARS)
    assert result.skipped is None and 1_900_000 < len(result.text) <= 2_000_000
    assert result.text.startswith("word0\t")


def test_a_part_number_of_thousands_of_digits_is_no_part() -> None:
    """Member names are the sender's: `slide<5,000 digits>.xml` is more than int() reads; the document's other
    slides are still decoded."""
    import io
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(mk.make_pptx(["pptxnarwhal"])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            target.writestr(item, source.read(item))
        target.writestr("ppt/slides/slide" + "9" * 5000 + ".xml", source.read("ppt/slides/slide1.xml"))
    assert "pptxnarwhal" in decode(out.getvalue(), OOXML + "presentationml.presentation")
