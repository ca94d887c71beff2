"""ftsd exceptions: the only exceptions module.

* FtsdError                                                  exit  HTTP
  + ConfigError          unknown key / bad value              78   500  (the server refuses to start)
  + UsageError           bad command-line use                  2   400
  + UnknownUserError     user not in the userdb / bad name    67   404
    - UnsafePathError    Maildir/index path reached through   67   404  (a user's symlink: refused)
                         a symlink of the user's
  + MailboxError         mailbox missing or unreadable        66   404
  + DecodeError          one part could not become text       65   500  (counted; the rest is indexed)
  + StoreError           anything Xapian raised, wrapped      74   500  (store/xerrors.py: the one table)
    - IndexLockedError   another writer holds the index       75   503  (retried with a bound)
    - NoIndexError       nothing indexed for this user yet    66   404  (a search reads the mail)
    - DiskFullError      no space: nothing since the last     75   503
                         commit kept; run again later
    - UnusableIndexError cannot be used as it is              75   503  (moved aside, rebuilt from the mail)
      - SchemaVersionError  written by an incompatible ftsd
        - OutdatedIndexError  by an older ftsd, with a layout this one no longer reads
      - CorruptIndexError   damaged files (truncated, overwritten)
  + QueryError           unparsable or unsupported SEARCH key  2   400
    - QueryCostError     over a cost limit of [limits]         2   400  (the message names it)
  + ClusterError         cluster mode: PostgreSQL unreachable 75   503  (run again later)
  + TooLargeError        a request (part) over a size limit   65   413  (the message names it)
  + SearchTimeoutError   past limits.search_time_s            75   503  (run again later)
  + BusyError            limits.searches_per_user running     75   429  (run again later)

Library errors carry no exit code or status: OUTCOMES below is the one table both front-ends read (the CLI's
exit code, sysexits(3) style; the HTTP status and error code), looked up along the class hierarchy, so a new
subclass answers like its parent until it gets a row of its own.
"""

from __future__ import annotations

from typing import NamedTuple


class FtsdError(Exception):
    """Base of every error ftsd raises on purpose."""


class ConfigError(FtsdError):
    """The configuration file is missing, malformed, or has an unknown key or bad value."""


class UsageError(FtsdError):
    """A command was called with arguments that do not make sense together."""


class UnknownUserError(FtsdError):
    """The user is not in the userdb, or the name is not a valid user name."""


class UnsafePathError(UnknownUserError):
    """A user's Maildir, INDEX= or xapian-indexes path is a symlink or resolves outside the user's tree."""


class MailboxError(FtsdError):
    """A mailbox does not exist, has an invalid name, or cannot be read."""


class DecodeError(FtsdError):
    """One message part could not be turned into text."""


class StoreError(FtsdError):
    """The Xapian index failed; the cause is kept in __cause__."""


class IndexLockedError(StoreError):
    """Another process holds the write lock of this user's index."""


class NoIndexError(StoreError):
    """Nothing has been indexed for this user yet (no index directory)."""


class DiskFullError(StoreError):
    """A write failed for lack of space (or quota): what was not committed is lost, the index is as it was."""


class UnusableIndexError(StoreError):
    """The index cannot be used as it is: it is moved aside and rebuilt from the mail."""


class SchemaVersionError(UnusableIndexError):
    """The index was written by an incompatible version of ftsd."""


class OutdatedIndexError(SchemaVersionError):
    """The index was written by an older ftsd, with a layout this one no longer reads: rebuilt, not kept."""


class CorruptIndexError(UnusableIndexError):
    """The index files are damaged (truncated, overwritten)."""


class QueryError(FtsdError):
    """An IMAP SEARCH key could not be parsed or is not supported."""


class ClusterError(FtsdError):
    """Cluster mode: the coordinator (PostgreSQL) cannot be reached or refused a statement."""


class QueryCostError(QueryError):
    """A query over one of the cost limits ([limits] query_*); the message names the setting."""


class TooLargeError(FtsdError):
    """A request body, or one part of it, is over a size limit; the message names the setting."""


class SearchTimeoutError(FtsdError):
    """A search ran longer than limits.search_time_s and was stopped."""


class BusyError(FtsdError):
    """The user already has limits.searches_per_user searches running; the message names the setting."""


class Outcome(NamedTuple):
    """How front-ends report an error class: CLI exit code, HTTP status, machine-readable error code."""

    exit: int
    status: int
    code: str


# sysexits(3): 64 EX_USAGE is not used, query and usage errors keep the documented 2 (as grep and doveadm's
# argument errors); 65 EX_DATAERR, 66 EX_NOINPUT, 67 EX_NOUSER, 74 EX_IOERR, 75 EX_TEMPFAIL (run again later),
# 78 EX_CONFIG. 1: anything else (and, from commands, "some messages or users failed").
OUTCOMES: dict[type[FtsdError], Outcome] = {
    QueryCostError: Outcome(2, 400, "query_too_costly"),
    QueryError: Outcome(2, 400, "bad_query"),
    TooLargeError: Outcome(65, 413, "body_too_large"),
    SearchTimeoutError: Outcome(75, 503, "search_timeout"),
    BusyError: Outcome(75, 429, "too_many_searches"),
    ClusterError: Outcome(75, 503, "coordinator_unavailable"),
    UsageError: Outcome(2, 400, "bad_request"),
    ConfigError: Outcome(78, 500, "config_error"),
    UnknownUserError: Outcome(67, 404, "unknown_user"),
    MailboxError: Outcome(66, 404, "unknown_mailbox"),
    IndexLockedError: Outcome(75, 503, "index_busy"),
    DiskFullError: Outcome(75, 503, "disk_full"),
    UnusableIndexError: Outcome(75, 503, "index_rebuilding"),
    NoIndexError: Outcome(66, 404, "no_index"),
    StoreError: Outcome(74, 500, "index_error"),
    DecodeError: Outcome(65, 500, "decode_error"),
    FtsdError: Outcome(1, 500, "error"),
}


def outcome_of(exc: FtsdError) -> Outcome:
    """The row of OUTCOMES for the most specific class of `exc` that has one."""
    for cls in type(exc).__mro__:
        if cls in OUTCOMES:
            return OUTCOMES[cls]
    return OUTCOMES[FtsdError]
