"""Session servers for the userdb tests: one slapd with LDAP_USERS (+ one the iterate filter leaves out) and one
Dovecot auth with a passwd-file userdb and an LDAP userdb over that slapd."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.userdb.servers import DovecotAuth, Slapd, ldap_conf, missing_dovecot_ldap, missing_slapd, posix_entry

LDAP_USERS = [f"l{i:02d}" for i in range(1, 46)]  # more than slapd's per-search size limit: the driver must page
HIDDEN = "ldisabled"  # found by user_filter, left out by iterate_filter
PASSWD_USERS = ["p1@example.org", "p2@example.org"]


@dataclass
class Directory:
    slapd: Slapd
    conf_ext: Path  # dovecot-ldap.conf.ext, used by Dovecot and by ftsd's ldap driver
    homes: Path
    passwd: Path


@pytest.fixture(scope="session")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Directory]:
    if why := missing_slapd():
        pytest.fail(why)
    root = tmp_path_factory.mktemp("slapd")
    homes = tmp_path_factory.mktemp("homes")
    slapd = Slapd(root)
    slapd.load([posix_entry(u, f"{homes}/{u}", uid_number=2000 + i) for i, u in enumerate(LDAP_USERS)]
               + [posix_entry(HIDDEN, f"{homes}/{HIDDEN}", description="disabled")])
    passwd = root / "users"
    passwd.write_text("".join(f"{u}:{{PLAIN}}x:3000:3000::{homes}/{u}::\n" for u in PASSWD_USERS)
                      + f"p3@example.org:{{PLAIN}}x:3000:3000::{homes}/p3::userdb_mail=maildir:~/Mail\n")
    slapd.start()
    try:
        yield Directory(slapd, ldap_conf(slapd, root / "dovecot-ldap.conf.ext"), homes, passwd)
    finally:
        slapd.stop()


@pytest.fixture(scope="session")
def dovecot_auth(directory: Directory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DovecotAuth]:
    if why := missing_dovecot_ldap():
        pytest.fail(why)
    auth = DovecotAuth(tmp_path_factory.mktemp("dovecot-auth"), directory.passwd, directory.conf_ext)
    auth.start()
    try:
        yield auth
    finally:
        auth.stop()
