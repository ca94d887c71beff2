"""Configuration: one TOML file -> one frozen, typed Settings object, loaded once and passed down.

Names follow Dovecot (mail_location, userdb, fts_autoindex_exclude, unix_listener mode/user/group).
The file is `-c PATH`, else `$FTSD_CONFIG`, else /etc/ftsd/ftsd.toml. Unknown keys and values of the wrong
type raise ConfigError naming the file and the key: a typo must never silently fall back to a default.
Relative paths inside the file are taken relative to the file's own directory.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from ftsd.errors import ConfigError

DEFAULT_CONFIG = Path("/etc/ftsd/ftsd.toml")

T = TypeVar("T")


def setting(default: T, doc: str) -> T:
    """A dataclass field with its documentation (shown by `ftsd config --all` and docs/settings.md)."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass(frozen=True, slots=True, kw_only=True)
class UserdbSettings:
    driver: str = setting("static", "static: users are the directories matching mail_location; passwd-file: "
                          "Dovecot's format; dovecot: ask the running Dovecot (recommended when it runs on this "
                          "machine); ldap: a directory, with Dovecot's dovecot-ldap.conf.ext")
    args: str = setting("", "passwd-file: the file; dovecot: the auth-userdb socket (default "
                        "/run/dovecot/auth-userdb); ldap: the dovecot-ldap.conf.ext file")
    service: str = setting("doveadm", "dovecot: the service name sent with lookups (%s in Dovecot's userdb "
                           "queries); doveadm's, so ftsd sees what `doveadm user` sees")
    password_file: str = setting("", "ldap: a file holding the bind password (overrides dnpass, so the "
                                 "config can stay world-readable)")
    timeout_s: float = setting(10.0, "dovecot, ldap: time limit of one request")
    cache_ttl_s: float = setting(300.0, "How long a looked-up user is kept (passwd-file: until the file changes)")
    cache_users: int = setting(100_000, "Users kept in memory at most (least recently used dropped first)")


@dataclass(frozen=True, slots=True, kw_only=True)
class FtsSettings:
    partial: int = setting(3, "Strings this long or longer are looked up in the word list (substrings of "
                           "stored words); shorter ones through stored 1..partial-1 character grams "
                           "(fts-xapian: partial)")
    full: int = setting(20, "Kept for fts-xapian compatibility: strings up to max(full, 40) characters are "
                        "settled by the index alone, longer ones are also checked against the message")
    max_word_chars: int = setting(64, "Words longer than this (base64, hex garbage) are not indexed "
                                  "(Dovecot skips 50+)")
    header_excludes: list[str] = setting(
        [], "Headers left out of the index and of TEXT, like Dovecot's fts_header_excludes (trailing * allowed): "
            "e.g. [\"Received\", \"DKIM-*\"] shrinks the index; HEADER keys on them still answer, from the Maildir"
    )
    header_includes: list[str] = setting(
        [], "Headers indexed even when header_excludes matches them (fts_header_includes)"
    )
    writer: str = setting("ftsd", "Who writes the indexes: ftsd (its Maildir watcher, jobs, cron and autoindex) or "
                          "dovecot (Dovecot's fts_solr is the only writer: no watcher, no own indexing, autoindex "
                          "off; ftsd index/rescan refuse, optimize still compacts)")
    autoindex: bool = setting(True, "Bring a mailbox up to date before answering a search on it (fts_autoindex)")
    autoindex_exclude: list[str] = setting(
        ["\\Trash", "\\Junk"], "Special-use flags or mailbox names left out of bulk and automatic indexing"
    )
    autoindex_timeout_s: float = setting(5.0, "Time budget for autoindex before a search answers (fts_index_timeout)")
    commit_limit: int = setting(
        100, "Commit after this many documents (flatcurve: commit_limit). Xapian's cost per added document grows with "
        "the terms buffered since the last commit, and each commit has a fixed cost: 50-100 measured cheapest on "
        "both benchmark corpora, 25 and 200 up to 10-20% more writer CPU, 500 20% more CPU and twice the RAM; a "
        "term-count limit did no better (bench/writer_cadence.py)"
    )
    batch_bytes: int = setting(32_000_000, "Also commit after this many bytes of mail, so memory stays bounded")
    workers: int = setting(0, "Indexer worker processes; 0 = number of CPU cores")
    users_parallel: int = setting(4, "Users indexed (and optimized) at once by -A runs, one writer each, all fed by "
                                  "the same worker processes: their per-user disk waits overlap; 1 = one by one")
    worker_nice: int = setting(10, "Niceness of the indexer worker processes (0-19), so that searches keep the CPU "
                               "while a bulk index runs")
    worker_memory_mb: int = setting(1024, "Memory (MiB) each indexer worker process may take on top of what it "
                                     "starts with (RLIMIT_DATA): a message that needs more is indexed from its "
                                     "head as raw text instead, the run goes on; 0 = no limit")
    max_message_bytes: int = setting(100_000_000, "Messages larger than this get only their headers indexed")
    max_text_chars: int = setting(2_000_000, "Text kept per message after decoding (body and attachments together)")
    follow_folder_symlinks: bool = setting(
        False, "Follow Maildir++ folders (and their cur/, new/) that are symlinks, when they resolve inside the "
        "user's home (else the Maildir root); off: one log line, and the folder is left out. Message files are "
        "never read through a symlink"
    )
    lock_timeout_s: float = setting(30.0, "How long to wait for another writer of the same index")
    verify_cache_mb: int = setting(64, "Decoded text of recently checked messages kept in memory (about MB): "
                                   "phrases and other keys the index cannot settle alone are checked against "
                                   "it; 0 disables")
    store_texts: bool = setting(False, "Keep each message's normalised texts in its document (LZ4): "
                                "phrases and other keys the index cannot settle alone are checked against them "
                                "instead of the message file (a check ~50x cheaper; the index ~0.35-0.5x the mail "
                                "larger). Mail indexed before it was turned on is checked against its file until "
                                "reindexed")


