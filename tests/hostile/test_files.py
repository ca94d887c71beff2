"""Hostile neighbours, file side: symlinks, FIFOs, devices and huge sparse files planted in a Maildir. Nothing
outside the user's tree is read (its words are never found) or written (another user's index is unchanged);
nothing hangs; the user's own mail is still indexed and found."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from ftsd import service
from ftsd.errors import MailboxError, UnsafePathError
from ftsd.maildir import HEAD_BYTES, list_mailboxes, read_message
from ftsd.query import parse_query
from ftsd.settings import load_settings
from tests.maildirs import MailDir

ALICE, BOB = "alice@example.org", "bob@example.org"


def search(settings, user: str, query: str, mailboxes=("*",)) -> list[int]:
    return [u for r in service.search(settings, user, list(mailboxes), parse_query(query)) for u in r.uids]


def index(settings, users, timeout: float = 60.0):
    done: list[object] = []
    run = threading.Thread(target=lambda: done.append(service.index_users(settings, users)), daemon=True)
    run.start()
    run.join(timeout)
    assert not run.is_alive(), "indexing hung"
    return done[0]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """Files outside every user's tree, with words that must never be found."""
    out = tmp_path / "outside"
    (out / "cur").mkdir(parents=True)
    (out / "secret.eml").write_bytes(b"Subject: outsidesecret\n\noutsidesecret body\n")
    (out / "cur" / "1.M1P1.x:2,S").write_bytes(b"Subject: outsidesecret\n\nin a foreign cur\n")
    return out


def test_read_message_refuses_links_fifos_devices_and_reads_a_bounded_head(tmp_path: Path):
    (tmp_path / "m").write_bytes(b"Subject: x\n\nbody\n")
    os.symlink(tmp_path / "m", tmp_path / "link")
    os.symlink("/dev/zero", tmp_path / "zero")
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(OSError) as link:
        read_message(tmp_path / "link", 1000)
    assert link.value.errno == errno.ELOOP
    for name in ("zero", "fifo"):
        with pytest.raises(OSError):
            read_message(tmp_path / name, 1000)
    with open(tmp_path / "sparse", "wb") as f:
        f.write(b"Subject: sparse\n\n")
        f.truncate(4 << 30)  # 4 GB, no blocks
    head = read_message(tmp_path / "sparse", 100_000_000)
    assert head.size == 4 << 30 and len(head.data) == HEAD_BYTES and not head.complete
    assert read_message(tmp_path / "m", 1000).data == b"Subject: x\n\nbody\n"


def test_planted_links_fifo_and_sparse_file(tmp_path: Path, make_config, outside: Path):
    alice = MailDir(tmp_path / "vmail" / "example.org" / "alice", uidlist=False)
    bob = MailDir(tmp_path / "vmail" / "example.org" / "bob")
    mine = alice.deliver(subject="alice own mail", body="ordinary words")
    alice.deliver("Real", subject="in a real folder")
    bob.deliver(subject="bobsecret", body="bobsecret")
    cur = alice.root / "cur"
    os.symlink(outside / "secret.eml", cur / "2000000001.M1P1.x:2,S")  # cur/x -> /etc/shadow
    os.symlink("/dev/zero", cur / "2000000002.M1P1.x:2,S")
    os.mkfifo(cur / "2000000003.M1P1.x:2,S")
    with open(cur / "2000000004.M1P1.x:2,S", "wb") as f:  # 4 GB sparse: only its head is read
        f.write(b"Subject: sparsetoken\n\nbody\n")
        f.truncate(4 << 30)
    os.symlink("../bob", alice.root / ".Bob")  # .Bob -> ../bob
    etc = alice.root / ".Etc"
    etc.mkdir()
    os.symlink(outside / "cur", etc / "cur")  # .Etc/cur -> /etc
    settings = load_settings(make_config(fts={"workers": 2}))
    bob_index = snapshot(tmp_path / "index" / "example.org") if (tmp_path / "index").exists() else {}

    report = index(settings, [ALICE])
    assert report.failed == []
    assert [n for n, _ in list_mailboxes(alice.root)] == ["INBOX", "Real"]
    assert search(settings, ALICE, "TEXT outsidesecret") == []
    assert search(settings, ALICE, "TEXT bobsecret") == []
    assert search(settings, ALICE, "SUBJECT sparsetoken", ["INBOX"]) != []
    assert search(settings, ALICE, "BODY \"ordinary words\"", ["INBOX"]) == [mine]
    assert search(settings, ALICE, "TEXT \"in a\"") != []  # checked against the Maildir: answers, no hang
    assert not (tmp_path / "index" / "example.org" / "bob").exists() and bob_index == {}
    with pytest.raises(MailboxError):  # asked for by name: a 404, nothing read
        service.search(settings, ALICE, ["Bob"], parse_query("ALL"))
    assert search(settings, ALICE, "ALL", ["Etc"]) == []  # its cur/ is never listed


