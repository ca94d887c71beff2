"""Indexing through the service and the CLI, on real Maildirs and a real Xapian index in tmp_path."""

import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import xapian

from ftsd import service
from ftsd.cli import main
from ftsd.indexer import pool as pool_module
from ftsd.indexer.pool import WorkerOptions
from ftsd.query import parse_query
from ftsd.runtime import Runtime
from ftsd.settings import load_settings
from ftsd.store.index import index_path
from tests.maildirs import MailDir

USER = "alice@example.org"


def indexed(settings, mailbox="INBOX"):
    st = service.status(settings, USER)
    return {row["mailbox"]: row for row in st["mailboxes"]}[mailbox]


def uids(settings, query, mailbox="INBOX", runtime=None):
    return service.search(settings, USER, [mailbox], parse_query(query), autoindex=False, runtime=runtime)[0].uids


def snapshot(root: Path) -> dict[str, tuple[int, float]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in root.rglob("*") if p.is_file()}


def test_incremental_sync(maildir: MailDir, make_config):
    settings = load_settings(make_config())
    a = maildir.deliver(subject="first zebra")
    b = maildir.deliver(subject="second", body="giraffe")
    before = snapshot(maildir.root)
    report = service.index_users(settings, [USER])
    assert (report.indexed, report.failed) == (2, [])
    assert snapshot(maildir.root) == before  # the mail store is never modified
    assert uids(settings, "SUBJECT zebr") == [a] and uids(settings, "BODY iraf") == [b]
    again = service.index_users(settings, [USER])
    assert again.indexed == 0 and again.removed == 0
    c = maildir.deliver(subject="third zebra")
    maildir.expunge("INBOX", a)
    third = service.index_users(settings, [USER])
    assert (third.indexed, third.removed) == (1, 1)
    assert uids(settings, "SUBJECT zebra") == [c]
    assert indexed(settings)["indexed"] == 2 and indexed(settings)["last_uid"] == c


def test_uidvalidity_change_reindexes_mailbox(maildir: MailDir, make_config):
    settings = load_settings(make_config())
    maildir.deliver(subject="one")
    maildir.deliver(subject="two")
    service.index_users(settings, [USER])
    maildir.set_uidvalidity("INBOX", 999)
    report = service.index_users(settings, [USER])
    assert report.indexed == 2 and indexed(settings)["uidvalidity"] == 999 and indexed(settings)["indexed"] == 2


def test_renamed_folder_same_guid_not_reindexed(maildir: MailDir, make_config):
    settings = load_settings(make_config())
    maildir.deliver("Projects", subject="alpha")
    service.index_users(settings, [USER])
    maildir.rename("Projects", "Work")
    report = service.index_users(settings, [USER])
    assert report.indexed == 0 and report.removed == 0
    assert uids(settings, "SUBJECT alpha", "Work") == [1]


def test_bad_messages_logged_and_run_goes_on(maildir: MailDir, make_config, caplog):
    settings = load_settings(make_config())
    good = maildir.deliver(subject="good one")
    maildir.deliver(raw=b"\xff\xfe garbage \x00\x01 no headers at all")
    maildir.deliver(raw=b"Content-Type: multipart/mixed; boundary=X\n\n--X\nContent-Type: text/plain; charset=bogus\n"
                    b"Content-Transfer-Encoding: base64\n\n!!!!\n")
    unreadable = maildir.deliver(subject="unreadable")
    os.chmod(maildir.path_of("INBOX", unreadable), 0)
    report = service.index_users(settings, [USER])
    if os.geteuid() == 0:  # root reads mode-0 files anyway
        assert report.failed == [] and report.indexed == 4
    else:
        assert report.indexed == 3 and len(report.failed) == 1 and f"UID {unreadable}" in report.failed[0]
    assert uids(settings, "SUBJECT good") == [good]


def test_vanished_file_is_skipped_not_failed(maildir: MailDir, make_config):
    from ftsd.indexer.pipeline import index_message

    settings = load_settings(make_config())
    outcome = index_message("g", 7, maildir.root / "cur" / "gone:2,S", settings)
    assert outcome.skipped and not outcome.failed and outcome.document is None


def test_missing_user_and_bad_name_do_not_stop_others(maildir: MailDir, make_config):
    settings = load_settings(make_config())
    maildir.deliver(subject="hello")
    report = service.index_users(settings, ["nobody@example.org", "../etc", USER])
    assert report.indexed == 1 and len(report.failed) == 2
    assert "nobody@example.org" in report.failed[0] and "invalid user name" in report.failed[1]


