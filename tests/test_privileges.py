"""ftsd on a real mail server's permissions: Maildirs 0700/0600 owned by a real `vmail` user, ftsd run as root
and as vmail (the real CLI, umask 022): every file ftsd creates belongs to vmail with 0600/0700; a root-owned index
is reported in one line with the fix (no 30 s lock wait) and repaired by a root run; an unreadable Maildir fails
only its user; the service refuses root."""

from __future__ import annotations

import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import to_toml
from tests.integration.dovecot import Dovecot
from tests.maildirs import MailDir
from tests.mailusers import MAIL_USER, REPO, ensure_user, files_of, ftsd, give, needs_root, private_base

pytestmark = needs_root
USERS = ("alice", "bob", "carol")


@pytest.fixture
def server() -> Iterator[Path]:
    """/tmp/ftsd-priv-*/: vmail/example.org/<user> Maildirs owned by vmail, index/ (root's, 0755), ftsd.toml."""
    ensure_user(MAIL_USER)
    for base in private_base("ftsd-priv-"):
        for name in USERS:
            md = MailDir(base / "vmail" / "example.org" / name)
            md.deliver(subject=f"hello {name}", body="quarterly invoice")
            md.deliver("Archive/2024", subject="old", body="archived report")
            md.deliver("Trash", subject="gone", body="deleted")
        give(base / "vmail", MAIL_USER)
        (base / "index").mkdir(mode=0o755)
        (base / "ftsd.toml").write_text(to_toml({
            "mail_location": f"maildir:{base}/vmail/%d/%n:INDEX={base}/index/%d/%n",
            "mail_uid": MAIL_USER,
            "fts": {"lock_timeout_s": 30, "workers": 1},
            "server": {"socket": str(base / "ftsd.sock"), "state_dir": str(base / "state")},
        }))
        yield base


def _assert_private(top: Path) -> None:
    entries = files_of(top)
    assert len(entries) > 5
    for path, owner, mode in entries:
        assert owner == MAIL_USER, (path, owner)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def test_root_run_works_as_the_mail_user_with_private_modes(server: Path) -> None:
    cfg = str(server / "ftsd.toml")
    tmp = Path(tempfile.mkdtemp(prefix="ftsd-test-tmpdir-", dir="/tmp"))  # a TMPDIR the mail user can reach
    tmp.chmod(0o1777)
    try:
        result = ftsd("-c", cfg, "index", "-A", tmpdir=tmp)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")  # cron: silent on success
        # the child that dropped root closed its runtime: no decoder socket directory left (it leaves by _exit)
        assert list(tmp.iterdir()) == []
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _assert_private(server / "index" / "example.org")
    # vmail itself, new mail, optimize, rescan, a search that autoindexes: still vmail's and private
    md = MailDir(server / "vmail" / "example.org" / "alice")
    md.deliver(subject="late", body="zebra")
    give(server / "vmail", MAIL_USER)
    assert ftsd("-c", cfg, "search", "-u", "alice@example.org", "TEXT", "zebra").stdout.split() == ["2"]
    for args, user in ((["index", "-A"], MAIL_USER), (["optimize", "-A"], None), (["rescan", "-A"], MAIL_USER),
                       (["optimize", "-A"], MAIL_USER)):
        result = ftsd("-c", cfg, *args, user=user)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), (args, user, result.stderr)
    _assert_private(server / "index" / "example.org")
    assert not any(owner != MAIL_USER for _, owner, _ in files_of(server / "vmail"))  # the mail store untouched


def test_root_owned_index_is_reported_at_once_then_repaired_by_root(server: Path) -> None:
    cfg = str(server / "ftsd.toml")
    assert ftsd("-c", cfg, "index", "-A").returncode == 0
    bob = server / "index" / "example.org" / "bob"
    give(bob, "root", 0o755, 0o644)  # what an older ftsd run by hand as root left behind (INDEX= dir included)
    MailDir(server / "vmail" / "example.org" / "bob").deliver(subject="new", body="more")
    give(server / "vmail", MAIL_USER)
    started = time.monotonic()
    result = ftsd("-c", cfg, "index", "-A", user=MAIL_USER)
    assert time.monotonic() - started < 15  # no 30 s lock wait
    assert result.returncode == 1 and result.stdout == ""
    assert "Traceback" not in result.stderr and "locked" not in result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("ftsd: failed:")]
    assert len(failed) == 1, result.stderr
    assert "bob@example.org" in failed[0] and "xapian-indexes: permission denied" in failed[0]
    assert "running as uid" in failed[0] and f"({MAIL_USER})" in failed[0] and f"chown -R {MAIL_USER}:" in failed[0]
    assert "3 users (1 failed)" in result.stderr  # the summary counts the failed user
    result = ftsd("-c", cfg, "index", "-A")  # root repairs: hands the files back, then indexes as vmail
    assert result.returncode == 0, result.stderr
    assert "given back to vmail" in result.stderr and "bob@example.org" in result.stderr
    _assert_private(server / "index" / "example.org")


