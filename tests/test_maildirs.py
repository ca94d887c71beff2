"""Self-tests of the Maildir fixture library (tests/maildirs.py) and the conftest fixtures."""

from __future__ import annotations

import email
import email.policy
import os
import re
import tomllib
from pathlib import Path

import pytest

from ftsd.settings import load_settings
from tests.maildirs import MailDir, folder_dirname, mutf7_encode

NAME = re.compile(r"^\d{10}\.M\d+P\d+\.[\w.-]+,S=(\d+),W=(\d+)(:2,[A-Z]*)?$")


def test_folder_names() -> None:
    assert folder_dirname("INBOX") == ""
    assert folder_dirname("Archive/2024") == ".Archive.2024"
    assert folder_dirname("Archive.2024") == ".Archive.2024"
    assert folder_dirname("Entwürfe") == ".Entw&APw-rfe"
    assert mutf7_encode("Tom & Jerry") == "Tom &- Jerry"
    assert mutf7_encode("日本語") == "&ZeVnLIqe-"


def test_deliver_writes_dovecot_files(maildir: MailDir) -> None:
    uid1 = maildir.deliver(subject="Größe", body="Fahrländer invoice")
    uid2 = maildir.deliver("Archive/2024", subject="old", body="x", flags="SR")
    uid3 = maildir.deliver(subject="fresh", body="y", new=True)
    assert (uid1, uid2, uid3) == (1, 1, 2)

    first = maildir.path_of("INBOX", uid1)
    assert first.parent == maildir.root / "cur"
    match = NAME.match(first.name)
    assert match and match.group(3) == ":2,S"
    data = first.read_bytes()
    assert int(match.group(1)) == len(data)
    assert int(match.group(2)) == len(data) + data.count(b"\n")
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg["Subject"] == "Größe"
    assert "Fahrländer" in msg.get_content()
    assert first.stat().st_mtime == msg["Date"].datetime.timestamp()

    archived = maildir.path_of("Archive/2024", uid2)
    assert archived.parent == maildir.root / ".Archive.2024" / "cur"
    assert archived.name.endswith(":2,RS")
    assert (maildir.root / ".Archive.2024" / "maildirfolder").exists()

    fresh = maildir.path_of("INBOX", uid3)
    assert fresh.parent == maildir.root / "new" and ":2," not in fresh.name


def test_uidlist_is_dovecot_v3(maildir: MailDir) -> None:
    uids = [maildir.deliver(subject=f"m{i}", body="b") for i in range(3)]
    lines = (maildir.root / "dovecot-uidlist").read_text().splitlines()
    assert re.fullmatch(r"3 V\d+ N4 G[0-9a-f]{32}", lines[0])
    assert [int(line.split()[0]) for line in lines[1:]] == uids == [1, 2, 3]
    for uid, line in zip(uids, lines[1:], strict=True):
        assert line == f"{uid} :{maildir.path_of('INBOX', uid).name.split(':')[0]}"
    maildir.set_uidvalidity("INBOX", 42)
    header, entries = maildir.read_uidlist("INBOX")
    assert header["V"] == "42" and header["N"] == "4" and len(entries) == 3


def test_expunge_leaves_a_gap(maildir: MailDir) -> None:
    uids = [maildir.deliver(subject=f"m{i}", body="b") for i in range(3)]
    gone = maildir.path_of("INBOX", uids[1])
    maildir.expunge("INBOX", uids[1])
    assert not gone.exists()
    header, entries = maildir.read_uidlist("INBOX")
    assert sorted(entries) == [1, 3]
    assert maildir.deliver(subject="next", body="b") == 4
    with pytest.raises(KeyError):
        maildir.path_of("INBOX", uids[1])


def test_without_uidlist_uids_are_sorted_positions(tmp_path: Path) -> None:
    md = MailDir(tmp_path / "bob", uidlist=False)
    assert [md.deliver(subject=str(i), body="b") for i in range(3)] == [1, 2, 3]
    assert not list(tmp_path.rglob("dovecot-uidlist"))
    assert md.messages() == [md.path_of("INBOX", uid) for uid in (1, 2, 3)]


def test_html_attachments_raw_and_rename(maildir: MailDir) -> None:
    uid = maildir.deliver(subject="report", body="see attachment", html="<p>see <b>attachment</b></p>",
                          attachments=[("report.txt", "text/plain", b"quarterlyrevenue 42\n")],
                          cc="carol@example.com", bcc="eve@example.org", headers={"List-Id": "<news.example.org>"})
    msg = email.message_from_bytes(maildir.path_of("INBOX", uid).read_bytes(), policy=email.policy.default)
    assert msg.get_content_type() == "multipart/mixed"
    assert msg["Cc"] == "carol@example.com" and msg["Bcc"] == "eve@example.org" and msg["List-Id"]
    attachment = next(msg.iter_attachments())
    assert attachment.get_filename() == "report.txt"
    assert attachment.get_content() == "quarterlyrevenue 42\n"

    raw_uid = maildir.deliver("Sent", raw=b"Subject: raw\n\nbody\n", flags="")
    assert maildir.path_of("Sent", raw_uid).read_bytes() == b"Subject: raw\n\nbody\n"
    maildir.rename("Sent", "Gesendet")
    assert maildir.path_of("Gesendet", raw_uid).name.endswith(":2,")
    assert not (maildir.root / ".Sent").exists()


def test_make_config(make_config, tmp_path: Path) -> None:
    path = make_config(fts={"partial": 2}, mailboxes={"Papierkorb": "\\Trash"}, log_level="debug")
    data = tomllib.loads(path.read_text())
    assert data["userdb"] == {"driver": "static"}
    assert data["fts"] == {"partial": 2}
    settings = load_settings(path)
    assert settings.mail_location == f"maildir:{tmp_path}/vmail/%d/%n:INDEX={tmp_path}/index/%d/%n"
    assert settings.fts.partial == 2 and settings.log_level == "debug"
    assert settings.mailboxes["Papierkorb"] == "\\Trash"


@pytest.mark.corpus
def test_corpus_dir(corpus_dir: Path) -> None:
    folders = sorted(p.name for p in corpus_dir.iterdir() if p.is_dir() and p.name.startswith("."))
    assert folders == [".easy_ham_2", ".hard_ham", ".hard_ham_2", ".spam", ".spam_2"]
    assert not list(corpus_dir.rglob("dovecot-uidlist"))
    assert sum(len(os.listdir(corpus_dir / f / "cur")) for f in ["", *folders]) == 6262
