"""Hostile names: a `%d` inside a user name, a folder whose name decodes to `..`, CR/LF in message file names
without a dovecot-uidlist, a dovecot-uidlist that is a FIFO."""

from __future__ import annotations

import os
from pathlib import Path

from ftsd import service
from ftsd.maildir import list_mailboxes, scan_mailbox
from ftsd.query import parse_query
from ftsd.settings import load_settings, settings_from_dict
from ftsd.userdb import lookup_user
from tests.maildirs import MailDir

ALICE = "alice@example.org"


def test_variables_inside_a_user_name_are_not_expanded_again(tmp_path: Path):
    s = settings_from_dict({"mail_location": "maildir:vmail/%d/%n:INDEX=idx/%u"}, base_dir=tmp_path)
    user = lookup_user(s, "a%d%n%u@example.org")
    assert user.maildir == tmp_path / "vmail" / "example.org" / "a%d%n%u"
    assert user.index_root == tmp_path / "idx" / "a%d%n%u@example.org"
    assert lookup_user(s, "x%%y@example.org").maildir.name == "x%%y"


def test_a_folder_decoding_to_dotdot_is_skipped_not_fatal(maildir: MailDir, make_config):
    settings = load_settings(make_config())
    uid = maildir.deliver(subject="still here")
    for name in (".&AC4ALg-", ".&AC8-etc", ".&AGE-", ".bad&"):  # "..", "/etc", "a" spelt oddly, unterminated
        (maildir.root / name / "cur").mkdir(parents=True)
        (maildir.root / name / "cur" / "1.M1P1.x:2,S").write_bytes(b"Subject: hidden\n\nx\n")
    assert [n for n, _ in list_mailboxes(maildir.root)] == ["INBOX"]
    report = service.index_users(settings, [ALICE])
    assert report.failed == [] and report.indexed == 1
    results = service.search(settings, ALICE, ["*"], parse_query("SUBJECT still"))
    assert [(r.mailbox, r.uids) for r in results] == [("INBOX", [uid])]


def test_line_breaks_in_file_names_do_not_renumber_without_a_uidlist(tmp_path: Path, make_config):
    md = MailDir(tmp_path / "vmail" / "example.org" / "alice", uidlist=False)
    first = md.deliver(subject="first")
    for odd in ("1800000000.M1P1.x\nfoo:2,S", "1800000001.M1P1.x\rbar:2,S"):
        (md.root / "cur" / odd).write_bytes(b"Subject: odd\n\nx\n")
    state = tmp_path / "state-uids"
    scans = [scan_mailbox(md.root, "INBOX", state) for _ in range(3)]
    last = md.deliver(subject="last")
    scans.append(scan_mailbox(md.root, "INBOX", state))
    assert all(list(s.messages) == [first] for s in scans[:3])
    assert sorted(scans[3].messages) == [first, 2]  # the next UID is 2: nothing was handed out meanwhile
    assert b"Subject: last" in Path(scans[3].messages[2]).read_bytes() and last
    head = (state / "INBOX.uidlist").read_text().split("\n")[0]
    assert " N3 " in head


def test_a_uidlist_that_is_a_fifo_or_symlink_is_ignored(maildir: MailDir, make_config, tmp_path: Path):
    settings = load_settings(make_config())
    maildir.deliver(subject="fifo uidlist")
    uidlist = maildir.root / "dovecot-uidlist"
    uidlist.unlink()
    os.mkfifo(uidlist)
    box = scan_mailbox(maildir.root, "INBOX", tmp_path / "own")  # would block for ever on open()
    assert len(box.messages) == 1
    assert service.search(settings, ALICE, ["INBOX"], parse_query("SUBJECT fifo"))[0].uids == list(box.messages)
