"""The ldap and dovecot userdb drivers against a real slapd and a real Dovecot auth (tests/userdb/conftest.py)."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ftsd.errors import ConfigError, UnknownUserError
from ftsd.settings import load_settings, settings_from_dict
from ftsd.userdb import open_userdb
from tests.userdb.conftest import HIDDEN, LDAP_USERS, PASSWD_USERS, Directory
from tests.userdb.servers import LIMITED_DN, READER_PASSWORD, SIZE_LIMIT, DovecotAuth, ldap_conf


def _ldap(directory: Directory, conf: Path | None = None, **userdb: object):
    return settings_from_dict({"mail_location": "maildir:~/Maildir", "userdb": {
        "driver": "ldap", "args": str(conf or directory.conf_ext), **userdb}})


def _dovecot(auth: DovecotAuth, mail_location: str = "maildir:~/Maildir"):
    return settings_from_dict({"mail_location": mail_location,
                               "userdb": {"driver": "dovecot", "args": str(auth.socket)}})


def test_ldap_lists_what_the_iterate_filter_selects(directory: Directory, tmp_path: Path):
    """More users than slapd returns per plain search to this DN: all of them come back (paged), the hidden one
    not."""
    conf = ldap_conf(directory.slapd, tmp_path / "limited.conf.ext", dn=LIMITED_DN)
    with open_userdb(_ldap(directory, conf)) as db:
        assert len(LDAP_USERS) > SIZE_LIMIT and db.names() == sorted(LDAP_USERS)
        before = db.lookups
        for name in LDAP_USERS:  # -A: the fields came with the listing, no search per user
            assert db.lookup(name).maildir == directory.homes / name / "Maildir"
        assert db.lookups == before


def test_ldap_lookup_maps_dovecot_fields(directory: Directory):
    with open_userdb(_ldap(directory)) as db:
        user = db.lookup("l03")
        assert (user.maildir, user.uid, user.gid) == (directory.homes / "l03" / "Maildir", 2002, 2002)
        assert db.lookup(HIDDEN).maildir == directory.homes / HIDDEN / "Maildir"  # user_filter finds it
        for name in ("nobody-here", "l0*", "l01)(uid=*"):  # filter characters are escaped, never a wildcard
            with pytest.raises(UnknownUserError, match="no such user"):
                db.lookup(name)


def test_ldap_template_attrs_and_password_file(directory: Directory, tmp_path: Path):
    conf = ldap_conf(directory.slapd, tmp_path / "ldap.conf.ext", password_inline=False,
                     user_attrs="homeDirectory=home,=mail=maildir:%{ldap:homeDirectory}/Mail:INDEX=/idx/%u",
                     iterate_attrs="=user=%{ldap:uid}")
    (tmp_path / "pw").write_text(READER_PASSWORD + "\n")
    with open_userdb(_ldap(directory, conf, password_file=str(tmp_path / "pw"))) as db:
        assert db.names() == sorted(LDAP_USERS)
        user = db.lookup("l07")
        assert (user.maildir, user.index_root) == (directory.homes / "l07" / "Mail", Path("/idx/l07"))


def test_ldap_uid_and_gid_given_as_names(directory: Directory, tmp_path: Path):
    """`=uid=nobody` (a template) or an attribute holding a name, as Dovecot takes them: resolved with the system's
    passwd/group; a name the system does not know is one line naming the user and the field (the listing goes on)."""
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    conf = ldap_conf(directory.slapd, tmp_path / "names.conf.ext",
                     user_attrs=f"homeDirectory=home,=uid=nobody,=gid={group}")
    with open_userdb(_ldap(directory, conf)) as db:
        assert len(db.names()) == len(LDAP_USERS)
        user = db.lookup("l04")
        assert (user.uid, user.gid) == (nobody.pw_uid, nobody.pw_gid)
    conf = ldap_conf(directory.slapd, tmp_path / "unknown.conf.ext",
                     user_attrs="homeDirectory=home,=uid=nosuch-ftsd-user,gidNumber=gid")
    with open_userdb(_ldap(directory, conf)) as db:
        assert len(db.names()) == len(LDAP_USERS)  # -A still lists every user
        with pytest.raises(ConfigError, match=r"^l04: userdb field uid='nosuch-ftsd-user' is no system user "
                                              r"\(`getent passwd nosuch-ftsd-user` finds nothing\)"):
            db.lookup("l04")


def test_ldap_errors_are_one_line(directory: Directory, tmp_path: Path):
    wrong = ldap_conf(directory.slapd, tmp_path / "wrong.conf.ext", dnpass="not-the-password")
    with pytest.raises(ConfigError, match=r"bind as cn=reader,dc=ftsd,dc=test: Invalid credentials"):
        open_userdb(_ldap(directory, wrong)).names()
    typo = ldap_conf(directory.slapd, tmp_path / "typo.conf.ext", user_filtre="(uid=%u)")
    with pytest.raises(ConfigError, match="line .*unknown setting 'user_filtre'"):
        open_userdb(_ldap(directory, typo))
    down = ldap_conf(directory.slapd, tmp_path / "down.conf.ext", uris="ldap://127.0.0.1:9")
    with pytest.raises(ConfigError, match="ldap://127.0.0.1:9.*Can't contact LDAP server"):
        open_userdb(_ldap(directory, down, timeout_s=2)).names()


def test_dovecot_lists_the_same_users_as_doveadm(directory: Directory, dovecot_auth: DovecotAuth):
    expected = sorted([*LDAP_USERS, *PASSWD_USERS, "p3@example.org"])
    assert dovecot_auth.doveadm_users() == expected
    with open_userdb(_dovecot(dovecot_auth)) as db:
        assert db.names() == expected
    with open_userdb(_ldap(directory)) as db:  # the ldap driver, on Dovecot's own file: Dovecot's LDAP part
        assert db.names() == [u for u in expected if u in LDAP_USERS]


def test_dovecot_lookup_fields(directory: Directory, dovecot_auth: DovecotAuth):
    with open_userdb(_dovecot(dovecot_auth)) as db:
        p1 = db.lookup("p1@example.org")
        assert (p1.maildir, p1.uid) == (directory.homes / "p1@example.org" / "Maildir", 3000)
        assert db.lookup("p3@example.org").maildir == directory.homes / "p3" / "Mail"  # userdb_mail wins
        l05 = db.lookup("l05")  # from the LDAP userdb behind Dovecot
        assert (l05.maildir, l05.uid, l05.gid) == (directory.homes / "l05" / "Maildir", 2004, 2004)
        assert db.lookup(HIDDEN).maildir == directory.homes / HIDDEN / "Maildir"
        with pytest.raises(UnknownUserError, match="no such user in Dovecot's userdb"):
            db.lookup("nobody@example.org")
        db.close()  # the next request reconnects
        assert db.lookup("p2@example.org").uid == 3000


def test_dovecot_not_running_is_one_clear_error(tmp_path: Path):
    s = settings_from_dict({"userdb": {"driver": "dovecot", "args": str(tmp_path / "auth-userdb")}})
    with pytest.raises(ConfigError, match="auth-userdb: No such file.*is Dovecot running"):
        open_userdb(s).names()


@pytest.mark.slow
def test_cli_index_all_through_dovecot(directory: Directory, dovecot_auth: DovecotAuth, tmp_path: Path):
    """`ftsd index -A` with driver = dovecot indexes exactly the users doveadm lists (an empty Maildir each)."""
    users = dovecot_auth.doveadm_users()
    for name in users:
        home = directory.homes / ("p3" if name == "p3@example.org" else name)
        for sub in ("cur", "new", "tmp"):
            (home / ("Mail" if name == "p3@example.org" else "Maildir") / sub).mkdir(parents=True, exist_ok=True)
    config = tmp_path / "ftsd.toml"
    config.write_text(f'mail_location = "maildir:~/Maildir:INDEX={tmp_path}/idx/%u"\n'
                      f'[userdb]\ndriver = "dovecot"\nargs = "{dovecot_auth.socket}"\n[fts]\nworkers = 1\n')
    env = {**os.environ, "FTSD_CONFIG": str(config)}
    with _as_the_mail_owners(config, users, tmp_path, directory.homes):
        result = subprocess.run([sys.executable, "-m", "ftsd", "index", "-A"], capture_output=True, text=True,
                                env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    # p3's own mail field (no INDEX=) replaces mail_location: its index is in its Maildir, as Dovecot's would be
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [u for u in users if u != "p3@example.org"]
    assert (directory.homes / "p3" / "Mail" / "xapian-indexes").is_dir()


@contextmanager
def _as_the_mail_owners(config: Path, users: list[str], tmp_path: Path, homes: Path) -> Iterator[None]:
    """As root, ftsd works as each user's userdb uid/gid (like doveadm): give every Maildir to its owner, and let
    those uids through pytest's private (0700) directories while the command runs."""
    if os.geteuid() != 0:
        yield
        return
    (tmp_path / "idx").mkdir(mode=0o711)
    with open_userdb(load_settings(config)) as db:
        for name in users:
            user = db.lookup(name)
            assert user.uid is not None and user.gid is not None, name
            for dirpath, _, files in os.walk(user.maildir.parent):
                for entry in [dirpath, *(os.path.join(dirpath, f) for f in files)]:
                    os.chown(entry, user.uid, user.gid)
    opened = {p: p.stat().st_mode for top in (tmp_path, homes) for p in [top, *top.parents]
              if str(p).startswith("/tmp/")}
    try:
        for path, mode in opened.items():
            path.chmod(mode | 0o011)
        yield
    finally:
        for path, mode in opened.items():
            path.chmod(mode)
