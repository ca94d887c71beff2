"""Debian 13's own Dovecot 2.4 packages with the stock fts_solr plugin, indexing into a real `ftsd serve` app.

Dovecot runs inside a cached trixie root (tests/integration/debroot.py: built with debootstrap on first use, several
minutes; reused afterwards) with the 2.4 configuration of docs/dovecot.md, on loopback; ftsd runs on the host with
its full app and a token (Basic auth in the fts_solr URL). The module walks one mailbox through an admin's life:
`doveadm index -A`, delivery with `dovecot-lda` (autoindexed), IMAP SEARCH against the brute-force reference,
expunge, move to Trash (not autoindexed: `fts_autoindex = no`), rename, delete, `doveadm fts rescan` + reindex.
It also shows the two silent misconfigurations docs/dovecot.md warns about: no `language` block, and a
`protocol lda { mail_plugins = ... }` that replaces the global plugin list.
"""

from __future__ import annotations

import email.message
import email.utils
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftsd.query import parse_query
from tests.integration.debroot import RootError, ensure_root, missing_tools
from tests.integration.dovecot import FtsdServer
from tests.integration.dovecot24 import Dovecot24
from tests.integration.slow_proxy import SlowProxy
from tests.integration.test_dovecot import (
    FALSE_POSITIVE,
    HEADER_KEYS,
    REFERENCE_KEYS,
    TOKEN,
    _corpus,
    _ftsd_config,
)
from tests.reference import ReferenceIndex

# The first test may build the Debian 13 root (debroot.py: about 4 minutes, more on a slow mirror).
pytestmark = [pytest.mark.corpus, pytest.mark.slow, pytest.mark.timeout(2400)]

USER = "alice"
IN_MAILDIR = 150  # copied into the Maildir before Dovecot starts, indexed by `doveadm index -A`
BATCH = 500  # one Solr update longer than a 1 s request timeout (at 150 a faster ftsd answered in 0.9 s)
BY_LDA = 10  # delivered by dovecot-lda while Dovecot runs, indexed by autoindex


@pytest.fixture(scope="session")
def trixie_root() -> Path:
    if why := missing_tools():
        if os.geteuid() != 0:
            pytest.skip(why)
        pytest.fail(why)
    try:
        root, _ = ensure_root()
    except RootError as e:
        pytest.fail(str(e))
    return root


class Stack24:
    def __init__(self, fs: Path, corpus: list[Path]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="ftsd-dv24-", dir="/tmp"))  # under /tmp: bound into the root
        self.root.chmod(0o755)
        self.config = _ftsd_config(self.root, TOKEN)
        self.ftsd = FtsdServer(self.config, self.root / "ftsd.log", "create_app", token=TOKEN)
        self.dovecot = Dovecot24(fs, self.root / "dovecot", self.ftsd.url)
        self.corpus = corpus

    def close(self) -> None:
        self.dovecot.stop()
        self.ftsd.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def imap_uids(self, query: str, mailbox: str = "INBOX") -> list[int]:
        return self.dovecot.uid_search(USER, query, mailbox, context=self.log_tails)

    def guid(self, mailbox: str = "INBOX") -> str:
        return self.dovecot.mailbox_guid(USER, mailbox)

    def count(self, mailbox: str = "INBOX", guid: str | None = None) -> int:
        return self.ftsd.count(USER, guid or self.guid(mailbox))

    def wait_count(self, expected: int, mailbox: str = "INBOX", timeout_s: float = 30) -> int:
        guid = self.guid(mailbox)
        deadline = time.monotonic() + timeout_s
        while (count := self.count(guid=guid)) != expected and time.monotonic() < deadline:
            time.sleep(0.1)
        return count

    def reference(self) -> ReferenceIndex:
        return ReferenceIndex(self.dovecot.maildir(USER))

    def log_tails(self) -> str:
        ftsd_log = self.ftsd.log.read_text(errors="replace")[-3000:] if self.ftsd.log.exists() else ""
        return f"--- dovecot.log\n{self.dovecot.log_tail()}\n--- ftsd.log\n{ftsd_log}"


