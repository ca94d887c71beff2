"""Lifecycle: a folder deleted over IMAP is a normal event (no failed job, its metadata leaves the index); indexes
of users gone from the userdb are listed by `status --orphans` and removed only by `prune`; masks as doveadm."""

from __future__ import annotations

import shutil
from pathlib import Path

from ftsd import service
from ftsd.cli import main
from ftsd.settings import load_settings
from tests.maildirs import MailDir, folder_dirname

ALICE, BOB = "alice@example.org", "bob@example.org"


def test_deleted_folder_is_no_failure_and_leaves_no_metadata(maildir: MailDir, make_config) -> None:
    settings = load_settings(make_config())
    maildir.deliver(subject="inbox")
    maildir.deliver("Projects", subject="plan", body="roadmap")
    assert not service.index_users(settings, [ALICE]).failed
    assert {r["mailbox"] for r in service.status(settings, ALICE)["mailboxes"]} >= {"INBOX", "Projects"}
    shutil.rmtree(maildir.root / folder_dirname("Projects"))  # DELETE Projects over IMAP
    # what the service's watcher queues for the deleted folder, run as its job runs it
    report = service.index_users(settings, [ALICE], mailboxes=["Projects"], missing_ok=True)
    assert report.failed == [] and report.failed_users == 0
    with service.user_index(settings, service.get_user(settings, ALICE)).reader() as searcher:
        assert searcher is not None
        names = {meta["name"] for meta in searcher.mailboxes().values()}
    assert names == {"INBOX"}
    # by hand, a mailbox that does not exist is still an error, as with doveadm
    assert service.index_users(settings, [ALICE], mailboxes=["Projects"]).failed


def test_orphans_listed_and_pruned_only_on_request(tmp_path: Path, make_config, capsys) -> None:
    cfg = str(make_config())
    for name in ("alice", "bob"):
        MailDir(tmp_path / "vmail" / "example.org" / name).deliver(subject=f"hi {name}")
    assert main(["-c", cfg, "index", "-A"]) == 0
    shutil.rmtree(tmp_path / "vmail" / "example.org" / "bob")  # the user is deleted from the mail server
    assert main(["-c", cfg, "index", "-A"]) == 0  # never removed automatically
    bob_index = tmp_path / "index" / "example.org" / "bob" / "xapian-indexes"
    assert bob_index.is_dir()
    capsys.readouterr()
    assert main(["-c", cfg, "status", "--orphans"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(f"{BOB}\t") and out[0].endswith(str(bob_index))
    assert main(["-c", cfg, "prune", "-n"]) == 0 and bob_index.is_dir()
    capsys.readouterr()
    assert main(["-c", cfg, "prune"]) == 0
    assert capsys.readouterr() == ("", "")  # quiet for cron
    assert not bob_index.exists() and not bob_index.parent.exists()
    assert (tmp_path / "index" / "example.org" / "alice" / "xapian-indexes" / "ftsd.db").is_dir()
    assert main(["-c", cfg, "status", "--orphans"]) == 0 and capsys.readouterr().out == ""


def test_user_and_mailbox_masks_and_userfile(tmp_path: Path, make_config, capsys) -> None:
    cfg = str(make_config())
    for name, domain in (("alice", "example.org"), ("bob", "example.org"), ("carol", "other.net")):
        md = MailDir(tmp_path / "vmail" / domain / name)
        md.deliver(subject="inbox mail", body="needle")
        md.deliver("Archive/2023", subject="old", body="needle")
        md.deliver("Archive/2024", subject="newer", body="needle")
        md.deliver("Drafts", subject="draft", body="needle")
    assert main(["-c", cfg, "index", "-u", "*@example.org", "Arch*"]) == 0
    settings = load_settings(cfg)
    boxes = {r["mailbox"]: r["indexed"] for r in service.status(settings, ALICE)["mailboxes"]}
    assert boxes == {"INBOX": 0, "Archive.2023": 1, "Archive.2024": 1, "Drafts": 0}
    assert service.status(settings, "carol@other.net")["mailboxes"][0]["indexed"] == 0
    userfile = tmp_path / "users.txt"
    userfile.write_text("# one a line\ncarol@other.net\n")
    assert main(["-c", cfg, "index", "-F", str(userfile), "%"]) == 0  # % = top level only
    boxes = {r["mailbox"]: r["indexed"] for r in service.status(settings, "carol@other.net")["mailboxes"]}
    assert boxes == {"INBOX": 1, "Archive.2023": 0, "Archive.2024": 0, "Drafts": 1}
    capsys.readouterr()
    assert main(["-c", cfg, "search", "-u", ALICE, "-m", "Archive.%", "TEXT", "needle"]) == 0
    assert capsys.readouterr().out.splitlines() == ["Archive.2023\t1", "Archive.2024\t1"]
    assert main(["-c", cfg, "index", "-u", "*@nowhere.example"]) == 67  # EX_NOUSER (errors.OUTCOMES)
    assert "no user matches" in capsys.readouterr().err
