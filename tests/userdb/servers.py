"""A private OpenLDAP slapd and a private Dovecot auth (LDAP + passwd-file userdbs) for the userdb tests.

`Slapd` writes a slapd.conf with a test suffix into its own directory, loads the entries offline with slapadd
and runs slapd in the foreground on a free loopback port, in its own process group. Its per-search size limit is
small on purpose: listing more users than that proves the driver pages. `DovecotAuth` runs a Dovecot master
without any mail protocol: only the auth process, whose auth-userdb socket `doveadm user` and ftsd's `dovecot`
driver both use. Both `stop()` idempotently and kill their whole process group.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from tests.integration.dovecot import free_port, wait_for_port

SUFFIX = "dc=ftsd,dc=test"
ADMIN_DN = f"cn=admin,{SUFFIX}"
READER_DN = f"cn=reader,{SUFFIX}"
READER_PASSWORD = "reader-secret"
LIMITED_DN = f"cn=limited,{SUFFIX}"  # same password; held to SIZE_LIMIT entries per search, paged or not
SIZE_LIMIT = 20  # entries per plain search; paged searches are unlimited
SCHEMAS = ("core", "cosine", "nis", "inetorgperson")


def missing_slapd() -> str | None:
    if not (shutil.which("slapd") or Path("/usr/sbin/slapd").exists()) or not Path("/usr/lib/ldap").is_dir():
        return "OpenLDAP is not installed: apt-get install -y slapd ldap-utils (scripts/setup does)"
    return None


def missing_dovecot_ldap() -> str | None:
    if shutil.which("dovecot") is None or shutil.which("doveadm") is None:
        return "dovecot is not installed: apt-get install -y dovecot-core (scripts/setup does)"
    if not Path("/usr/lib/dovecot/modules/auth/libauthdb_ldap.so").exists():
        return "Dovecot's LDAP support is missing: apt-get install -y dovecot-ldap (scripts/setup does)"
    return None


def posix_entry(uid: str, home: str, *, uid_number: int = 1000, description: str = "mail") -> str:
    """A posixAccount under ou=people; the iterate filter of the tests selects description=mail."""
    return (f"dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: account\nobjectClass: posixAccount\nuid: {uid}\n"
            f"cn: {uid}\nuidNumber: {uid_number}\ngidNumber: {uid_number}\nhomeDirectory: {home}\n"
            f"description: {description}\n")


class Slapd:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.uri = f"ldap://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        (root / "db").mkdir(parents=True, exist_ok=True)
        self.conf = root / "slapd.conf"
        includes = "".join(f"include /etc/ldap/schema/{s}.schema\n" for s in SCHEMAS)
        self.conf.write_text(f"""{includes}
pidfile {root}/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 104857600
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw admin-secret
directory {root}/db
index objectClass,uid eq
# Dovecot 2.3 does not page its LDAP iteration: its reader may have every entry in one search; the limited
# reader gets SIZE_LIMIT per search, so listing more users than that proves that ftsd pages
limits dn.exact="{READER_DN}" size=unlimited
limits dn.exact="{LIMITED_DN}" size.soft={SIZE_LIMIT} size.hard={SIZE_LIMIT} size.prtotal=unlimited
access to attrs=userPassword by anonymous auth by * none
access to * by dn.exact="{READER_DN}" read by dn.exact="{LIMITED_DN}" read by * none
""")

    def load(self, entries: Iterable[str]) -> None:
        """Add entries offline (before start)."""
        base = (f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: ftsd\no: ftsd test\n\n"
                f"dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n"
                f"dn: {READER_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\n"
                f"userPassword: {READER_PASSWORD}\n\n"
                f"dn: {LIMITED_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: limited\n"
                f"userPassword: {READER_PASSWORD}\n")
        ldif = self.root / "data.ldif"
        ldif.write_text("\n".join([base, *entries]) + "\n")
        result = subprocess.run(["slapadd", "-q", "-f", str(self.conf), "-l", str(ldif)], capture_output=True,
                                text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"slapadd failed: {result.stderr}")

    def start(self) -> None:
        log = self.root / "slapd.log"
        with open(log, "ab") as err:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(["slapd", "-f", str(self.conf), "-h", f"{self.uri}/", "-d", "0"],
                                         start_new_session=True, stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_for_port(self.port, 20, "slapd", log)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def ldap_conf(slapd: Slapd, path: Path, *, password_inline: bool = True, **overrides: str) -> Path:
    """A dovecot-ldap.conf.ext for the test directory, read by Dovecot and by ftsd alike."""
    settings = {
        "uris": slapd.uri, "dn": READER_DN, "base": f"ou=people,{SUFFIX}", "scope": "subtree",
        "user_attrs": "homeDirectory=home,uidNumber=uid,gidNumber=gid",
        "user_filter": "(&(objectClass=posixAccount)(uid=%u))",
        "iterate_attrs": "uid=user",
        "iterate_filter": "(&(objectClass=posixAccount)(description=mail))",
        **({"dnpass": READER_PASSWORD} if password_inline else {}),
        **overrides,
    }
    path.write_text("# written by the ftsd userdb tests\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
    return path


class DovecotAuth:
    """A Dovecot master with no mail protocol: passdb + userdbs (a passwd-file, then LDAP) and their sockets."""

    def __init__(self, root: Path, passwd_file: Path, ldap_conf_ext: Path | None) -> None:
        self.root = root
        self.conf = root / "dovecot.conf"
        self.log = root / "dovecot.log"
        self.proc: subprocess.Popen[bytes] | None = None
        (root / "run").mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)
        me = pwd.getpwuid(os.geteuid()).pw_name  # the files live in pytest's private temp dir
        ldap_userdb = f"userdb {{\n  driver = ldap\n  args = {ldap_conf_ext}\n}}\n" if ldap_conf_ext else ""
        self.conf.write_text(f"""\
base_dir = {root}/run
state_dir = {root}/run
instance_name = ftsd-userdb-test-{free_port()}
protocols =
log_path = {self.log}
service auth {{
  user = {me}
}}
service auth-worker {{
  user = {me}
}}
passdb {{
  driver = passwd-file
  args = {passwd_file}
}}
userdb {{
  driver = passwd-file
  args = {passwd_file}
}}
{ldap_userdb}""")

    @property
    def socket(self) -> Path:
        return self.root / "run" / "auth-userdb"

    def start(self) -> None:
        with open(self.root / "dovecot.stderr", "ab") as err:
            self.proc = subprocess.Popen(["dovecot", "-F", "-c", str(self.conf)], start_new_session=True,
                                         stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 20
        while not self.socket.exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"dovecot auth did not start\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            subprocess.run(["doveadm", "-c", str(self.conf), "stop"], capture_output=True, timeout=30, check=False)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def doveadm_users(self) -> list[str]:
        """`doveadm user '*'`: every user the userdbs' iterate settings list (what doveadm -A works on)."""
        result = subprocess.run(["doveadm", "-c", str(self.conf), "user", "*"], capture_output=True, text=True,
                                timeout=60, check=False)
        if result.returncode != 0:
            raise AssertionError(f"doveadm user '*' failed: {result.stderr}\n{self.log_tail()}")
        return sorted(line for line in result.stdout.splitlines() if line)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"