@dataclass(frozen=True, slots=True, kw_only=True)
class DecoderSettings:
    attachments: bool = setting(True, "Extract text from attachments (PDF, office documents, ...)")
    max_part_bytes: int = setting(20_000_000, "Attachments larger than this are skipped")
    timeout_s: float = setting(20.0, "Time limit per attachment decoder run")
    memory_mb: int = setting(512, "Address-space limit of a decoder process")
    command: str = setting("", "External decoder (fts_decoder-like): gets the content type as last argument, "
                           "bytes on stdin, prints text")
    command_types: list[str] = setting([], "MIME types (or *.ext) handed to the external decoder")
    sandbox: str = setting("", "Unix socket of a decoder sandbox run apart (`python -m ftsd.decoders.sandbox "
                           "--listen PATH`, as the mail user); empty: each ftsd process tree starts its own on first "
                           "use, on a socket in a private 0700 directory")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    listen: str = setting("127.0.0.1:8984", "TCP address of the HTTP API; empty disables TCP")
    socket: str = setting("/run/ftsd/ftsd.sock", "Unix socket of the HTTP API; empty disables it")
    socket_mode: str = setting("0660", "Permissions of the Unix socket (unix_listener mode)")
    socket_user: str = setting("", "Owner of the Unix socket (unix_listener user)")
    socket_group: str = setting("", "Group of the Unix socket (unix_listener group)")
    auth: bool = setting(True, "Require a token on TCP (bearer, or the password of HTTP Basic auth); false turns "
                         "authentication off, only for loopback listeners. The Unix socket is guarded by its mode")
    token: str = setting("", "The token itself; empty: read it from token_file")
    token_file: str = setting("", "File holding the token (one line); empty: <state_dir>/token. Created with a "
                              "random token, mode 0640, at the first start when missing")
    metrics_auth: bool = setting(True, "/metrics needs the token too; false opens it to any TCP client (a "
                                 "Prometheus scraper without credentials). /healthz is always open")
    max_body_bytes: int = setting(64_000_000, "Largest request body accepted (Solr updates: see limits.update_*)")
    timeout_keep_alive_s: float = setting(5.0, "An idle keep-alive connection is closed after this long")
    timeout_header_s: float = setting(10.0, "A connection that has not sent a complete request head within this "
                                      "long is closed (slow or half-open clients)")
    max_connections: int = setting(512, "Connections served at once; more are answered 503 at once and closed "
                                   "(keep it under the open-file limit, LimitNOFILE)")
    max_header_bytes: int = setting(65_536, "Largest request head (request line and headers)")
    backlog: int = setting(128, "Listen backlog of the sockets (also how many connections are accepted at once)")
    state_dir: str = setting("/var/lib/ftsd", "Where the job queue lives")
    job_threads: int = setting(2, "Jobs run at once (never two of one user: one writer per index)")
    job_time_slice_s: float = setting(60.0, "A job that has run this long while another user waits goes back "
                                      "in the queue at its next mailbox")
    users_rescan_s: float = setting(60.0, "How often the Maildir watcher looks for new users (0 = only at start)")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSettings:
    dsn: str = setting("", "PostgreSQL connection string (libpq: \"host=db1 dbname=ftsd user=ftsd\"); empty = "
                       "single-node mode (SQLite queue, no PostgreSQL). Needs the extra ftsd[cluster]")
    node_name: str = setting("", "Name of this node in `ftsd cluster status` (the pid is appended); "
                             "empty = the host name")
    heartbeat_s: float = setting(2.0, "How often a node refreshes its row and checks its lease session")
    lease_grace_s: float = setting(30.0, "After PostgreSQL (re)starts, no writer lease is granted for this long, "
                                   "so that holders of the old session notice the loss and stop first; keep it "
                                   "above decoders.timeout_s and fts.autoindex_timeout_s")
    lease_log: str = setting("", "Append every lease grant, release and loss to this file (audit); empty = off")
    rescan_active_s: float = setting(300.0, "How often users searched recently get an index job (mail delivered "
                                     "on other machines); 0 = never")
    active_window_s: float = setting(3600.0, "A user searched within this long counts as recently active")


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitSettings:
    query_keys: int = setting(256, "Search keys (IMAP) or text terms (Solr) in one query")
    query_or_width: int = setting(256, "Alternatives of one OR (a chain of IMAP ORs or a Solr OR list counts as one)")
    query_bytes: int = setting(65_536, "Total UTF-8 bytes of the search strings of one query")
    query_depth: int = setting(100, "Nesting of parentheses, OR and NOT in one query (at most 200)")
    solr_query_chars: int = setting(1_000_000, "Longest Solr query text in characters (q, fq, a <delete><query> "
                                    "or <id>)")
    search_time_s: float = setting(30.0, "A search still running after this many seconds stops and answers 503 "
                                   "(CLI: exit 1); 0 = no limit")
    searches_per_user: int = setting(8, "Searches of one user running at once in the service (JSON and Solr "
                                     "routes); one more answers 429 at once, so one user's burst of costly "
                                     "searches cannot hold every request thread; 0 = no limit")
    update_bytes: int = setting(512_000_000, "Largest Solr update request body (bytes on the wire): the documents "
                                "before the limit are committed, the request answers 413")
    update_doc_bytes: int = setting(128_000_000, "Largest single <doc> of a Solr update (bytes on the wire); the "
                                    "text kept of a document is fts.max_text_chars in any case")
    solr_interim_s: float = setting(15.0, "While a request on the Solr routes runs, an interim `102 Processing` "
                                    "goes to an HTTP/1.1 client every this many seconds until its answer starts, "
                                    "so Dovecot's request timeout (60 s) does not expire on a long update; 0 = off")


