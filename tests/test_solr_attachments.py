"""[solr] attachments: the document Dovecot sends for a message gets the text of its attachments, decoded by
ftsd from the user's Maildir; a message ftsd cannot find or read is indexed as Dovecot sent it (one log line),
never a failed update. (The same against a real Dovecot: tests/integration/test_dovecot.py.)"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from ftsd import solr
from ftsd.maildir import read_uidlist
from ftsd.runtime import Runtime
from ftsd.settings import Settings, load_settings
from tests.decoders import makedocs as docs
from tests.maildirs import MailDir

USER = "alice@example.org"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _update(settings: Settings, guid: str, uid: int, body: str) -> solr.UpdateSession:
    """What Dovecot's fts_solr posts for one message: its text parts, no attachment text."""
    doc = (f'<add><doc><field name="uid">{uid}</field><field name="box">{guid}</field><field name="user">{USER}'
           f'</field><field name="id">{uid}/{guid}/{USER}</field><field name="hdr">Subject: report</field>'
           f'<field name="body">{body}</field></doc></add>')
    session = solr.UpdateSession(settings, Runtime(settings))
    session.feed(doc.encode())
    session.close()
    return session


def _found(settings: Settings, guid: str, word: str) -> list[int]:
    reply = solr.select(settings, [("q", f"body:{word}"), ("fq", f"+box:{guid} +user:{USER}"), ("fl", "uid"),
                                   ("rows", "100"), ("wt", "json")])
    import json

    return sorted(d["uid"] for d in json.loads(reply.body)["response"]["docs"])


@pytest.fixture
def delivered(maildir: MailDir) -> tuple[str, int, int]:
    """(mailbox GUID, UID of a mail with a PDF, UID of a mail with a DOCX), delivered as Dovecot would."""
    pdf = maildir.deliver(subject="report", body="see attached",
                          attachments=[("q3.pdf", PDF, docs.make_pdf(["Total zqxpdfword due"]))])
    docx = maildir.deliver(subject="letter", body="see attached",
                           attachments=[("letter.docx", DOCX, docs.make_docx(["Dear zqxdocxword"]))])
    uidlist = read_uidlist(maildir.root / "dovecot-uidlist")
    assert uidlist is not None
    return uidlist.guid, pdf, docx


def test_attachment_text_is_added_with_the_setting(make_config: Callable[..., Path],
                                                   delivered: tuple[str, int, int]) -> None:
    guid, pdf, docx = delivered
    settings = load_settings(make_config(solr={"attachments": True}))
    session = _update(settings, guid, pdf, "see attached")
    _update(settings, guid, docx, "see attached")
    assert session.attachments is not None and session.attachments.added == 1
    assert _found(settings, guid, "zqxpdfword") == [pdf]
    assert _found(settings, guid, "qxdocxwor") == [docx]  # a substring, as IMAP SEARCH takes it
    assert _found(settings, guid, "attached") == [pdf, docx]  # Dovecot's own text is kept


def test_without_the_setting_the_document_is_what_dovecot_sent(make_config: Callable[..., Path],
                                                                delivered: tuple[str, int, int]) -> None:
    guid, pdf, _ = delivered
    assert load_settings(make_config()).solr.attachments is True  # on by default where the Maildir is readable
    settings = load_settings(make_config(solr={"attachments": False}))
    _update(settings, guid, pdf, "see attached")
    assert _found(settings, guid, "zqxpdfword") == []
    assert _found(settings, guid, "attached") == [pdf]


def test_a_message_not_found_is_indexed_as_sent_with_one_log_line(
        make_config: Callable[..., Path], delivered: tuple[str, int, int], maildir: MailDir,
        caplog: pytest.LogCaptureFixture) -> None:
    guid, pdf, _ = delivered
    settings = load_settings(make_config(solr={"attachments": True}))
    caplog.set_level(logging.INFO, logger="ftsd.solr.attachments")
    _update(settings, guid, 999, "nosuchuid")  # expunged before Dovecot's update arrived
    maildir.expunge("INBOX", pdf)
    _update(settings, guid, pdf, "see attached")  # the uidlist still lists it, the file is gone
    other = "0123456789abcdef0123456789abcdef"
    _update(settings, other, 5, "unknownbox")
    assert _found(settings, guid, "nosuchuid") == [999]
    assert _found(settings, guid, "attached") == [pdf]
    assert _found(settings, other, "unknownbox") == [5]
    lines = [r.getMessage() for r in caplog.records if r.name == "ftsd.solr.attachments"]
    assert len(lines) == 3, lines
    assert all(line.startswith(f"{USER}: attachments of ") and "indexed as sent" in line for line in lines), lines


def test_the_time_budget_of_a_request_bounds_the_decoding(make_config: Callable[..., Path],
                                                          delivered: tuple[str, int, int],
                                                          caplog: pytest.LogCaptureFixture) -> None:
    guid, pdf, _ = delivered
    settings = load_settings(make_config(solr={"attachments": True, "attachments_time_s": 0}))
    caplog.set_level(logging.WARNING, logger="ftsd.solr.attachments")
    _update(settings, guid, pdf, "see attached")
    assert _found(settings, guid, "attached") == [pdf]  # indexed, as sent
    assert _found(settings, guid, "zqxpdfword") == []
    assert any("solr.attachments_time_s" in r.getMessage() for r in caplog.records)


def test_text_is_kept_within_max_text_chars(make_config: Callable[..., Path],
                                            delivered: tuple[str, int, int]) -> None:
    guid, pdf, _ = delivered
    settings = load_settings(make_config(solr={"attachments": True}, fts={"max_text_chars": 40}))
    _update(settings, guid, pdf, "x" * 30)
    assert _found(settings, guid, "zqxpdfword") == []  # no room left: cut, never over the bound
