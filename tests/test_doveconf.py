"""Special-use folders come from Dovecot's own configuration (doveconf -n), ftsd's [mailboxes] is the fallback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ftsd import service
from ftsd.cli import main
from ftsd.doveconf import parse_special_use
from ftsd.settings import load_settings
from tests.maildirs import MailDir

DOVECOT_CONF = """\
mail_location = maildir:{root}/%u
namespace inbox {{
  inbox = yes
  separator = .
  mailbox "Deleted Items" {{
    special_use = \\Trash
  }}
  mailbox Junk {{
    auto = subscribe
    special_use = \\Junk
  }}
  mailbox "Sent Items" {{
    special_use = \\Sent
  }}
}}
"""


def test_parse_doveconf_blocks() -> None:
    text = DOVECOT_CONF.format(root="/x") + 'protocol imap {\n  mail_plugins = fts\n}\n'
    assert parse_special_use(text) == {"Deleted Items": "\\Trash", "Junk": "\\Junk", "Sent Items": "\\Sent"}


@pytest.mark.skipif(shutil.which("doveconf") is None, reason="Dovecot (doveconf) is not installed")
def test_dovecot_special_use_excludes_deleted_items(maildir: MailDir, make_config, tmp_path: Path, capsys) -> None:
    conf = tmp_path / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(root=tmp_path))
    maildir.deliver(subject="inbox")
    maildir.deliver("Deleted Items", subject="thrown away")
    cfg = make_config(dovecot_config=str(conf))
    assert main(["-c", str(cfg), "index", "-A"]) == 0
    settings = load_settings(cfg)
    rows = {r["mailbox"]: r["indexed"] for r in service.status(settings, "alice@example.org")["mailboxes"]}
    assert rows == {"INBOX": 1, "Deleted Items": 0}  # \Trash in Dovecot's configuration: excluded
    assert main(["-c", str(make_config(doveconf="")), "index", "-A"]) == 0  # without Dovecot's word: indexed
    rows = {r["mailbox"]: r["indexed"] for r in service.status(settings, "alice@example.org")["mailboxes"]}
    assert rows == {"INBOX": 1, "Deleted Items": 1}
