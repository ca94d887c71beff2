"""`[solr] attachments` with a real Dovecot: 2.3 on the host and Debian 13's 2.4 in its cached root. Dovecot's
fts_solr sends no attachment text (2.4 has no decoder at all), so a word that is only inside a PDF or a DOCX is not
found through IMAP; with the setting ftsd adds the text its own decoders find in the Maildir, and IMAP SEARCH TEXT
finds it. The admin's path is walked: off, then on (new mail gets it at once), then `doveadm fts rescan` + index
for the mail indexed before.
"""

from __future__ import annotations

import email.message
import email.utils
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ftsd.api.token import service_token
from ftsd.settings import load_settings
from tests.conftest import to_toml
from tests.decoders import makedocs as docs
from tests.integration.dovecot import Dovecot, FtsdServer, missing_dovecot, solr_plugin
from tests.integration.test_dovecot import TOKEN

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

USER = "alice"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def _config(root: Path, attachments: bool) -> Path:
    """ftsd as Dovecot's Solr backend, reading Dovecot's Maildirs (for the attachments) and its passwd-file."""
    path = root / "ftsd.toml"
    path.write_text(to_toml({
        "mail_location": f"maildir:{root}/dovecot/mail/%u:INDEX={root}/ftsd-index/%u",
        "userdb": {"driver": "passwd-file", "args": str(root / "dovecot" / "users")},
        "server": {"socket": "", "state_dir": str(root / "ftsd-state"), "token": TOKEN},
        "fts": {"writer": "dovecot"},
        "solr": {"attachments": attachments},
    }))
    return path


def _message(subject: str, name: str, mime: str, data: bytes) -> bytes:
    msg = email.message.EmailMessage()
    msg["From"] = "Quentin Quokka <quentin@example.org>"
    msg["To"] = f"{USER}@example.org"
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate()
    msg.set_content("Please find the document attached.\n")
    maintype, _, subtype = mime.partition("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes()


class Stack:
    """One Dovecot (2.3 or 2.4) and one ftsd whose config can be switched (ftsd restarted)."""

    def __init__(self, make_dovecot: Callable[[Path, str], Dovecot]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ftsd-att-", dir="/tmp"))  # /tmp: bound into the 2.4 root
        self.root.chmod(0o755)
        self.config = _config(self.root, False)
        token = service_token(load_settings(self.config))
        self.ftsd = FtsdServer(self.config, self.root / "ftsd.log", "create_app", token=token)
        self.dovecot = make_dovecot(self.root / "dovecot", self.ftsd.url)
        self.dovecot.add_user(USER, [])

    def restart_ftsd(self, attachments: bool) -> None:
        self.ftsd.kill()
        _config(self.root, attachments)
        self.ftsd.start()

    def append(self, raw: bytes) -> int:
        conn = self.dovecot.imap(USER)
        try:
            typ, data = conn.append("INBOX", "", None, raw)
            assert typ == "OK", data
            found = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            assert found, data
            return int(found[1])
        finally:
            conn.logout()

    def index(self) -> None:
        self.dovecot.doveadm("index", "-u", USER, "INBOX")

    def search(self, query: str) -> list[int]:
        return self.dovecot.uid_search(USER, query, context=self.log_tails)

    def log_tails(self) -> str:
        ftsd_log = self.ftsd.log.read_text(errors="replace")[-3000:] if self.ftsd.log.exists() else ""
        return f"--- dovecot.log\n{self.dovecot.log_tail()}\n--- ftsd.log\n{ftsd_log}"

    def close(self) -> None:
        self.dovecot.stop()
        self.ftsd.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def _dovecot23(root: Path, url: str) -> Dovecot:
    if why := missing_dovecot():
        pytest.fail(why)
    return Dovecot(root, solr_plugin(url))


def _dovecot24(root: Path, url: str) -> Dovecot:
    from tests.integration.debroot import RootError, ensure_root, missing_tools
    from tests.integration.dovecot24 import Dovecot24

    if why := missing_tools():
        pytest.skip(why)
    try:
        fs, _ = ensure_root()
    except RootError as exc:
        pytest.fail(str(exc))
    return Dovecot24(fs, root, url)


@pytest.fixture(params=["2.3", "2.4"])
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    s = Stack(_dovecot23 if request.param == "2.3" else _dovecot24)
    try:
        s.ftsd.start()
        s.dovecot.start()
        yield s
    finally:
        s.close()


def test_attachment_words_are_found_through_imap_with_the_setting_only(stack: Stack) -> None:
    # off (the default): Dovecot's document is all ftsd indexes
    pdf = stack.append(_message("quarterly report", "q3.pdf", "application/pdf",
                                docs.make_pdf(["Revenue of the zqxpdfrevenue unit"])))
    stack.index()
    assert stack.search("TEXT attached") == [pdf], stack.log_tails()  # the message is indexed...
    assert stack.search("TEXT zqxpdfrevenue") == [], stack.log_tails()  # ...without its attachment's text

    # on: new mail gets its attachments' text at once
    stack.restart_ftsd(attachments=True)
    docx = stack.append(_message("a letter", "letter.docx", DOCX, docs.make_docx(["Dear zqxdocxletter reader"])))
    stack.index()
    assert stack.search("TEXT zqxdocxletter") == [docx], stack.log_tails()
    assert stack.search("BODY qxdocxlett") == [docx]  # a substring, as IMAP SEARCH takes it
    assert stack.search("TEXT zqxpdfrevenue") == []  # indexed before: as it was sent then

    # mail indexed before: re-sent by a rescan, and then found too
    stack.dovecot.doveadm("fts", "rescan", "-u", USER)
    stack.index()
    assert stack.search("TEXT zqxpdfrevenue") == [pdf], stack.log_tails()
    assert stack.search("TEXT attached") == [pdf, docx]
