from pathlib import Path

import pytest

from ftsd.errors import MailboxError
from ftsd.maildir import decode_mutf7, encode_mutf7, list_mailboxes, read_uidlist, scan_mailbox, uidlist_guid
from tests.maildirs import MailDir


def test_folders_and_utf7_names(maildir: MailDir):
    for name in ("Sent", "A.B", "Entwürfe", "Trash"):
        maildir.folder(name)
    names = [n for n, _ in list_mailboxes(maildir.root)]
    assert names == ["INBOX", "A.B", "Entwürfe", "Sent", "Trash"]
    assert encode_mutf7("Entwürfe") == "Entw&APw-rfe" and decode_mutf7("Entw&APw-rfe") == "Entwürfe"
    assert decode_mutf7(encode_mutf7("日本語 & co")) == "日本語 & co"


def test_uids_from_dovecot_uidlist(maildir: MailDir, tmp_path: Path):
    uids = [maildir.deliver(subject=f"m{i}", new=(i == 2)) for i in range(4)]
    maildir.expunge("INBOX", uids[1])
    box = scan_mailbox(maildir.root, "INBOX", tmp_path / "state")
    assert sorted(box.messages) == [uids[0], uids[2], uids[3]]
    assert Path(box.messages[uids[2]]).parent.name == "new"
    header = read_uidlist(maildir.root / "dovecot-uidlist")
    assert header is not None and box.uidvalidity == header.uidvalidity and box.guid == header.guid
    assert not (tmp_path / "state").exists()  # ftsd keeps no UIDs of its own when Dovecot has them


def test_the_guid_is_read_from_the_uidlists_header_alone(maildir: MailDir, tmp_path: Path):
    for i in range(300):  # a uidlist longer than the 4 KiB uidlist_guid reads
        maildir.deliver(subject=f"m{i}")
    path = maildir.root / "dovecot-uidlist"
    full = read_uidlist(path)
    assert full is not None and full.guid and path.stat().st_size > 4096
    assert uidlist_guid(path) == full.guid
    (tmp_path / "v1").write_text("1 1234 5\n1 1.M1P1.host\n")  # version 1: no GUID in the header
    (tmp_path / "long").write_text("3 V1 N2 " + "X" * 5000 + "\n")  # no header within 4 KiB: read it whole
    assert uidlist_guid(tmp_path / "v1") == "" and uidlist_guid(tmp_path / "long") is None
    assert uidlist_guid(tmp_path / "missing") is None


def test_file_without_uid_yet_is_pending(maildir: MailDir, tmp_path: Path):
    maildir.deliver(subject="known")
    (maildir.root / "new" / "1700000000.M1P1.host").write_bytes(b"Subject: not synced yet\n\nx\n")
    box = scan_mailbox(maildir.root, "INBOX", tmp_path / "state")
    assert len(box.messages) == 1 and box.pending == 1


def test_own_uids_are_stable_and_never_written_into_maildir(tmp_path: Path):
    md = MailDir(tmp_path / "mail", uidlist=False)
    first = [md.deliver(subject=f"m{i}") for i in range(3)]
    box = scan_mailbox(md.root, "INBOX", tmp_path / "state")
    assert sorted(box.messages) == first == [1, 2, 3]
    md.expunge("INBOX", 2)
    md.deliver(subject="later")
    again = scan_mailbox(md.root, "INBOX", tmp_path / "state")
    assert sorted(again.messages) == [1, 3, 4] and again.uidvalidity == box.uidvalidity and again.guid == box.guid
    assert not any("uidlist" in p.name for p in md.root.rglob("*"))


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "a..b", "x\x00"])
def test_unsafe_mailbox_names(maildir: MailDir, tmp_path: Path, name: str):
    with pytest.raises(MailboxError):
        scan_mailbox(maildir.root, name, tmp_path)


def test_missing_mailbox(maildir: MailDir, tmp_path: Path):
    with pytest.raises(MailboxError, match="does not exist"):
        scan_mailbox(maildir.root, "Nope", tmp_path)


def test_a_uidlist_line_that_is_no_uid_leaves_its_file_unnamed(maildir: MailDir, tmp_path: Path):
    """The uidlist is the user's own file: a planted "²" (isdigit, but int() refuses it), a UID over 2^32 - 1 or
    5,000 digits (over int()'s limit) names no message, and the scan goes on."""
    uid = maildir.deliver(subject="kept")
    path = maildir.root / "dovecot-uidlist"
    header, *lines = path.read_text().splitlines()
    for n, bad in enumerate(("\u00b2", "4294967296", "9" * 5000)):
        name = f"17000000{n:02d}.M1P1.host"
        (maildir.root / "cur" / f"{name}:2,").write_bytes(b"Subject: planted\n\nx\n")
        lines.append(f"{bad} :{name}")
    path.write_text("\n".join([header, *lines]) + "\n")
    box = scan_mailbox(maildir.root, "INBOX", tmp_path / "state")
    assert sorted(box.messages) == [uid] and box.pending == 3
