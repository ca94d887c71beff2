"""A private Dovecot 2.3 and a private ftsd for integration tests and bench/bench_dovecot.py.

`Dovecot` writes a minimal dovecot.conf into its own directory (base_dir, state_dir, log, passwd-file, Maildirs),
listens for IMAP on a free loopback port and runs in its own process group, so `stop()` (SIGTERM to the master,
then SIGKILL to the whole group) never leaves a process behind. As root the mail is owned by `nobody`, because
Dovecot refuses mail access as root; otherwise everything runs as the current user. `FtsdServer` runs ftsd's
Solr routes under uvicorn in a child process (`python -m tests.integration.ftsd_server`), killable at any moment.
"""

from __future__ import annotations

import contextlib
import grp
import http.client
import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parents[2]
PACKAGES = "dovecot-imapd dovecot-solr"  # what the Solr tests need (dovecot-core comes with them)
PASSWORD = "secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout_s: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout_s}s\n{tail}")


def wait_for_socket(path: Path, timeout_s: float, what: str, log: Path | None = None) -> None:
    """Until the Unix socket at `path` accepts a connection."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
            s.settimeout(0.5)
            s.connect(str(path))
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not accept connections on {path} within {timeout_s}s\n{tail}")


def missing_dovecot() -> str | None:
    """Why Dovecot with fts_solr cannot run here, or None."""
    if shutil.which("dovecot") is None or shutil.which("doveadm") is None:
        return f"dovecot is not installed: apt-get install -y {PACKAGES}"
    if not Path("/usr/lib/dovecot/modules/lib21_fts_solr_plugin.so").exists():
        return f"Dovecot's fts_solr plugin is missing: apt-get install -y {PACKAGES}"
    return None


def _mail_owner() -> tuple[str, str, int, int]:
    """(user, group, uid, gid) the mail belongs to: `nobody` when running as root (Dovecot refuses root)."""
    if os.geteuid() == 0:
        pw = pwd.getpwnam("nobody")
        return pw.pw_name, grp.getgrgid(pw.pw_gid).gr_name, pw.pw_uid, pw.pw_gid
    pw = pwd.getpwuid(os.geteuid())
    return pw.pw_name, grp.getgrgid(os.getegid()).gr_name, os.geteuid(), os.getegid()


def solr_plugin(url: str, *options: str) -> dict[str, str]:
    """The documented ftsd setup (docs/dovecot.md) as plugin settings."""
    return {
        "fts": "solr",
        "fts_solr": " ".join([f"url={url}", *options]),
        "fts_autoindex": "yes",
        "fts_autoindex_exclude": "\\Trash",
        "fts_autoindex_exclude2": "\\Junk",
        "fts_enforced": "yes",
    }


class Dovecot:
    """One private Dovecot instance under `root`; users get Maildirs at root/mail/<user>."""

    def __init__(self, root: Path, plugin: Mapping[str, str], mail_plugins: str = "fts fts_solr") -> None:
        self.root = root
        self.port = free_port()
        self.conf = root / "dovecot.conf"
        self.log = root / "dovecot.log"
        self.plugin = dict(plugin)
        self.mail_plugins = mail_plugins
        self.proc: subprocess.Popen[bytes] | None = None
        self.users: list[str] = []
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)  # the mail uid must be able to reach its Maildir and the sockets
        for sub in ("run", "state", "mail", "home"):
            (root / sub).mkdir(exist_ok=True)
        self._write_conf()

    def command(self, *argv: str) -> list[str]:
        """How to run a Dovecot program: here the host's own (Dovecot24 runs them inside a Debian 13 root)."""
        return list(argv)

    def maildir(self, user: str) -> Path:
        return self.root / "mail" / user

    def add_user(self, user: str, messages: Iterable[Path]) -> Path:
        """A user whose INBOX holds copies of these message files (Dovecot assigns UIDs on first sight)."""
        box = self.maildir(user)
        for sub in ("cur", "new", "tmp"):
            (box / sub).mkdir(parents=True, exist_ok=True)
        for path in messages:
            shutil.copy2(path, box / "cur" / path.name)
        (self.root / "home" / user).mkdir(exist_ok=True)
        self.users.append(user)
        (self.root / "users").write_text(
            "".join(f"{u}:{{PLAIN}}{PASSWORD}::::{self.root}/home/{u}::\n" for u in self.users))
        self._chown()
        return box

    def _chown(self) -> None:
        _, _, uid, gid = _mail_owner()
        if os.geteuid() != 0:
            return
        for top in (self.root / "mail", self.root / "home"):
            for dirpath, _, files in os.walk(top):
                os.chown(dirpath, uid, gid)
                for name in files:
                    os.chown(os.path.join(dirpath, name), uid, gid)

    def _write_conf(self) -> None:
        user, group, _, _ = _mail_owner()
        unprivileged = "" if os.geteuid() == 0 else (
            f"default_internal_user = {user}\ndefault_internal_group = {group}\ndefault_login_user = {user}\n"
            "service anvil {\n  chroot =\n}\nservice imap-login {\n  chroot =\n}\n"
            f"service auth-worker {{\n  user = {user}\n}}\n"
        )
        plugin = "\n".join(f"  {k} = {v}" for k, v in self.plugin.items())
        self.conf.write_text(f"""\
base_dir = {self.root}/run
state_dir = {self.root}/state
instance_name = ftsd-test-{self.port}
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
log_path = {self.log}
mail_location = maildir:{self.root}/mail/%u
mail_uid = {user}
mail_gid = {group}
{unprivileged}
passdb {{
  driver = passwd-file
  args = {self.root}/users
}}
userdb {{
  driver = passwd-file
  args = {self.root}/users
}}
namespace inbox {{
  inbox = yes
  separator = .
  mailbox Trash {{
    special_use = \\Trash
  }}
  mailbox Junk {{
    special_use = \\Junk
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {self.port}
  }}
}}
mail_plugins = $mail_plugins {self.mail_plugins}
plugin {{
{plugin}
}}
""")

    def start(self) -> None:
        """Start the master in the foreground of its own process group and wait for IMAP and for the userdb
        socket doveadm asks (under load it was refused just after IMAP listened)."""
        with open(self.root / "dovecot.stderr", "ab") as err:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(self.command("dovecot", "-F", "-c", str(self.conf)), start_new_session=True,
                                         stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_for_port(self.port, 20, "dovecot", self.log)
            wait_for_socket(self.root / "run" / "auth-userdb", 20, "dovecot auth", self.log)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM to the master (what `doveadm stop` sends, without its seconds of start-up and polling), then
        SIGKILL to the whole process group if anything is left. Idempotent."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the group (workers, login processes)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def doveadm(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.command("doveadm", "-c", str(self.conf), *args), capture_output=True, text=True,
                                timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"doveadm {' '.join(args)} failed ({result.returncode}): {result.stderr}\n"
                                 f"{self.log_tail()}")
        return result

    def doveadm_popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.command("doveadm", "-c", str(self.conf), *args), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)

    def mailbox_guid(self, user: str, mailbox: str = "INBOX") -> str:
        out = self.doveadm("mailbox", "status", "-u", user, "guid", mailbox).stdout
        return out.strip().partition("=")[2]

    def imap(self, user: str) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=300)
        conn.login(user, PASSWORD)
        return conn

    def uid_search(self, user: str, query: str, mailbox: str = "INBOX",
                   context: Callable[[], str] | None = None) -> list[int]:
        """IMAP `UID SEARCH query` in `mailbox` as `user`: the UIDs, ascending (a failure shows `context()`, by
        default the end of Dovecot's log)."""
        conn = self.imap(user)
        try:
            assert conn.select(mailbox)[0] == "OK", mailbox
            typ, data = conn.uid("SEARCH", query)
            assert typ == "OK", f"UID SEARCH {query}: {data}\n{(context or self.log_tail)()}"
            return sorted(int(x) for x in data[0].split())
        finally:
            conn.logout()

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no dovecot log)"