@dataclass(frozen=True, slots=True, kw_only=True)
class SolrSettings:
    attachments: bool = setting(True, "fts_solr set-up: add the text of a message's attachments (PDF, office "
                                "documents...), decoded by ftsd's own sandboxed decoders from the user's Maildir, "
                                "to the document Dovecot sends for it (Dovecot 2.4 has no attachment decoder). "
                                "Where ftsd may not read a Maildir, or a message is not found, the document is "
                                "indexed as sent (a Maildir it may not read is logged once per user)")
    attachments_time_s: float = setting(20.0, "Time one update request may spend on attachments (Dovecot waits "
                                        "60 s for the answer); the documents after it are indexed as sent")


DEFAULT_MAILBOXES = {"Trash": "\\Trash", "Junk": "\\Junk", "Spam": "\\Junk", "Sent": "\\Sent", "Drafts": "\\Drafts"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    mail_location: str = setting("maildir:~/Maildir", "Dovecot mail_location; %u %n %d ~ expanded, :INDEX= honoured")
    userdb: UserdbSettings = setting(UserdbSettings(), "[userdb]")
    fts: FtsSettings = setting(FtsSettings(), "[fts]")
    decoders: DecoderSettings = setting(DecoderSettings(), "[decoders]")
    server: ServerSettings = setting(ServerSettings(), "[server]")
    cluster: ClusterSettings = setting(ClusterSettings(), "[cluster] several nodes sharing users (docs/scale-out.md)")
    limits: LimitSettings = setting(LimitSettings(), "[limits] cost bounds of one request")
    solr: SolrSettings = setting(SolrSettings(), "[solr] the Solr endpoint Dovecot's fts_solr uses")
    mailboxes: dict[str, str] = setting(dict(DEFAULT_MAILBOXES), "[mailboxes] mailbox name -> special-use flag, "
                                        "for folders Dovecot's configuration (doveconf) does not name")
    log_level: str = setting("info", "debug, info, warning or error")
    log_format: str = setting("text", "text: one plain line per event (with a timestamp unless journald adds its "
                              "own); json: one JSON object per line (time, level, logger, message and the "
                              "event's fields: user, mailbox, job, counts, duration_ms) for log shippers")
    mail_uid: str = setting("", "System user (name or number) owning the mail when the userdb has no uid field "
                            "(Dovecot's mail_uid): ftsd started as root does each user's work as this user")
    mail_gid: str = setting("", "Group of the mail (Dovecot's mail_gid); default: mail_uid's primary group")
    doveconf: str = setting("doveconf", "Command whose `-n` output gives Dovecot's special-use folders (namespace "
                            "mailbox special_use), used before [mailboxes]; empty: only [mailboxes]")
    dovecot_config: str = setting("", "dovecot.conf passed to doveconf -c; empty: Dovecot's default")
    index_file_mode: str = setting("0600", "Mode of index files; directories get x where r is set (0600 -> "
                                   "0700, 0640 -> 0750). Enforced through the umask, whatever the caller's")
    base_dir: Path = setting(Path("."), "Directory relative paths are resolved against (the config file's)")

    def resolve(self, path: str) -> Path:
        """A path from the config, relative ones taken from the config file's directory."""
        return (self.base_dir / os.path.expanduser(path)).resolve() if path else Path()


def _convert(section: str, key: str, value: Any, default: Any, origin: str) -> Any:
    where = f"{origin}: {section + '.' if section else ''}{key}"
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("yes", "no", "true", "false"):
            return value.lower() in ("yes", "true")
        raise ConfigError(f"{where}: expected a boolean, got {value!r}")
    if isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        raise ConfigError(f"{where}: expected a non-negative integer, got {value!r}")
    if isinstance(default, float):
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if isinstance(default, str):
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if isinstance(default, list):
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    if isinstance(default, dict):
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return dict(value)
        raise ConfigError(f"{where}: expected a table of strings, got {value!r}")
    raise ConfigError(f"{where}: unsupported value {value!r}")


def _section(cls: type[T], section: str, table: Mapping[str, Any], origin: str) -> T:
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{origin}: unknown key {section + '.' if section else ''}{key}")
        values[key] = _convert(section, key, value, getattr(cls(), key), origin)
    return cls(**values)


def settings_from_dict(data: Mapping[str, Any], *, origin: str = "<config>", base_dir: Path | None = None) -> Settings:
    """Build Settings from a parsed TOML table. Raises: ConfigError."""
    nested = {"userdb": UserdbSettings, "fts": FtsSettings, "decoders": DecoderSettings, "server": ServerSettings,
              "cluster": ClusterSettings, "limits": LimitSettings, "solr": SolrSettings}
    top: dict[str, Any] = {}
    for key, value in data.items():
        if key in nested:
            if not isinstance(value, dict):
                raise ConfigError(f"{origin}: [{key}] must be a table")
            top[key] = _section(nested[key], key, value, origin)
        elif key == "mailboxes":
            top[key] = {**DEFAULT_MAILBOXES, **_convert("", key, value, {}, origin)}
        elif key in ("mail_location", "log_level", "log_format", "mail_uid", "mail_gid", "index_file_mode", "doveconf",
                     "dovecot_config"):
            top[key] = _convert("", key, value, "", origin)
        else:
            raise ConfigError(f"{origin}: unknown key {key}")
    settings = Settings(**top, base_dir=base_dir or Path.cwd())
    _validate(settings, origin)
    if settings.fts.writer == "dovecot":  # Dovecot is the only writer: a search never indexes on its own
        settings = dataclasses.replace(settings, fts=dataclasses.replace(settings.fts, autoindex=False))
    return settings


def _validate(s: Settings, origin: str) -> None:
    if not 1 <= s.fts.partial <= s.fts.full:
        raise ConfigError(f"{origin}: fts.partial must be >= 1 and <= fts.full")
    if s.fts.partial > 4:
        raise ConfigError(f"{origin}: fts.partial must be <= 4 (every shorter gram is stored)")
    if s.fts.full > 60:
        raise ConfigError(f"{origin}: fts.full must be <= 60 (Xapian terms are limited to 245 bytes)")
    if s.fts.verify_cache_mb < 0:
        raise ConfigError(f"{origin}: fts.verify_cache_mb must be >= 0")
    if s.fts.users_parallel < 1:
        raise ConfigError(f"{origin}: fts.users_parallel must be at least 1")
    if s.server.job_threads < 1:
        raise ConfigError(f"{origin}: server.job_threads must be at least 1")
    if not 1 <= s.limits.query_depth <= 200:
        raise ConfigError(f"{origin}: limits.query_depth must be between 1 and 200")
    if s.server.max_connections < 1:
        raise ConfigError(f"{origin}: server.max_connections must be at least 1")
    if s.server.timeout_header_s <= 0 or s.server.timeout_keep_alive_s <= 0:
        raise ConfigError(f"{origin}: server.timeout_header_s and server.timeout_keep_alive_s must be above 0")
    if s.limits.solr_interim_s < 0:
        raise ConfigError(f"{origin}: limits.solr_interim_s must be >= 0 (0 = no interim responses)")
    if s.server.max_header_bytes < 4096:
        raise ConfigError(f"{origin}: server.max_header_bytes must be at least 4096")
    if not 0 <= s.fts.worker_nice <= 19:
        raise ConfigError(f"{origin}: fts.worker_nice must be between 0 and 19")
    if not s.mail_location.startswith("maildir:"):
        raise ConfigError(f"{origin}: mail_location must start with 'maildir:' (only Maildir++ is supported)")
    if s.fts.writer not in ("ftsd", "dovecot"):
        raise ConfigError(f"{origin}: fts.writer must be 'ftsd' or 'dovecot'")
    if s.userdb.driver not in ("static", "passwd-file", "dovecot", "ldap"):
        raise ConfigError(f"{origin}: userdb.driver must be 'static', 'passwd-file', 'dovecot' or 'ldap'")
    if s.userdb.driver in ("passwd-file", "ldap") and not s.userdb.args:
        what = "the passwd-file" if s.userdb.driver == "passwd-file" else "the dovecot-ldap.conf.ext file"
        raise ConfigError(f"{origin}: userdb.args must name {what}")
    if s.log_level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{origin}: log_level must be debug, info, warning or error")
    if s.log_format not in ("text", "json"):
        raise ConfigError(f"{origin}: log_format must be text or json")
    try:
        int(s.server.socket_mode, 8)
    except ValueError:
        raise ConfigError(f"{origin}: server.socket_mode must be octal, like 0660") from None
    try:
        mode = int(s.index_file_mode, 8)
    except ValueError:
        mode = -1
    if mode < 0 or mode & 0o7117 or mode & 0o600 != 0o600:
        raise ConfigError(f"{origin}: index_file_mode must be 0600, 0640 or 0660 style (owner rw, others "
                          f"nothing, no x), got {s.index_file_mode!r}")


def load_settings(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] = os.environ) -> Settings:
    """Read the config file (-c, else $FTSD_CONFIG, else /etc/ftsd/ftsd.toml). Raises: ConfigError."""
    chosen = Path(path) if path else Path(environ["FTSD_CONFIG"]) if environ.get("FTSD_CONFIG") else DEFAULT_CONFIG
    try:
        data = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{chosen}: config file not found (use -c PATH or $FTSD_CONFIG)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{chosen}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{chosen}: {exc}") from exc
    return settings_from_dict(data, origin=str(chosen), base_dir=chosen.resolve().parent)