@pytest.fixture(scope="module")
def stack(trixie_root: Path, corpus_dir: Path) -> Iterator[Stack24]:
    corpus = _corpus(corpus_dir, "INBOX", IN_MAILDIR + BY_LDA + 1)
    s = Stack24(trixie_root, corpus)
    try:
        s.dovecot.add_user(USER, corpus[:IN_MAILDIR])
        s.ftsd.start()
        s.dovecot.start()
        yield s
    finally:
        s.close()


def _message(subject: str, body: str) -> bytes:
    msg = email.message.EmailMessage()
    msg["From"] = "Quentin Quokka <quentin@example.org>"
    msg["To"] = f"{USER}@example.org"
    msg["Subject"] = subject
    msg["Date"] = email.utils.formatdate()
    msg.set_content(body)
    return msg.as_bytes()



def _timeout_configs(dovecot: Dovecot24, timeout: str, port: int, other_port: int) -> Path:
    """Dovecot's fts solr request timeout cut to `timeout`, one attempt; its config keeps the Solr URL on `port`,
    and the returned second config (inside the directory bound into the Debian 13 root) points at `other_port`."""
    timeouts = f"  http_client_request_timeout = {timeout}\n  http_client_request_max_attempts = 1\n"
    conf = dovecot.conf.read_text().replace(f"  url = {dovecot.fts_url}\n", f"  url = {dovecot.fts_url}\n{timeouts}")
    assert timeouts in conf
    dovecot.conf.write_text(conf)
    other = dovecot.root / f"other-{other_port}.conf"
    other.write_text(conf.replace(f":{port}/", f":{other_port}/"))
    return other

def test_the_root_runs_debian_13_dovecot_2_4(stack: Stack24) -> None:
    version = subprocess.run(stack.dovecot.command("dovecot", "--version"), capture_output=True, text=True,
                             check=True).stdout
    assert version.startswith("2.4."), version
    config = stack.dovecot.doveconf("-n")
    for line in ("fts_search_add_missing = yes", "fts_autoindex = no", "language en {", "default = yes",
                 "fts solr {", "fts_solr = yes"):
        assert line in config, f"{line!r} missing from doveconf -n:\n{config}"


def test_doveadm_index_all_users(stack: Stack24) -> None:
    stack.dovecot.doveadm("index", "-A", "*")
    assert stack.count() == IN_MAILDIR, stack.log_tails()


def test_lda_delivery_is_autoindexed(stack: Stack24) -> None:
    for path in stack.corpus[IN_MAILDIR:IN_MAILDIR + BY_LDA]:
        stack.dovecot.deliver(USER, path.read_bytes())
    assert stack.wait_count(IN_MAILDIR + BY_LDA) == IN_MAILDIR + BY_LDA, stack.log_tails()


@pytest.fixture(scope="module")
def delivered_reference(stack: Stack24) -> ReferenceIndex:
    """The reference once every message is delivered (the tests below change the mailbox; they make their own)."""
    return stack.reference()


@pytest.mark.parametrize("query", REFERENCE_KEYS)
def test_imap_search_equals_reference(stack: Stack24, delivered_reference: ReferenceIndex, query: str) -> None:
    assert stack.imap_uids(query) == delivered_reference.search("INBOX", parse_query(query))


def test_header_keys_alone_are_checked_by_dovecot(stack: Stack24, delivered_reference: ReferenceIndex) -> None:
    for query in HEADER_KEYS:
        assert stack.imap_uids(query) == delivered_reference.search("INBOX", parse_query(query)), query


def test_header_key_beside_a_definite_key_is_a_dovecot_false_positive(stack: Stack24,
                                                                      delivered_reference: ReferenceIndex) -> None:
    """Dovecot's, in 2.3 and 2.4 (fts-storage.c, fts_search_apply_results_level): when this fails, Dovecot has
    fixed it, and docs/dovecot.md must say from which version."""
    definite, combined = FALSE_POSITIVE
    assert delivered_reference.search("INBOX", parse_query(combined)) == []
    hits = delivered_reference.search("INBOX", parse_query(definite))
    assert hits and stack.imap_uids(combined) == hits


