import os
from pathlib import Path

import pytest

from ftsd import service
from ftsd.errors import ConfigError, UnknownUserError
from ftsd.runtime import Runtime
from ftsd.settings import settings_from_dict
from ftsd.userdb import list_users, lookup_user, open_userdb, validate_user_name
from ftsd.userdb.passwd import PasswdFileUserdb


def test_static_users_are_matching_directories(tmp_path: Path):
    for d in ("example.org/alice", "example.org/bob", "other.net/carol"):
        (tmp_path / "vmail" / d).mkdir(parents=True)
    s = settings_from_dict({"mail_location": "maildir:vmail/%d/%n:INDEX=idx/%u"}, base_dir=tmp_path)
    assert list_users(s) == ["alice@example.org", "bob@example.org", "carol@other.net"]
    user = lookup_user(s, "bob@example.org")
    assert user.maildir == tmp_path / "vmail" / "example.org" / "bob"
    assert user.index_dir == tmp_path / "idx" / "bob@example.org" / "xapian-indexes"


def test_passwd_file_with_home(tmp_path: Path):
    (tmp_path / "passwd").write_text(
        "# comment\nalice@example.org:{PLAIN}x:1000:1000::/home/vmail/alice::\nbob:{PLAIN}y:::::\n")
    s = settings_from_dict({"mail_location": "maildir:~/Maildir", "userdb": {"driver": "passwd-file",
                                                                               "args": "passwd"}}, base_dir=tmp_path)
    assert list_users(s) == ["alice@example.org", "bob"]
    assert lookup_user(s, "alice@example.org").maildir == Path("/home/vmail/alice/Maildir")
    assert lookup_user(s, "alice@example.org").index_root == Path("/home/vmail/alice/Maildir")
    with pytest.raises(UnknownUserError, match="no home"):
        lookup_user(s, "bob")
    with pytest.raises(UnknownUserError, match="no such user"):
        lookup_user(s, "mallory")


@pytest.mark.parametrize("name", ["../bob", "a/b", "..", ".", "", "x\x00y", "-rf", "a@../x", "a@b/c", "..@x"])
def test_unsafe_names_rejected(name: str):
    with pytest.raises(UnknownUserError):
        validate_user_name(name)


def test_static_with_home_cannot_list(tmp_path: Path):
    s = settings_from_dict({"mail_location": "maildir:~/Maildir"}, base_dir=tmp_path)
    with pytest.raises(ConfigError):
        list_users(s)


def _passwd_settings(tmp_path: Path, text: str, **userdb: object):
    (tmp_path / "passwd").write_text(text)
    return settings_from_dict({"mail_location": "maildir:~/Maildir",
                               "userdb": {"driver": "passwd-file", "args": "passwd", **userdb}}, base_dir=tmp_path)


def test_passwd_file_read_once_and_reloaded_when_changed(tmp_path: Path):
    s = _passwd_settings(tmp_path, "".join(f"u{i}:x:1:1::/h/u{i}::\n" for i in range(100)))
    db = open_userdb(s)
    assert isinstance(db, PasswdFileUserdb)
    assert db.names() == sorted(f"u{i}" for i in range(100))
    for i in range(100):
        assert db.lookup(f"u{i}").maildir == Path(f"/h/u{i}/Maildir")
    assert db.loads == 1
    # edited in place (size changes) and atomically replaced (new inode): both seen at the next lookup
    (tmp_path / "passwd").write_text("u1:x:1:1::/elsewhere/u1::\nnew:x:1:1::/h/new::\n")
    assert db.lookup("u1").maildir == Path("/elsewhere/u1/Maildir")
    with pytest.raises(UnknownUserError):
        db.lookup("u2")
    (tmp_path / "passwd.tmp").write_text("u2:x:1:1::/h/u2::\n")
    os.replace(tmp_path / "passwd.tmp", tmp_path / "passwd")
    assert db.names() == ["u2"]
    assert db.lookup("u2").uid == 1
    assert db.loads == 3


def test_passwd_extra_fields_mail_and_home(tmp_path: Path):
    s = _passwd_settings(tmp_path, "a@x.org:{PLAIN}p:500:501::/h/a::userdb_mail=maildir:~/Mail:INDEX=/idx/%u "
                                   "userdb_home=/h/other\n")
    user = open_userdb(s).lookup("a@x.org")
    assert (user.maildir, user.index_root, user.uid, user.gid) == (Path("/h/other/Mail"), Path("/idx/a@x.org"),
                                                                   500, 501)


def test_passwd_file_missing_is_one_clear_error(tmp_path: Path):
    s = settings_from_dict({"userdb": {"driver": "passwd-file", "args": "nope"}}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="passwd-file .*nope: No such file"):
        open_userdb(s).names()


def test_index_all_looks_each_user_up_once(tmp_path: Path):
    """-A: the listing and one lookup per user, the file parsed once for the whole run."""
    text = "".join(f"u{i}:x:::::\n" for i in range(5))
    s = settings_from_dict({"mail_location": f"maildir:{tmp_path}/mail/%u",
                            "userdb": {"driver": "passwd-file", "args": "passwd"}}, base_dir=tmp_path)
    (tmp_path / "passwd").write_text(text)
    for i in range(5):
        for sub in ("cur", "new", "tmp"):
            (tmp_path / "mail" / f"u{i}" / sub).mkdir(parents=True)
    rt = Runtime(s)
    db = rt.userdb
    assert isinstance(db, PasswdFileUserdb)
    report = service.index_users(s, all_users=True, runtime=rt)
    assert report.users == 5 and not report.failed
    assert (db.loads, db.lookups) == (1, 5)


def test_remote_cache_is_bounded_and_expires(tmp_path: Path):
    """The cache in front of a remote userdb (static here: no I/O) keeps at most cache_users and honours the ttl."""
    s = settings_from_dict({"mail_location": "maildir:/m/%u", "userdb": {"cache_users": 3, "cache_ttl_s": 0}},
                           base_dir=tmp_path)
    db = open_userdb(s)
    for name in ("a", "b", "c", "d", "a"):
        db.lookup(name)
    assert db.lookups == 5  # ttl 0: every lookup asks the driver
    s = settings_from_dict({"mail_location": "maildir:/m/%u", "userdb": {"cache_users": 3}}, base_dir=tmp_path)
    db = open_userdb(s)
    for name in ("a", "b", "c", "d", "a", "d"):
        db.lookup(name)
    assert db.lookups == 5  # "a" was dropped when "d" came in, "d" was still kept


def test_one_off_passwd_lookup_matches_the_kept_userdb(tmp_path: Path):
    s = _passwd_settings(tmp_path, "xbob:x:1:1::/h/xbob::\nbob:x:2:2::/h/old::\n# bob:x:9:9::/h/comment::\n"
                                   "bob:x:3:3::/h/bob::userdb_mail=maildir:~/M\r\nalice:x:4:4::/h/alice::")
    kept = open_userdb(s)
    for name in ("bob", "xbob", "alice"):
        assert lookup_user(s, name) == kept.lookup(name)
    assert lookup_user(s, "bob").maildir == Path("/h/bob/M") and lookup_user(s, "bob").uid == 3
    for name in ("ob", "nobody", "bob:x"):
        with pytest.raises(UnknownUserError):
            lookup_user(s, name)
