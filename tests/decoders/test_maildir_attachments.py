"""End to end: real documents attached to messages in a real Maildir, indexed, then found by a word that appears
only inside each attachment; hostile attachments cost only themselves and the run finishes."""

from ftsd import service
from ftsd.query import parse_query
from ftsd.settings import load_settings
from tests.decoders import makedocs as docs
from tests.maildirs import MailDir

USER = "alice@example.org"

DOCUMENTS = [
    ("invoice.pdf", "application/pdf", lambda w: docs.make_pdf([f"Total due {w} now"])),
    ("letter.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
     lambda w: docs.make_docx([f"Dear {w}"])),
    ("sheet.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
     lambda w: docs.make_xlsx([f"cell {w}"])),
    ("deck.pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation",
     lambda w: docs.make_pptx([f"slide {w}"])),
    ("text.odt", "application/vnd.oasis.opendocument.text", lambda w: docs.make_odf("odt", [f"para {w}"])),
    ("calc.ods", "application/vnd.oasis.opendocument.spreadsheet", lambda w: docs.make_odf("ods", [f"cell {w}"])),
    ("notes.rtf", "application/rtf", lambda w: docs.make_rtf([f"note {w}"])),
    ("invite.ics", "text/calendar", lambda w: docs.make_ics(f"Meeting {w}", "agenda", "Room 1", "bob@example.org")),
    ("data.csv", "text/csv", lambda w: docs.make_csv([["name", "value"], [w, "1"]])),
    ("blob.bin", "application/octet-stream", lambda w: docs.make_pdf([f"hidden {w} inside"])),  # by magic bytes
    ("legacy.doc", "application/msword", lambda w: docs.fixture("legacy.doc")),
]


def search(settings, query: str) -> list[int]:
    return service.search(settings, USER, ["INBOX"], parse_query(query), autoindex=False)[0].uids


def test_word_inside_each_attachment_is_found(maildir: MailDir, make_config):
    settings = load_settings(make_config())
    expected = {}
    for i, (name, mime, make) in enumerate(DOCUMENTS):
        word = f"zqxattach{i}word"
        uid = maildir.deliver(subject=f"with {name}", body="see attached", attachments=[(name, mime, make(word))])
        expected[name] = (word, uid)
    report = service.index_users(settings, [USER])
    assert report.failed == [] and report.indexed == len(DOCUMENTS)
    for name, (word, uid) in expected.items():
        if name == "legacy.doc":
            continue  # a fixture made once with LibreOffice: its own words are checked below
        assert search(settings, f"BODY {word}") == [uid], name
        assert search(settings, f"TEXT {name}") == [uid], name  # the file name is searchable too
    doc_uid = expected["legacy.doc"][1]
    assert doc_uid in search(settings, "BODY legacy")
    info = service.message_status(settings, USER, "INBOX", expected["invoice.pdf"][1])
    assert any(p["decoder"] == "pdf" and p["chars"] > 0 for p in info["parts"])
    assert "parts_from" not in info  # as indexed: the document keeps the parts of a message with attachments


def test_hostile_attachments_skipped_with_reason_rest_indexed(maildir: MailDir, make_config, tmp_path):
    sleeper = tmp_path / "sleeper.sh"
    sleeper.write_text("#!/bin/sh\nsleep 600\n")
    sleeper.chmod(0o755)
    settings = load_settings(make_config(decoders={"timeout_s": 2.0, "command": str(sleeper),
                                                   "command_types": ["application/x-slow"]}))
    pdf = docs.make_pdf(["truncated words"])
    hostile = [
        ("cut.pdf", "application/pdf", pdf[: len(pdf) // 2]),
        ("bomb.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
         docs.make_zip_bomb("word/document.xml", 3 * 1024**3)),
        ("secret.pdf", "application/pdf", docs.make_pdf(["secret"], user_password="pw")),
        ("slow.bin", "application/x-slow", b"x" * 100),
        ("huge.pdf", "application/pdf", b"%PDF-1.4\n" + b"0" * (50 * 1024 * 1024)),
    ]
    uids = [maildir.deliver(subject=f"hostile {name}", body=f"survivorword{i}", attachments=[(name, mime, data)])
            for i, (name, mime, data) in enumerate(hostile)]
    report = service.index_users(settings, [USER])
    assert report.failed == [] and report.indexed == len(hostile)
    for i, uid in enumerate(uids):
        assert search(settings, f"BODY survivorword{i}") == [uid]
        parts = service.message_status(settings, USER, "INBOX", uid)["parts"]
        skipped = [p["skipped"] for p in parts if p["skipped"]]
        assert skipped, hostile[i][0]
    reasons = " ".join(p["skipped"] for uid in uids for p in service.message_status(settings, USER, "INBOX", uid)
                       ["parts"] if p["skipped"])
    assert "encrypted" in reasons and "timeout" in reasons and "bomb" in reasons and "larger than" in reasons
