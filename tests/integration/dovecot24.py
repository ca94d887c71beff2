"""A private Debian 13 Dovecot 2.4 for integration tests: the 2.3 helper (tests/integration/dovecot.py) with a 2.4
configuration, every Dovecot program run inside the cached trixie root (tests/integration/debroot.py).

The test's directory is bind-mounted into the root at its own path, so the configuration, Maildirs and sockets have
one path inside and out; ftsd runs on the host and Dovecot reaches it on 127.0.0.1 (the network is shared).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.integration.debroot import in_root
from tests.integration.dovecot import Dovecot, _mail_owner


def fts_config_24(url: str) -> str:
    """The documented 2.4 FTS settings (docs/dovecot.md), as the test uses them."""
    return f"""\
mail_plugins {{
  fts = yes
  fts_solr = yes
}}
fts solr {{
  url = {url}
}}
# Mandatory: without a language block with default = yes, FTS is off for every user (the fts plugin fails to
# initialise: "No language {{ .. }} defined"). ftsd does its own analysis; the language is not used for solr.
language en {{
  default = yes
}}
fts_autoindex = yes
fts_search_add_missing = yes
fts_search_read_fallback = no
"""


class Dovecot24(Dovecot):
    """Dovecot 2.4 from the Debian 13 root `fs`, with its state under `root` (a directory under /tmp)."""

    def __init__(self, fs: Path, root: Path, fts_url: str, lda_plugins: str = "mail_plugins {\n    sieve = yes\n  }",
                 mail_debug: bool = False, extra: str = "") -> None:
        """`extra`: more settings, appended to the configuration (e.g. `fts_solr_batch_size = 100`)."""
        self.fs, self.fts_url, self.lda_plugins, self.mail_debug = fs, fts_url, lda_plugins, mail_debug
        self.extra = extra
        super().__init__(root, plugin={}, mail_plugins="")

    def command(self, *argv: str) -> list[str]:
        return in_root(self.fs, [self.root], argv)

    def _write_conf(self) -> None:
        user, group, _, _ = _mail_owner()
        self.conf.write_text(f"""\
dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
base_dir = {self.root}/run
state_dir = {self.root}/state
instance_name = ftsd-test24-{self.port}
protocols = imap
listen = 127.0.0.1
ssl = no
auth_allow_cleartext = yes
auth_mechanisms = plain
log_path = {self.log}
mail_debug = {"yes" if self.mail_debug else "no"}
mail_driver = maildir
mail_path = {self.root}/mail/%{{user}}
mail_uid = {user}
mail_gid = {group}
passdb passwd-file {{
  passwd_file_path = {self.root}/users
}}
userdb passwd-file {{
  passwd_file_path = {self.root}/users
}}
namespace inbox {{
  inbox = yes
  separator = .
  mailbox Trash {{
    special_use = \\Trash
    fts_autoindex = no
  }}
  mailbox Junk {{
    special_use = \\Junk
    fts_autoindex = no
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {self.port}
  }}
}}
# As in Debian's conf.d/15-lda.conf, read before conf.d/90-fts.conf: the block form adds to the global list.
protocol lda {{
  {self.lda_plugins}
}}
{fts_config_24(self.fts_url)}{self.extra}
""")

    def doveconf(self, *args: str) -> str:
        """`doveconf -c CONF ARGS` inside the root: stdout, with stderr (warnings) appended."""
        done = subprocess.run(self.command("doveconf", "-c", str(self.conf), *args), capture_output=True, text=True,
                              timeout=60, check=False)
        return done.stdout + done.stderr

    def deliver(self, user: str, raw: bytes, mailbox: str = "INBOX") -> None:
        """Deliver one message with `dovecot-lda` (as the MTA would, as root: LDA drops to the mail uid)."""
        done = subprocess.run(self.command("/usr/lib/dovecot/dovecot-lda", "-c", str(self.conf), "-d", user,
                                           "-f", "sender@example.org", "-m", mailbox),
                              input=raw, capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            raise AssertionError(f"dovecot-lda -d {user} failed ({done.returncode}): "
                                 f"{done.stderr.decode(errors='replace')}\n{self.log_tail()}")