def test_doveadm_search_equals_reference(stack: Stack24, delivered_reference: ReferenceIndex) -> None:
    reference = delivered_reference
    for args in (["BODY", "nux"], ["SUBJECT", "razor"]):
        out = stack.dovecot.doveadm("search", "-u", USER, "mailbox", "INBOX", *args).stdout
        uids = sorted(int(line.split()[1]) for line in out.splitlines() if line.strip())
        assert uids == reference.search("INBOX", parse_query(" ".join(args))), args


def test_expunge_removes_the_document(stack: Stack24) -> None:
    before = stack.count()
    victim = stack.imap_uids("BODY linux")[0]
    conn = stack.dovecot.imap(USER)
    try:
        conn.select("INBOX")
        assert conn.uid("STORE", str(victim), "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
        assert conn.expunge()[0] == "OK"
    finally:
        conn.logout()
    assert stack.wait_count(before - 1) == before - 1, stack.log_tails()
    assert victim not in stack.imap_uids("BODY linux")
    assert stack.imap_uids("BODY linux") == stack.reference().search("INBOX", parse_query("BODY linux"))


def test_move_to_trash_is_searched_but_not_autoindexed(stack: Stack24) -> None:
    conn = stack.dovecot.imap(USER)
    try:
        for box in ("Trash", "Archive"):
            assert conn.create(box)[0] == "OK"
        conn.select("INBOX")
        razor = stack.imap_uids("SUBJECT razor")
        assert len(razor) >= 3, "the corpus slice has too few razor messages for this test"
        assert conn.uid("MOVE", str(razor[0]), "Trash")[0] == "OK"
        assert conn.uid("MOVE", str(razor[1]), "Archive")[0] == "OK"
    finally:
        conn.logout()
    # Archive is autoindexed (the positive control); then Trash must still be empty in ftsd: fts_autoindex = no.
    assert stack.wait_count(1, "Archive") == 1, stack.log_tails()
    time.sleep(1)
    assert stack.count("Trash") == 0
    assert stack.wait_count(IN_MAILDIR + BY_LDA - 3) == IN_MAILDIR + BY_LDA - 3  # both left INBOX's documents
    # A search in Trash indexes it first (fts_search_add_missing = yes) and finds the moved message.
    assert stack.imap_uids("SUBJECT razor", "Trash") == [1]
    assert stack.count("Trash") == 1
    assert razor[0] not in stack.imap_uids("SUBJECT razor")


def test_rename_keeps_the_documents(stack: Stack24) -> None:
    conn = stack.dovecot.imap(USER)
    try:
        assert conn.create("Work")[0] == "OK"
        conn.select("INBOX")
        uids = stack.imap_uids("BODY spamassassin")[:5]
        assert conn.uid("COPY", ",".join(map(str, uids)), "Work")[0] == "OK"
    finally:
        conn.logout()
    assert stack.wait_count(len(uids), "Work") == len(uids), stack.log_tails()
    guid = stack.guid("Work")
    conn = stack.dovecot.imap(USER)
    try:
        assert conn.rename("Work", "Projects")[0] == "OK"
    finally:
        conn.logout()
    assert stack.guid("Projects") == guid  # Dovecot keeps the mailbox GUID, so ftsd's documents stay valid
    reference = stack.reference()
    for query in ("BODY spamassassin", "TEXT linux", "NOT BODY razor"):
        assert stack.imap_uids(query, "Projects") == reference.search("Projects", parse_query(query)), query
    assert stack.count("Projects") == len(uids)  # answered from the documents made before the rename


def test_delete_mailbox(stack: Stack24) -> None:
    guid = stack.guid("Projects")
    before = stack.count(guid=guid)
    conn = stack.dovecot.imap(USER)
    try:
        assert conn.delete("Projects")[0] == "OK"
        typ, data = conn.list()
        assert typ == "OK" and not any(b"Projects" in line for line in data if isinstance(line, bytes))
    finally:
        conn.logout()
    assert before > 0
    # Deleting a mailbox expunges its messages first, and fts_solr sends a delete for each: no document stays.
    assert stack.count(guid=guid) == 0, stack.log_tails()


def test_fts_rescan_then_index_resends_everything_once(stack: Stack24) -> None:
    guid = stack.guid()
    stack.dovecot.doveadm("fts", "rescan", "-u", USER)
    stack.dovecot.doveadm("index", "-u", USER, "*")
    expected = len(stack.reference().mailboxes["INBOX"])
    assert stack.count(guid=guid) == expected, stack.log_tails()
    reference = stack.reference()
    for query in ("TEXT linux", "BODY ernel", "SUBJECT razor", "FROM yahoo"):
        assert stack.imap_uids(query) == reference.search("INBOX", parse_query(query)), query


def test_without_a_language_block_fts_is_silently_off(stack: Stack24) -> None:
    """Dovecot 2.4 then searches without FTS (exit 0, right answers, every message read) and only logs an error:
    nothing reaches ftsd. The same search with the language block indexes the mailbox first."""
    conf = stack.dovecot.conf.with_name("no-language.conf")
    conf.write_text(re.sub(r"language en \{\n  default = yes\n\}\n", "", stack.dovecot.conf.read_text()))
    assert "language en" not in conf.read_text()

    def doveadm(config: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(stack.dovecot.command("doveadm", "-c", str(config), *args), input=stdin,
                              capture_output=True, check=False)
        assert done.returncode == 0, done.stderr
        return done

    doveadm(conf, "mailbox", "create", "-u", USER, "Nolang")
    doveadm(conf, "save", "-u", USER, "-m", "Nolang", stdin=_message("Nolang", "the zanzibarian flute\n"))
    done = doveadm(conf, "search", "-u", USER, "mailbox", "Nolang", "BODY", "zanzibarian")
    assert len(done.stdout.splitlines()) == 1  # the right answer, from reading the mail
    assert b"No language { .. } defined" in done.stderr, done.stderr
    assert stack.count("Nolang") == 0  # FTS never ran
    assert len(doveadm(stack.dovecot.conf, "search", "-u", USER, "mailbox", "Nolang", "BODY", "zanzibarian")
               .stdout.splitlines()) == 1
    assert stack.count("Nolang") == 1


def test_lda_protocol_block_pitfall(stack: Stack24) -> None:
    """`protocol lda { mail_plugins = sieve }` replaces the global list: LDA loads no fts, delivery is not indexed.
    The block form `mail_plugins { sieve = yes }` (the test's main configuration) adds to it."""
    conf = stack.dovecot.conf.with_name("lda-pitfall.conf")
    log = stack.dovecot.root / "lda-pitfall.log"
    text = stack.dovecot.conf.read_text().replace("mail_plugins {\n    sieve = yes\n  }", "mail_plugins = sieve")
    text = text.replace(f"log_path = {stack.dovecot.log}", f"log_path = {log}").replace("mail_debug = no",
                                                                                       "mail_debug = yes")
    assert "mail_plugins = sieve" in text
    conf.write_text(text)
    guid = stack.guid()
    before = stack.count(guid=guid)
    done = subprocess.run(stack.dovecot.command("/usr/lib/dovecot/dovecot-lda", "-c", str(conf), "-d", USER),
                          input=_message("Pitfall", "the quixotic marmoset\n"), capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    loaded = re.findall(r"lda\(.*Module loaded: \S*/(lib\w+)\.so", log.read_text())
    assert "lib90_sieve_plugin" in loaded and "lib20_fts_plugin" not in loaded, loaded
    time.sleep(1)
    assert stack.count(guid=guid) == before  # not autoindexed: no LDA-side fts, no indexer request
    assert len(stack.imap_uids("BODY marmoset")) == 1  # a search still finds it (fts_search_add_missing)
    assert stack.count(guid=guid) == before + 1


def test_interim_responses_keep_dovecot_waiting_for_a_slow_update(trixie_root: Path, corpus_dir: Path) -> None:
    """The fact a fix for slow updates can build on (docs/dovecot.md, "Batch size"): an update answered after
    Dovecot's request timeout fails, unless the server sends `102 Processing` meanwhile. Dovecot's timeout is cut
    to 2 s here (a 2.4 setting); the proxy answers each update 4 s after the request (less than uvicorn's 5 s
    keep-alive, which would otherwise close the upstream connection under the held answer)."""
    root = Path(tempfile.mkdtemp(prefix="ftsd-dv24-slow-", dir="/tmp"))
    root.chmod(0o755)
    ftsd = FtsdServer(_ftsd_config(root), root / "ftsd.log")
    silent, chatty = (SlowProxy(ftsd.port, delay_s=4), SlowProxy(ftsd.port, delay_s=4, interim_every_s=0.3))
    dovecot = Dovecot24(trixie_root, root / "dovecot", f"http://127.0.0.1:{chatty.port}/solr/dovecot/")
    try:
        dovecot.add_user(USER, _corpus(corpus_dir, "INBOX", 20))
        silent_conf = _timeout_configs(dovecot, "2s", chatty.port, silent.port)
        ftsd.start()
        dovecot.start()
        done = subprocess.run(dovecot.command("doveadm", "-c", str(silent_conf), "index", "-u", USER, "INBOX"),
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode != 0 and "Request timed out" in done.stderr, done.stderr
        dovecot.doveadm("index", "-u", USER, "INBOX")
        assert chatty.interims_sent >= 3
        assert ftsd.count(USER, dovecot.mailbox_guid(USER)) == 20
    finally:
        dovecot.stop()
        ftsd.kill()
        silent.close()
        chatty.close()
        shutil.rmtree(root, ignore_errors=True)


def test_a_batch_longer_than_dovecots_timeout_succeeds(trixie_root: Path, corpus_dir: Path) -> None:
    """ftsd's own `102 Processing` (api/protocol.py, limits.solr_interim_s) keeps Dovecot waiting for a batch
    that takes ftsd longer than Dovecot's request timeout (cut to 1 s here, one attempt). The same batch of 500
    messages to an ftsd with interim responses off fails with "Request timed out" (bob); with them on (every
    0.2 s), it is indexed whole (alice), and ftsd's log shows it took longer than the timeout."""
    root = Path(tempfile.mkdtemp(prefix="ftsd-dv24-interim-", dir="/tmp"))
    root.chmod(0o755)
    base = _ftsd_config(root).read_text()
    servers = {}
    for name, every in (("quiet", 0), ("chatty", 0.2)):
        config = root / f"ftsd-{name}.toml"
        config.write_text(base.replace("/ftsd-index/", f"/ftsd-index-{name}/").replace(
            "/ftsd-state", f"/ftsd-state-{name}") + f"\n[limits]\nsolr_interim_s = {every}\n")
        servers[name] = FtsdServer(config, root / f"ftsd-{name}.log")
    quiet, chatty = servers["quiet"], servers["chatty"]
    dovecot = Dovecot24(trixie_root, root / "dovecot", chatty.url)
    try:
        messages = _corpus(corpus_dir, "INBOX", BATCH)  # ~5 ms each: well past 1 s on any machine we run
        dovecot.add_user("alice", messages)
        dovecot.add_user("bob", messages)
        quiet_conf = _timeout_configs(dovecot, "1s", chatty.port, quiet.port)
        quiet.start()
        chatty.start()
        dovecot.start()
        done = subprocess.run(dovecot.command("doveadm", "-c", str(quiet_conf), "index", "-u", "bob", "INBOX"),
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode != 0 and "Request timed out" in done.stderr, done.stderr
        dovecot.doveadm("index", "-u", "alice", "INBOX")
        took = [float(m) for m in re.findall(rf"solr update ok \+{BATCH} -0 documents in ([\d.]+) ms",
                                             chatty.log.read_text(errors="replace"))]
        assert len(took) == 1 and took[0] > 1000, (took, chatty.log.read_text(errors="replace")[-3000:])
        assert chatty.count("alice", dovecot.mailbox_guid("alice")) == BATCH
        print(f"Dovecot 2.4, timeout 1 s: a batch of {BATCH} answered in {took[0] / 1000:.1f} s")
    finally:
        dovecot.stop()
        quiet.kill()
        chatty.kill()
        shutil.rmtree(root, ignore_errors=True)