def config_lines(settings: Settings, *, every: bool = False) -> list[str]:
    """The effective settings as TOML lines: the non-default ones, like `doveconf -n`, or with every=True all of
    them, each with its documentation as a comment, like `doveconf` (`ftsd config --all`)."""
    lines: list[str] = []
    default = Settings()

    def doc(f: dataclasses.Field[Any]) -> list[str]:
        return [f"# {f.metadata['doc']}"] if every and f.metadata.get("doc") else []

    for f in fields(Settings):
        if f.name == "base_dir":
            continue
        value, base = getattr(settings, f.name), getattr(default, f.name)
        if dataclasses.is_dataclass(value):
            sub = [line for g in fields(value) if every or getattr(value, g.name) != getattr(base, g.name)
                   for line in (*doc(g), f"{g.name} = {_toml(getattr(value, g.name))}")]
            if sub:
                lines += ["", f"[{f.name}]", *sub] if every else [f"[{f.name}]", *sub]
        elif isinstance(value, dict):
            sub = [f"{_toml(k)} = {_toml(v)}" for k, v in value.items() if every or base.get(k) != v]
            if sub:
                lines += ["", f"[{f.name}]", *doc(f), *sub] if every else [f"[{f.name}]", *sub]
        elif every or value != base:
            lines[0:0] = [*doc(f), f"{f.name} = {_toml(value)}"]
    return lines


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
