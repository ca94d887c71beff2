from pathlib import Path

import pytest

from ftsd.errors import ConfigError, UnknownUserError
from ftsd.settings import settings_from_dict
from ftsd.userdb import list_users, lookup_user, validate_user_name


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
