"""Users and where their mail and index live: the userdb drivers and mail_location expansion.

A `Userdb` is opened once per process (`open_userdb`) and kept: it answers `names()` (for `-A`) and
`lookup(name)` from what it has read, so a run over 10,000 users reads the passwd-file once and asks LDAP or
Dovecot once per user at most. Drivers, named like Dovecot's:

* `static`: the users are the directories that match the mail_location template (no I/O for a lookup);
* `passwd-file`: Dovecot's `user:password:uid:gid:gecos:home:shell:extra` file, parsed again only when its
  mtime, size or inode changes;
* `dovecot`: the running Dovecot's auth-userdb socket (`USER`/`LIST`, what `doveadm user` uses), so every userdb
  Dovecot has (LDAP, SQL, passwd-file, static) with its own iterate_filter, home and mail fields;
* `ldap`: a directory read with Dovecot's dovecot-ldap.conf.ext vocabulary, for machines without Dovecot.

mail_location is Dovecot's: `maildir:<path>[:INDEX=<path>]` with %u (user), %n (local part), %d (domain) and
`~` (the home from the userdb); a userdb `mail` field replaces it for that user, as in Dovecot.
Every user name is validated before it is put into a path: a name can never reach another user's files.
"""

from __future__ import annotations

from ftsd.settings import Settings
from ftsd.userdb.base import (
    MailLocation,
    User,
    Userdb,
    UserRecord,
    resolve_id,
    user_from_record,
    validate_user_name,
)

__all__ = ["MailLocation", "User", "UserRecord", "Userdb", "list_users", "lookup_user", "open_userdb",
           "resolve_id", "user_from_record", "validate_user_name"]


def open_userdb(settings: Settings) -> Userdb:
    """The userdb of these settings (nothing is read yet: the first names() or lookup() reads)."""
    driver = settings.userdb.driver
    if driver == "passwd-file":
        from ftsd.userdb.passwd import PasswdFileUserdb
        return PasswdFileUserdb(settings)
    if driver == "dovecot":
        from ftsd.userdb.dovecot import DovecotUserdb
        return DovecotUserdb(settings)
    if driver == "ldap":
        from ftsd.userdb.ldap import LdapUserdb
        return LdapUserdb(settings)
    from ftsd.userdb.static import StaticUserdb
    return StaticUserdb(settings)


def list_users(settings: Settings) -> list[str]:
    """Every user the userdb knows (for -A), sorted: a one-off userdb, for callers that keep none.
    Raises: ConfigError."""
    with open_userdb(settings) as db:
        return db.names()


def lookup_user(settings: Settings, name: str) -> User:
    """One user through a one-off userdb (a long-lived caller keeps a Userdb instead).
    Raises: UnknownUserError, ConfigError."""
    if settings.userdb.driver == "passwd-file":
        from ftsd.userdb.passwd import PasswdFileUserdb
        return PasswdFileUserdb(settings).lookup_once(name)
    with open_userdb(settings) as db:
        return db.lookup(name)