def test_unreadable_maildir_fails_only_its_user(server: Path) -> None:
    cfg = str(server / "ftsd.toml")
    give(server / "index", MAIL_USER)
    carol = server / "vmail" / "example.org" / "carol"
    give(carol, "root")
    result = ftsd("-c", cfg, "index", "-A", user=MAIL_USER)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "carol" in line and "failed:" in line]
    assert len(lines) == 1 and "permission denied" in lines[0].lower(), result.stderr
    assert "3 users (1 failed)" in result.stderr
    assert (server / "index" / "example.org" / "alice" / "xapian-indexes" / "ftsd.db").is_dir()
    result = ftsd("-c", cfg, "search", "-u", "carol@example.org", "TEXT", "invoice", user=MAIL_USER)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1 and "carol" in result.stderr


def test_service_refuses_root_and_says_how(server: Path) -> None:
    result = ftsd("-c", str(server / "ftsd.toml"), "serve", timeout=30)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "User=vmail" in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("dovecot") is None, reason="Dovecot is not installed")
def test_after_a_real_dovecot_delivery_root_run_writes_as_the_mail_owner() -> None:
    """Maildirs, modes and uidlists made by a real Dovecot (IMAP APPEND as its mail uid, `nobody` under root);
    ftsd run as root with no mail_uid takes the Maildir's owner, as Dovecot made it."""
    for base in private_base("ftsd-dvpriv-"):
        dovecot = Dovecot(base, plugin={}, mail_plugins="")
        box = dovecot.add_user("carl", [])
        for path in [box, *box.rglob("*")]:
            path.chmod(0o700)  # as Dovecot creates a Maildir that does not exist yet
        dovecot.start()
        try:
            conn = dovecot.imap("carl")
            conn.append("INBOX", None, None, b"Subject: delivered\r\n\r\nby dovecot itself\r\n")
            conn.create("Archive")
            conn.append("Archive", None, None, b"Subject: archived\r\n\r\nkept for later\r\n")
            conn.logout()
        finally:
            dovecot.stop()
        owner = pwd.getpwuid(box.stat().st_uid).pw_name
        assert (box / "dovecot-uidlist").is_file() and owner != "root"
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in (box / "cur").iterdir() if p.is_file()) or \
            all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in (box / "new").iterdir() if p.is_file())
        cfg = base / "ftsd.toml"
        cfg.write_text(to_toml({
            "mail_location": f"maildir:{base}/mail/%u:INDEX={base}/ftsd-index/%u",
            "server": {"socket": "", "state_dir": str(base / "ftsd-state")},
        }))
        result = ftsd("-c", str(cfg), "index", "-A")
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
        entries = files_of(base / "ftsd-index" / "carl")
        assert entries and all(o == owner for _, o, _ in entries)
        assert all(m == (0o700 if p.is_dir() else 0o600) for p, _, m in entries)
        result = ftsd("-c", str(cfg), "search", "-u", "carl", "-m", "*", "TEXT", "dovecot")
        assert result.stdout.split() == ["INBOX", "1"], result.stderr


def test_service_as_the_mail_user_starts_and_names_an_unreadable_maildir(server: Path) -> None:
    state = server / "state"
    state.mkdir()
    give(state, MAIL_USER)
    give(server / "index", MAIL_USER)
    cfg = server / "serve.toml"
    cfg.write_text(to_toml({
        "mail_location": f"maildir:{server}/vmail/%d/%n:INDEX={server}/index/%d/%n",
        "server": {"listen": "", "socket": str(state / "ftsd.sock"), "state_dir": str(state)},
    }))
    give(server / "vmail" / "example.org" / "carol", "root")
    proc = subprocess.Popen(["setpriv", f"--reuid={MAIL_USER}", f"--regid={MAIL_USER}", "--init-groups",
                             sys.executable, "-m", "ftsd", "-c", str(cfg), "serve"], cwd="/",
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (state / "ftsd.sock").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.5)  # the watcher lists the Maildirs
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=60)
    assert "Traceback" not in output, output
    warned = [line for line in output.splitlines() if "WARNING: watcher: carol@example.org:" in line]
    assert len(warned) == 1 and "permission denied for ftsd running as uid" in warned[0], output