def test_follow_folder_symlinks_only_inside_the_user_tree(tmp_path: Path, make_config, outside: Path):
    alice = MailDir(tmp_path / "vmail" / "example.org" / "alice")
    store = MailDir(alice.root / "archive-store")  # a Maildir inside alice's own tree, not a folder itself
    kept = store.deliver(subject="archived inside")
    os.symlink("archive-store", alice.root / ".Archive")
    os.symlink(outside, alice.root / ".Outside")
    alice.deliver(subject="inbox")
    strict = load_settings(make_config())
    assert [n for n, _ in list_mailboxes(alice.root)] == ["INBOX"]
    assert search(strict, ALICE, "SUBJECT archived") == []
    follow = load_settings(make_config(fts={"follow_folder_symlinks": True}))
    assert search(follow, ALICE, "SUBJECT archived") == [kept]
    assert search(follow, ALICE, "TEXT outsidesecret") == []


def test_xapian_indexes_symlink_to_another_user_is_refused(tmp_path: Path, make_config):
    alice = MailDir(tmp_path / "vmail" / "example.org" / "alice")
    bob = MailDir(tmp_path / "vmail" / "example.org" / "bob")
    alice.deliver(subject="alice mail")
    bob_uid = bob.deliver(subject="bob mail")
    settings = load_settings(make_config(mail_location=f"maildir:{tmp_path}/vmail/%d/%n"))
    assert index(settings, [BOB]).failed == []
    before = snapshot(bob.root / "xapian-indexes")
    os.symlink("../bob/xapian-indexes", alice.root / "xapian-indexes")
    report = index(settings, [ALICE])
    assert len(report.failed) == 1 and "xapian-indexes is a symlink" in report.failed[0]
    with pytest.raises(UnsafePathError):
        search(settings, ALICE, "ALL")
    assert snapshot(bob.root / "xapian-indexes") == before
    assert search(settings, BOB, "SUBJECT bob") == [bob_uid]


def test_maildir_and_index_reached_through_a_user_symlink_are_refused(tmp_path: Path, make_config):
    bob = MailDir(tmp_path / "vmail" / "example.org" / "bob")
    bob.deliver(subject="bobsecret")
    settings = load_settings(make_config())
    os.symlink("bob", tmp_path / "vmail" / "example.org" / "mallory")
    with pytest.raises(UnsafePathError):
        search(settings, "mallory@example.org", "TEXT bobsecret")
    alice = MailDir(tmp_path / "vmail" / "example.org" / "alice")
    alice.deliver(subject="x")
    assert index(settings, [BOB]).failed == []
    os.symlink("bob", tmp_path / "index" / "example.org" / "alice")  # INDEX=.../alice -> bob's index
    before = snapshot(tmp_path / "index" / "example.org" / "bob")
    report = index(settings, [ALICE])
    assert len(report.failed) == 1 and "symlink" in report.failed[0]
    assert snapshot(tmp_path / "index" / "example.org" / "bob") == before
