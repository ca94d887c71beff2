"""Hostile and broken attachments: each comes back quickly as Decoded("", skipped=<reason>), never raises."""

from __future__ import annotations

import io
import os
import time
import zipfile

import olefile
import pytest

from ftsd.decoders import decode_attachment
from ftsd.settings import DecoderSettings, FtsSettings
from tests.decoders import makedocs as mk

TEXT_CHARS = FtsSettings().max_text_chars  # fts.max_text_chars: what message.py passes

LIMITS = DecoderSettings()
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def skipped(data: bytes, content_type: str, filename: str | None = None, limits: DecoderSettings = LIMITS) -> str:
    started = time.monotonic()
    result = decode_attachment(data, content_type, filename, limits, TEXT_CHARS)
    assert time.monotonic() - started < 10
    assert result.text == "" and result.skipped, result
    return result.skipped


def test_truncated_pdf() -> None:
    data = mk.make_pdf([f"paragraph {i} " * 30 for i in range(200)])
    assert "PDF" in skipped(data[: len(data) // 3], "application/pdf")


def test_garbage_behind_a_pdf_header() -> None:
    assert "PDF" in skipped(b"%PDF-1.7\n" + os.urandom(50_000), "application/pdf")


def test_encrypted_pdf() -> None:
    data = mk.make_pdf(["pdfsecretword"], user_password="open sesame")
    assert skipped(data, "application/pdf") == "encrypted document"


def test_encrypted_docx() -> None:
    data = mk.encrypt_ooxml(mk.make_docx(["docxsecretword"]), "open sesame")
    assert skipped(data, DOCX) == "encrypted document"
    assert skipped(data, "application/octet-stream", "secret.docx") == "encrypted document"


def test_encrypted_doc(tmp_path) -> None:
    path = tmp_path / "encrypted.doc"
    path.write_bytes(mk.fixture("legacy.doc"))
    with olefile.OleFileIO(str(path), write_mode=True) as ole:  # set fEncrypted in the FIB, as Word does
        fib = bytearray(ole.openstream("WordDocument").read())
        fib[0x0B] |= 0x01
        ole.write_stream("WordDocument", bytes(fib))
    assert skipped(path.read_bytes(), "application/msword") == "encrypted document"


def test_zip_bomb_declaring_gigabytes_is_refused_before_inflating() -> None:
    bomb = mk.make_zip_bomb("word/document.xml", 2 << 30)  # 2 GiB of XML in a ~2 MB attachment
    started = time.monotonic()
    reason = skipped(bomb, DOCX)
    assert reason.startswith("zip bomb: members declare") and time.monotonic() - started < 2


def test_zip_bomb_is_stopped_by_counting_inflated_bytes() -> None:
    bomb = mk.make_zip_bomb("word/document.xml", 300 << 20)  # under the declared cap, over the inflated one
    started = time.monotonic()
    reason = skipped(bomb, "application/octet-stream", "bomb.docx")
    assert reason.startswith("zip bomb: more than") and time.monotonic() - started < 5


def test_zip_with_too_many_members() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(10_001):
            z.writestr(f"x/{i}", b"")
    assert skipped(buf.getvalue(), "application/vnd.oasis.opendocument.text").startswith("zip bomb: 10001 members")


def test_xml_entity_expansion_is_refused() -> None:
    laughs = ('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
              f'<w:document xmlns:w="{mk.W_NS}"><w:body><w:p><w:r><w:t>&b;</w:t></w:r></w:p></w:body></w:document>')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("word/document.xml", laughs)
    assert "DOCTYPE" in skipped(buf.getvalue(), DOCX)


@pytest.mark.parametrize("content_type, filename", [
    (DOCX, None), ("application/vnd.ms-excel", None), ("application/msword", None), ("application/rtf", None),
    ("application/vnd.oasis.opendocument.text", None), ("application/octet-stream", "x.pptx"),
])
def test_random_bytes(content_type: str, filename: str | None) -> None:
    assert skipped(os.urandom(20_000), content_type, filename)


def test_an_ooxml_name_on_a_legacy_file() -> None:
    assert "OLE2" in skipped(mk.fixture("legacy.doc"), DOCX)


def test_attachment_over_max_part_bytes_is_not_even_read() -> None:
    assert skipped(b"%PDF-1.4" + bytes(50_000_000), "application/pdf").startswith("larger than decoders.max_part_bytes")


def test_attachments_disabled_and_unknown_types() -> None:
    off = DecoderSettings(attachments=False)
    assert skipped(mk.make_pdf(["x"]), "application/pdf", limits=off) == "attachments disabled"
    assert skipped(b"\x00\x01", "application/x-unknown", "blob.bin") == "no decoder for application/x-unknown"