def test_userdb_uid_and_gid_names_are_resolved_and_an_unknown_one_is_one_line(server: Path) -> None:
    """A passwd-file userdb giving uid/gid as names (`vmail`), as Dovecot accepts them: resolved with the system's
    passwd and group; a name the system does not know fails that user only, in one line naming the field."""
    from ftsd.errors import ConfigError
    from ftsd.settings import load_settings
    from ftsd.userdb import lookup_user

    home = server / "vmail" / "example.org"
    (server / "users").write_text(
        f"alice@example.org:{{PLAIN}}x:{MAIL_USER}:{MAIL_USER}::{home}/alice::\n"
        f"bob@example.org:{{PLAIN}}x::::{home}/bob::userdb_uid=nosuch-ftsd-user userdb_gid={MAIL_USER}\n"
        f"carol@example.org:{{PLAIN}}x:{MAIL_USER}:nosuch-ftsd-group::{home}/carol::\n")
    cfg = server / "ftsd.toml"
    cfg.write_text(to_toml({  # no mail_uid: the userdb alone says who owns the mail
        "mail_location": f"maildir:{server}/vmail/%d/%n:INDEX={server}/index/%d/%n",
        "userdb": {"driver": "passwd-file", "args": str(server / "users")},
        "fts": {"workers": 1},
        "server": {"socket": str(server / "ftsd.sock"), "state_dir": str(server / "state")},
    }))
    vmail = pwd.getpwnam(MAIL_USER)
    alice = lookup_user(load_settings(cfg), "alice@example.org")
    assert (alice.uid, alice.gid) == (vmail.pw_uid, vmail.pw_gid)
    with pytest.raises(ConfigError, match=r"^bob@example.org: userdb field uid=.nosuch-ftsd-user. is no system"):
        lookup_user(load_settings(cfg), "bob@example.org")
    result = ftsd("-c", str(cfg), "index", "-A")
    assert result.returncode == 1 and result.stdout == "" and "Traceback" not in result.stderr, result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("ftsd: failed:")]
    assert len(failed) == 2, result.stderr
    assert "bob@example.org: userdb field uid='nosuch-ftsd-user' is no system user" in failed[0]
    assert "getent passwd nosuch-ftsd-user" in failed[0]
    assert "carol@example.org: userdb field gid='nosuch-ftsd-group' is no system group" in failed[1]
    assert "3 users (2 failed)" in result.stderr
    _assert_private(server / "index" / "example.org" / "alice")  # alice: indexed as vmail, from the names


@needs_root
def test_an_interpreter_the_mail_user_cannot_run_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    # a pyenv under /root: the indexer's fork server and the decoder sandbox start a new interpreter as the mail user
    import dataclasses
    import os

    from ftsd.decoders.sandbox import interpreter_problem
    from ftsd.errors import UsageError
    from ftsd.indexer.pool import WorkerOptions, WorkerPool
    from ftsd.settings import Settings

    private = tmp_path / "root-only"
    private.mkdir(mode=0o700)
    exe = private / "python3"
    exe.write_bytes(b"")
    exe.chmod(0o755)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child becomes nobody, as a root run's child does, and reports what it was told
        try:
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            sys.executable = str(exe)
            said = [interpreter_problem() or "none"]
            try:
                settings = Settings()
                settings = dataclasses.replace(settings, fts=dataclasses.replace(settings.fts, workers=2))
                with WorkerPool(settings, WorkerOptions("forkserver")):
                    said.append("started")
            except UsageError as exc:
                said.append(str(exc))
            os.write(write, "\n".join(said).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as reader:
        problem, pool = reader.read().split("\n")
    os.waitpid(pid, 0)
    fix = "install ftsd where the mail user can run it (scripts/install: /opt/ftsd)"
    assert problem == f"uid 65534 cannot run {exe}: {fix}"
    assert pool.startswith("indexer workers cannot start: uid 65534 cannot run") and "users_parallel = 1" in pool