def test_cli_index_status_search_exit_codes(maildir: MailDir, make_config, capsys):
    cfg = str(make_config())
    uid = maildir.deliver(subject="Invoice 42", body="Fahrländer")
    maildir.deliver("Trash", subject="deleted invoice")
    assert main(["index", "-c", cfg, "-A"]) == 0
    assert capsys.readouterr() == ("", "")  # quiet in cron: stdout is no terminal here
    assert main(["index", "-c", cfg, "-A", "-v"]) == 0
    maildir.deliver(subject="Receipt 43", body="second")
    assert main(["-v", "-c", cfg, "index", "-A"]) == 0  # global options before the command, as doveadm
    out = capsys.readouterr().out
    assert "1 indexed" in out and "0 failed" in out and "msg/s" in out
    assert main(["status", "-c", cfg, "-u", USER]) == 0
    status = capsys.readouterr().out
    assert "Trash" in status and "(excluded)" in status
    assert main(["search", "-c", cfg, "-u", USER, "BODY", "fahrlander"]) == 0
    assert capsys.readouterr().out.split() == [str(uid)]
    assert main(["search", "-c", cfg, "-u", USER, "--json", "-m", "INBOX", "SUBJECT", "invoice"]) == 0
    assert f'"uids": [{uid}]' in capsys.readouterr().out
    assert main(["search", "-c", cfg, "-u", USER, "SINCE", "1-Jan-2020"]) == 2
    assert "unsupported search key SINCE" in capsys.readouterr().err
    assert main(["search", "-c", cfg, "-u", USER, "(", "TEXT", "x"]) == 2
    assert main(["search", "-c", cfg, "-u", "nobody@example.org", "TEXT", "x"]) == 67  # EX_NOUSER
    assert "nobody@example.org" in capsys.readouterr().err
    assert main(["search", "-c", cfg, "-u", USER, "-m", "Nope", "TEXT", "x"]) == 66  # EX_NOINPUT
    assert main(["bogus"]) == 2
    assert main(["optimize", "-c", cfg, "-A"]) == 0
    assert main(["check", "-c", cfg, "-A"]) == 0
    assert main(["rescan", "-c", cfg, "-u", USER]) == 0


def test_corrupt_index_is_rebuilt(maildir: MailDir, make_config):
    settings = load_settings(make_config())
    uid = maildir.deliver(subject="phoenix")
    service.index_users(settings, [USER])
    path = index_path(service.get_user(settings, USER))
    for f in path.glob("*.glass"):
        f.write_bytes(b"\0" * 100)
    assert uids(settings, "SUBJECT phoenix") == [uid]  # answered from the Maildir meanwhile
    report = service.index_users(settings, [USER])
    assert report.rebuilt == [USER] and report.indexed == 1
    assert uids(settings, "SUBJECT phoenix") == [uid]


@pytest.mark.parametrize(("version", "kept"), [("1", False), ("4", False), ("99", True)])
def test_index_of_another_schema_is_rebuilt(maildir: MailDir, make_config, caplog, version, kept):
    # an older ftsd's index (an upgrade) is replaced quietly; a newer one's (a downgrade) is kept aside
    settings = load_settings(make_config())
    uid = maildir.deliver(subject="phoenix")
    other = maildir.deliver(subject="quiz")
    service.index_users(settings, [USER])
    path = index_path(service.get_user(settings, USER))
    db = xapian.WritableDatabase(str(path), xapian.DB_OPEN)
    db.set_metadata("ftsd.schema", version)
    db.commit()
    db.close()
    report = service.index_users(settings, [USER])
    assert report.rebuilt == [USER] and report.indexed == 2 and report.failed == []
    assert uids(settings, "SUBJECT phoenix") == [uid]
    # 1-2 character keys, read from the rebuilt index's gram patterns
    assert uids(settings, 'SUBJECT "ph"') == [uid] and uids(settings, "SUBJECT z") == [other]
    assert uids(settings, 'SUBJECT "i"') == [uid, other]
    assert bool(list(path.parent.glob("ftsd.db.broken-*"))) == kept
    levels = {r.levelname for r in caplog.records if "schema" in r.getMessage()}
    assert levels == ({"ERROR"} if kept else {"WARNING"})


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_pool_sizes_agree(maildir: MailDir, make_config, workers):
    settings = load_settings(make_config(fts={"workers": workers, "commit_limit": 3}))
    made = [maildir.deliver(subject=f"msg {i}", body=f"word{i % 3}") for i in range(10)]
    assert service.index_users(settings, [USER]).indexed == 10
    assert uids(settings, "BODY word1") == [u for i, u in enumerate(made) if i % 3 == 1]


