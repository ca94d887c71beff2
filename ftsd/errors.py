"""ftsd exceptions: the only exceptions module.

* FtsdError
  + ConfigError          unknown key / bad value            -> CLI exit 78, server refuses to start
  + UsageError           bad command-line use               -> CLI exit 2
  + UnknownUserError     user not in the userdb / bad name  -> HTTP 404
  + MailboxError         mailbox missing or unreadable      -> HTTP 404
  + DecodeError          one part could not become text     (counted, the rest of the message is indexed)
  + StoreError           anything Xapian raised, wrapped
    - IndexLockedError   another writer holds this user's index   -> HTTP 503, retried with a bound
    - SchemaVersionError index written by an incompatible ftsd     -> moved aside, rebuilt from the mail
      . OutdatedIndexError  written by an older ftsd                -> rebuilt from the mail, not kept
  + QueryError           unparsable or unsupported SEARCH key      -> HTTP 400, CLI exit 2
  + ClusterError         cluster mode: PostgreSQL unreachable      -> HTTP 503, CLI exit 1

Front-ends map these in one table each (cli.py, api/errors.py); library errors carry no exit code or status.
"""

from __future__ import annotations


class FtsdError(Exception):
    """Base of every error ftsd raises on purpose."""


class ConfigError(FtsdError):
    """The configuration file is missing, malformed, or has an unknown key or bad value."""


class UsageError(FtsdError):
    """A command was called with arguments that do not make sense together."""


class UnknownUserError(FtsdError):
    """The user is not in the userdb, or the name is not a valid user name."""


class MailboxError(FtsdError):
    """A mailbox does not exist, has an invalid name, or cannot be read."""


class DecodeError(FtsdError):
    """One message part could not be turned into text."""


class StoreError(FtsdError):
    """The Xapian index failed; the cause is kept in __cause__."""


class IndexLockedError(StoreError):
    """Another process holds the write lock of this user's index."""


class SchemaVersionError(StoreError):
    """The index was written by an incompatible version of ftsd."""


class OutdatedIndexError(SchemaVersionError):
    """The index was written by an older ftsd, with a layout this one no longer reads: rebuilt, not kept."""


class QueryError(FtsdError):
    """An IMAP SEARCH key could not be parsed or is not supported."""


class ClusterError(FtsdError):
    """Cluster mode: the coordinator (PostgreSQL) cannot be reached or refused a statement."""