class FtsdServer:
    """ftsd's Solr routes under uvicorn, in a child process: `app` is "router" (a bare FastAPI app with
    solr_router) or "create_app" (the full ftsd API app). `token` is the config's server.token, if any: it goes into
    the URL Dovecot is given (Basic auth, as docs/dovecot.md says) and into this helper's own requests."""

    def __init__(self, config: Path, log: Path, app: str = "router", port: int | None = None,
                 token: str = "") -> None:
        self.config, self.log, self.app, self.token = config, log, app, token
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f"dovecot:{self.token}@" if self.token else ""
        return f"http://{auth}127.0.0.1:{self.port}/solr/dovecot/"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "tests.integration.ftsd_server", str(self.config), str(self.port), self.app]
        with open(self.log, "ab") as err:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
                                         stderr=err)
        try:
            wait_for_port(self.port, 30, "ftsd", self.log)
        except RuntimeError:
            self.kill()
            raise

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a crash. Idempotent."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def select(self, **params: str) -> str:
        """GET select with these parameters (wt=xml); the raw reply body."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            conn.request("GET", "/solr/dovecot/select?" + urlencode({"wt": "xml", **params}), headers=headers)
            reply = conn.getresponse()
            body = reply.read().decode()
            if reply.status != 200:
                raise AssertionError(f"select {params} -> {reply.status}: {body}")
            return body
        finally:
            conn.close()

    def count(self, user: str, guid: str) -> int:
        """How many documents of this mailbox the index holds (numFound of a match-all select)."""
        body = self.select(q="*:*", fq=f"+user:{user} +box:{guid}", rows="0", fl="uid")
        return int(body.split('numFound="', 1)[1].split('"', 1)[0])