def test_documents_waiting_for_the_writer_bound_the_submissions(maildir: MailDir, make_config, monkeypatch):
    """No more messages go to the workers while the finished documents waiting for the writer hold
    IN_FLIGHT_BYTES (0 here: the tightest bound, submissions stop whenever one is done): every message still
    comes, in order, none lost, no stall."""
    monkeypatch.setattr(pool_module, "IN_FLIGHT_BYTES", 0)
    settings = load_settings(make_config(fts={"workers": 2, "commit_limit": 7}))
    made = [maildir.deliver(subject=f"msg {i}", body=f"word{i % 3}") for i in range(40)]
    assert service.index_users(settings, [USER]).indexed == 40
    assert uids(settings, "BODY word2") == [u for i, u in enumerate(made) if i % 3 == 2]


def test_cached_readers_see_commits_and_optimize(maildir: MailDir, make_config):
    settings = load_settings(make_config())
    a = maildir.deliver(subject="kestrel one")
    service.index_users(settings, [USER])
    assert uids(settings, "SUBJECT kestrel") == [a]
    b = maildir.deliver(subject="kestrel two")
    service.index_users(settings, [USER])
    assert uids(settings, "SUBJECT kestrel") == [a, b]
    assert service.optimize_users(settings, [USER])[0].error is None
    c = maildir.deliver(subject="kestrel three")
    service.index_users(settings, [USER])
    assert uids(settings, "SUBJECT kestrel") == [a, b, c]


def test_short_strings_and_phrases_exact(maildir: MailDir, make_config):
    settings = load_settings(make_config())
    a = maildir.deliver(subject="xq marks", body="hello world")
    b = maildir.deliver(subject="other", body="world hello, qx")
    service.index_users(settings, [USER])
    assert uids(settings, "SUBJECT xq") == [a] and uids(settings, "TEXT qx") == [b]
    assert uids(settings, "BODY q") == [b] and uids(settings, "TEXT x") == [a, b]
    assert uids(settings, 'BODY "lo wor"') == [a] and uids(settings, 'BODY "hello,"') == [b]
    assert uids(settings, "NOT BODY hello") == [] and uids(settings, 'HEADER Subject ""') == [a, b]


