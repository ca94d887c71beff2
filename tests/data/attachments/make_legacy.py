"""Regenerate the legacy Office fixtures (.doc, .xls, .ppt) in this directory. Not run by the tests.

Needs python-docx, openpyxl, python-pptx and LibreOffice (`soffice`, Debian: libreoffice-writer-nogui,
libreoffice-calc-nogui, libreoffice-impress-nogui): the documents are written as OOXML, then converted.
Each holds a distinctive word that the tests look for.
"""

from __future__ import annotations

import gzip
import subprocess
import tempfile
from pathlib import Path

import docx
import openpyxl
import pptx

HERE = Path(__file__).parent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        d = docx.Document()
        d.add_paragraph("Legacy Word document about the quokkaphant migration.")
        d.add_paragraph("Second paragraph with Grüße and a table below.")
        table = d.add_table(rows=1, cols=2)
        table.cell(0, 0).text = "cellzebu"
        table.cell(0, 1).text = "42"
        d.save(str(work / "legacy.docx"))
        wb = openpyxl.Workbook()
        ws = wb.active
        ws.title = "Inventory"
        ws.append(["item", "count"])
        ws.append(["xlsmarmoset", 7])
        wb.save(work / "legacy.xlsx")
        p = pptx.Presentation()
        slide = p.slides.add_slide(p.slide_layouts[1])
        slide.shapes.title.text = "Pptpangolin quarterly review"
        slide.placeholders[1].text = "Bullet about wombatine growth"
        p.save(str(work / "legacy.pptx"))
        for src, fmt in (("legacy.docx", "doc"), ("legacy.xlsx", "xls"), ("legacy.pptx", "ppt")):
            subprocess.run(
                ["soffice", "--headless", "--convert-to", fmt, "--outdir", str(HERE), str(work / src)],
                check=True, capture_output=True,
            )
        # The .ppt carries a 580 KB uncompressed preview bitmap: keep it gzipped (23 KB).
        ppt = HERE / "legacy.ppt"
        (HERE / "legacy.ppt.gz").write_bytes(gzip.compress(ppt.read_bytes(), mtime=0))
        ppt.unlink()


if __name__ == "__main__":
    main()