def test_killed_mid_run_resumes_without_loss(maildir: MailDir, make_config):
    import signal
    import subprocess
    import sys
    import time

    cfg = make_config(fts={"commit_limit": 20, "workers": 1})
    settings = load_settings(cfg)
    made = [maildir.deliver(subject=f"bulk {i}", body=("lorem ipsum " * 400) + f"marker{i}") for i in range(400)]
    proc = subprocess.Popen([sys.executable, "-m", "ftsd", "index", "-c", str(cfg), "-u", USER],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = index_path(service.get_user(settings, USER))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and indexed(settings)["indexed"] >= 40:  # at least two commits are in
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = indexed(settings)["indexed"]
    assert 0 < partial < 400, "the run should have been killed midway"
    report = service.index_users(settings, [USER])
    assert report.indexed == 400 - partial and report.failed == []
    assert indexed(settings)["indexed"] == 400
    assert uids(settings, "BODY marker399") == [made[399]] and uids(settings, "SUBJECT bulk") == made
    db = xapian.Database(str(path))
    assert db.get_doccount() == 400  # documents are added for new UIDs only: none twice after the kill
    db.close()


def test_header_excludes_like_dovecot(maildir: MailDir, make_config):
    settings = load_settings(make_config(fts={"header_excludes": ["Received", "X-Noise-*"],
                                              "header_includes": ["X-Noise-Keep"]}))
    a = maildir.deliver(subject="hi", headers={"Received": "from relayzebra.example", "X-Noise-A": "noisyword",
                                               "X-Noise-Keep": "keptword"})
    b = maildir.deliver(subject="relayzebra in subject")
    service.index_users(settings, [USER])
    assert uids(settings, "TEXT relayzebra") == [b]  # Received is not part of TEXT any more
    assert uids(settings, "TEXT noisyword") == [] and uids(settings, "TEXT keptword") == [a]
    assert uids(settings, "HEADER Received relayzebra") == [a]  # still answered, from the Maildir


@pytest.mark.parametrize("nice", [0, 7])
def test_worker_processes_run_niced(maildir: MailDir, make_config, tmp_path, nice):
    # An external decoder (a child of the worker) reports the niceness it inherited as a searchable word.
    script = tmp_path / "nice.py"
    script.write_text("import os, sys\nsys.stdin.buffer.read()\nprint('nicelevel%d' % os.nice(0))\n")
    settings = load_settings(make_config(fts={"workers": 2, "worker_nice": nice}, decoders={
        "command": f"{sys.executable} {script}", "command_types": ["application/x-nice"]}))
    uid = maildir.deliver(subject="niceness", attachments=[("n.bin", "application/x-nice", b"x")])
    assert service.index_users(settings, [USER]).indexed == 1
    expected = min(19, os.nice(0) + nice)
    assert uids(settings, f"BODY nicelevel{expected}") == [uid]


KILLER = """\
import os, signal, sys, time
sys.stdin.buffer.read()
# kill an indexer worker of the test's pool: the newest fork of the test process, or child of its forkserver
# (the decoder sandbox is the runtime's, not the worker's: the worker is not among this command's ancestors)
def cmdline(p): return open(f"/proc/{p}/cmdline", "rb").read()
def stat(p): return open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
def parent(p): return int(stat(p)[1])
def children(p):
    out = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and parent(int(name)) == p:
                out.append(int(name))
        except OSError:
            pass
    return out
own = children(TEST_PID)
workers = [p for p in own if cmdline(p) == cmdline(TEST_PID)]
for server in (p for p in own if b"forkserver" in cmdline(p)):
    workers += children(server)
os.kill(max(workers, key=lambda p: int(stat(p)[19])), signal.SIGKILL)  # by start time: not an older test's
time.sleep(30)  # no answer: this part must not finish before the pool has seen the death
"""


@pytest.mark.parametrize("start_method", ["fork", "forkserver"])  # the CLI's and the service's
def test_a_message_that_kills_its_worker_costs_only_itself(maildir: MailDir, make_config, tmp_path,
                                                           start_method):
    script = tmp_path / "killer.py"
    script.write_text(KILLER.replace("TEST_PID", str(os.getpid())))
    settings = load_settings(make_config(fts={"workers": 2}, decoders={
        "command": f"{sys.executable} {script}", "command_types": ["application/x-killer"]}))
    normal = [maildir.deliver(subject=f"normal {i}", body=f"survivor{i}") for i in range(6)]
    killer = maildir.deliver(subject="killer", attachments=[("k.bin", "application/x-killer", b"x")])
    normal += [maildir.deliver(subject=f"normal {i}", body=f"survivor{i}") for i in range(6, 14)]
    done: list[Any] = []
    rt = Runtime(settings, WorkerOptions(start_method=start_method))
    run = threading.Thread(target=lambda: done.append(service.index_users(settings, [USER], runtime=rt)),
                           daemon=True)
    run.start()
    run.join(120)
    assert not run.is_alive(), "indexing hung after a worker died"
    report = done[0]
    assert report.indexed == len(normal) + 1 and report.partial == 1 and report.failed == []
    assert uids(settings, "BODY survivor") == normal
    # the killer is indexed from its raw head (found by its subject), so neither searches nor the next run read it
    assert uids(settings, "SUBJECT killer") == [killer]
    assert service.index_users(settings, [USER], runtime=rt).indexed == 0


@pytest.mark.parametrize("cache_mb", [64, 0])
def test_checked_texts_are_cached_by_file_identity(maildir: MailDir, make_config, cache_mb):
    settings = load_settings(make_config(fts={"verify_cache_mb": cache_mb}))
    uid = maildir.deliver(subject="cache", body="alpha beta gamma")
    service.index_users(settings, [USER])
    rt = Runtime(settings)  # the cache lives in the process's runtime
    assert uids(settings, 'BODY "alpha beta"', runtime=rt) == [uid]  # a phrase: checked against the message
    path = maildir.path_of("INBOX", uid)
    st = path.stat()
    path.write_bytes(path.read_bytes().replace(b"alpha beta", b"alpha BETX"))  # same size...
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # ...and mtime: the same file identity
    assert uids(settings, 'BODY "alpha beta"', runtime=rt) == ([uid] if cache_mb else [])
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # a changed file is read again
    assert uids(settings, 'BODY "alpha beta"', runtime=rt) == []
