"""`ftsd`: the command line, doveadm-like and thin: parse, call service, map errors to exit codes, print.

Exit codes: 0 ok, 1 some messages/users failed; an error that stops a command exits with the code of its class in
errors.OUTCOMES (sysexits): 2 usage or query error, 66 no such mailbox, 67 unknown user (EX_NOUSER), 74 index I/O
error, 75 index locked, being rebuilt or disk full (EX_TEMPFAIL: run again later), 78 configuration error;
`ftsd check` follows the monitoring-plugins guidelines instead (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN).
Started as root, every command does each user's work as the user owning the mail (ftsd/privileges.py).
Quiet for cron: on success nothing is printed unless stdout is a terminal or -v is given; failures always are.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from ftsd import __version__, logs, privileges, runner, service
from ftsd.doveconf import with_dovecot_mailboxes
from ftsd.errors import FtsdError, UnknownUserError, UsageError, outcome_of
from ftsd.query import parse_argv
from ftsd.runtime import Runtime
from ftsd.settings import Settings, config_lines, load_settings
from ftsd.userdb import User

EXIT_FAILED, EXIT_USAGE = 1, 2
_NOISY = ("httpx", "httpcore", "watchfiles", "multipart", "uvicorn.access")


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ftsd", description="Full-text search for Dovecot Maildirs.")
    top.add_argument("--version", action="version", version=f"ftsd {__version__}")
    # Global options work before the command (`ftsd -c CONF search ...`, as doveadm) and after it.
    top.add_argument("-c", "--config", help="config file (default: $FTSD_CONFIG or /etc/ftsd/ftsd.toml)")
    top.add_argument("-v", "--verbose", action="count", default=0, help="print progress and summaries (-vv: debug)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    no_c = argparse.ArgumentParser(add_help=False)  # check: -c is the critical threshold, as in every plugin
    no_c.add_argument("--config", default=argparse.SUPPRESS, help="config file")
    no_c.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def users_args(p: argparse.ArgumentParser, required: bool = True) -> None:
        who = p.add_mutually_exclusive_group(required=required)
        who.add_argument("-A", dest="all", action="store_true", help="every user of the userdb")
        who.add_argument("-u", dest="users", action="append", metavar="USER",
                         help="this user, or a mask like '*@example.org' (repeatable)")
        who.add_argument("-F", dest="userfile", metavar="USERFILE", help="the users named in this file, one a line")

    p = sub.add_parser("index", parents=[common], help="index new mail, drop expunged mail")
    users_args(p)
    p.add_argument("-q", dest="queue", action="store_true", help="queue the job on the running service")
    p.add_argument("mailboxes", nargs="*", metavar="MAILBOX", help="mailbox or mask ('*', '%%', 'Arch*')")
    p = sub.add_parser("search", parents=[common], help="IMAP SEARCH keys -> UIDs")
    p.add_argument("-u", dest="user", required=True, metavar="USER")
    p.add_argument("-m", dest="mailboxes", action="append", metavar="MAILBOX",
                   help="mailbox or mask (repeatable, * = all)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-autoindex", dest="autoindex", action="store_false", default=None)
    p.add_argument("keys", nargs=argparse.REMAINDER, metavar="KEY")
    p = sub.add_parser("optimize", parents=[common], help="compact indexes")
    users_args(p)
    p.add_argument("-q", dest="queue", action="store_true", help="queue the job on the running service")
    p = sub.add_parser("rescan", parents=[common], help="reconcile index and mail (never deletes everything)")
    users_args(p)
    p = sub.add_parser("status", parents=[common], help="per-mailbox index status")
    p.add_argument("-u", dest="user", metavar="USER")
    p.add_argument("-m", dest="mailbox", default="INBOX", metavar="MAILBOX")
    p.add_argument("--uid", type=int, help="show how this message was decoded and indexed")
    p.add_argument("--json", action="store_true")
    p.add_argument("--orphans", action="store_true", help="list indexes of users no longer in the userdb")
    p = sub.add_parser("prune", parents=[common], help="remove the indexes of users no longer in the userdb")
    p.add_argument("-n", "--dry-run", action="store_true", help="only list what would be removed")
    p = sub.add_parser("check", parents=[no_c], help="index health; a Nagios/Icinga plugin (exit 0/1/2/3)")
    users_args(p, required=False)
    p.add_argument("-w", "--warning", type=float, default=3600, metavar="SECONDS",
                   help="WARNING when the oldest unindexed message is this old (default 3600)")
    p.add_argument("-c", "--critical", default="86400", metavar="SECONDS",
                   help="CRITICAL when the oldest unindexed message is this old (default 86400); "
                        "a value that is no number is taken as the config file, as for the other commands")
    p.add_argument("--deep", action="store_true", help="also run Xapian's full check of every index block (slow)")
    p.add_argument("--service", dest="service", action="store_true", default=None,
                   help="ask the running service's /healthz (default: when its Unix socket exists)")
    p.add_argument("--no-service", dest="service", action="store_false")
    p = sub.add_parser("serve", parents=[common], help="run the HTTP API (TCP + Unix socket)")
    p.add_argument("--allow-root", action="store_true", help="run even as root (not recommended)")
    p = sub.add_parser("config", parents=[common], help="print the effective non-default settings")
    p.add_argument("--all", dest="every", action="store_true", help="every setting, with its documentation")
    p = sub.add_parser("cluster", parents=[common], help="cluster mode: nodes, leases, queue (docs/scale-out.md)")
    p.add_argument("action", choices=["status"])
    p.add_argument("--json", action="store_true")
    return top


def _select_users(settings: Settings, args: argparse.Namespace, rt: Runtime) -> list[str]:
    """-A, -F USERFILE, or -u USER/MASK..., like doveadm."""
    if getattr(args, "all", False):
        return rt.userdb.names()
    if getattr(args, "userfile", None):
        try:
            with open(args.userfile, encoding="utf-8") as f:
                return [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
        except OSError as exc:
            raise UsageError(f"-F {args.userfile}: {exc.strerror}") from None
    names: list[str] = []
    everyone: list[str] | None = None
    for pattern in getattr(args, "users", None) or []:
        if any(c in pattern for c in "*?["):
            everyone = rt.userdb.names() if everyone is None else everyone
            matched = fnmatch.filter(everyone, pattern)
            if not matched:
                raise UnknownUserError(f"no user matches {pattern!r}")
            names += [n for n in matched if n not in names]
        elif pattern not in names:
            names.append(pattern)
    return names


def _wants_output(args: argparse.Namespace) -> bool:
    return bool(args.verbose) or sys.stdout.isatty()


class _Bar:
    """One progress bar for the whole run (on a terminal only): messages done of the total counted up front,
    the current user and users done of all, rate and ETA."""

    def __init__(self, enabled: bool, users: int, unit: str = "msg") -> None:
        self.bar: Any = None
        self.enabled, self.unit = enabled and users > 0, unit
        self.users, self.users_done, self.current = users, -1, ""

    def __call__(self, event: runner.Event) -> None:
        if not self.enabled:
            return
        if self.bar is None:  # drawn once the total is known, not as an empty 0/0 bar
            from tqdm import tqdm  # type: ignore[import-untyped]

            self.bar = tqdm(total=0, unit=self.unit, file=sys.stderr, dynamic_ncols=True, leave=False, delay=0.5,
                            bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                                       "[{elapsed}<{remaining}, {rate_fmt}]")
        kind = event[0]
        if kind in ("total", "total_users"):
            self.bar.total += event[1]
        elif kind == "user":
            self.users_done += 1
            self.current = event[1]
        elif kind == "done":
            if self.bar.n + event[1] > self.bar.total:
                self.bar.total = self.bar.n + event[1]
            self.bar.update(event[1])
        self.bar.set_description_str(f"{self.current} (user {max(self.users_done, 0) + 1}/{self.users})",
                                     refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _cmd_index(settings: Settings, args: argparse.Namespace, rt: Runtime, *, prune: bool = False) -> int:
    if settings.fts.writer == "dovecot":
        raise UsageError(f"Dovecot writes these indexes (fts.writer = \"dovecot\"): run `doveadm "
                         f"{'fts rescan' if prune else 'index'} -A` instead, or set fts.writer = \"ftsd\"")
    if getattr(args, "queue", False):
        if settings.cluster.dsn:
            return _cluster_enqueue(settings, "index", args, rt)
        from ftsd.cli_client import enqueue

        return enqueue(settings, "index", _select_users(settings, args, rt), mailboxes=args.mailboxes,
                       quiet=not _wants_output(args))
    names = _select_users(settings, args, rt)
    bar = _Bar(sys.stderr.isatty(), len(names))
    try:
        report = runner.index(settings, names, getattr(args, "mailboxes", []), prune=prune, on_event=bar, runtime=rt)
    finally:
        bar.close()
    if report.failed:
        for line in report.failed[:20]:
            print(f"ftsd: failed: {line}", file=sys.stderr)
        if len(report.failed) > 20:
            print(f"ftsd: ... and {len(report.failed) - 20} more failures (see the log above)", file=sys.stderr)
        print(f"ftsd: {report.summary()}", file=sys.stderr)
        return EXIT_FAILED
    if _wants_output(args):
        print(report.summary())
    return 0


def _as_mail_user(settings: Settings, rt: Runtime, name: str, work: Any) -> Any:
    """Run work(user, runtime) for one user as its mail user (a child process when root); raises its failure."""
    user = service.get_user(settings, name, rt)
    failures: list[str] = []
    parent = os.getpid()

    def one(users: list[User], _emit: privileges.Emit) -> Any:
        with runner.runtime_in(settings, rt, parent) as here:
            return work(users[0], here)

    results = privileges.run_grouped(settings, [user], one, lambda _e: None,
                                     lambda _n, line: failures.append(line), prepare=False)
    if failures:
        raise UsageError(failures[0])
    return results[0]


def _cmd_search(settings: Settings, args: argparse.Namespace, rt: Runtime) -> int:
    if not args.keys:
        raise UsageError("search needs at least one search key, e.g. TEXT hello")
    query = parse_argv(args.keys, settings.limits)
    masks = args.mailboxes or ["INBOX"]

    def work(user: User, here: Runtime) -> Any:
        boxes = runner.expand_mailboxes(user, masks)
        return service.search(settings, user.name, boxes, query, autoindex=args.autoindex, runtime=here)

    results = _as_mail_user(settings, rt, args.user, work)
    if args.json:
        rows = [{"mailbox": r.mailbox, "uidvalidity": r.uidvalidity, "uids": r.uids} for r in results]
        print(json.dumps(rows[0] if len(rows) == 1 and args.mailboxes != ["*"] else {"results": rows}))
    else:
        many = len(results) > 1
        for r in results:
            for uid in r.uids:
                print(f"{r.mailbox}\t{uid}" if many else uid)
    return 0


def _cmd_status(settings: Settings, args: argparse.Namespace, rt: Runtime) -> int:
    if args.uid is not None:
        if not args.user:
            raise UsageError("--uid needs -u USER")
        data = _as_mail_user(settings, rt, args.user, lambda user, here: service.message_status(
            settings, user.name, args.mailbox, args.uid, runtime=here))
        print(json.dumps(data, indent=2))
        return 0
    if args.orphans:
        return _cmd_prune(settings, args, rt, remove=False)
    from ftsd import monitor

    failures: list[str] = []
    users = runner.resolve(settings, [args.user] if args.user else rt.userdb.names(),
                           lambda _name, line: failures.append(line), rt)
    parent = os.getpid()

    def work(members: list[User], _emit: privileges.Emit) -> list[tuple[str, Any, Any]]:
        out: list[tuple[str, Any, Any]] = []  # (user, status, health), or (user, None, error line)
        with runner.runtime_in(settings, rt, parent) as here:
            for user in members:
                try:
                    out.append((user.name, service.user_status(settings, user.name, runtime=here),
                                monitor.user_health(settings, user)))
                except (FtsdError, OSError) as exc:
                    out.append((user.name, None, privileges.describe(exc, user.name)))
        return out

    rows = [row for part in privileges.run_grouped(settings, users, work, lambda _e: None,
                                                   lambda _n, line: failures.append(line), prepare=False)
            for row in part]
    order = {user.name: i for i, user in enumerate(users)}
    for line in failures:
        print(f"ftsd: {line}", file=sys.stderr)
    failed = len(failures)
    for name, st, health in sorted(rows, key=lambda row: order[row[0]]):
        if st is None:
            print(f"ftsd: {health}", file=sys.stderr)
            failed += 1
            continue
        if args.json:
            health_state = "damaged" if health.damaged else "rebuilding" if health.rebuilding else "ok"
            print(json.dumps({**st.to_json(), "health": health_state}))
            continue
        state = {"rebuilding": " -- being rebuilt from the mail (it was damaged)",
                 "damaged": " -- DAMAGED: run ftsd index to rebuild it"}.get(st.index_state, "")
        print(f"{st.user}: index {st.index} ({st.index_bytes / 1e6:.1f} MB){state}")
        if health.damaged or health.rebuilding:
            print(f"  {health.line().removeprefix(name + ': ')}")
        print(f"  {'mailbox':<28} {'messages':>9} {'indexed':>9} {'last_uid':>9} {'uidvalidity':>11}")
        for row in st.mailboxes:
            note = " (excluded)" if row.excluded else ""
            note += f" ({row.pending} without UID yet)" if row.pending else ""
            print(f"  {row.mailbox:<28} {row.messages:>9} {row.indexed:>9} {row.last_uid:>9} "
                  f"{row.uidvalidity:>11}{note}")
    return EXIT_FAILED if failed else 0


def _cmd_optimize(settings: Settings, args: argparse.Namespace, rt: Runtime) -> int:
    if args.queue:
        if settings.cluster.dsn:
            return _cluster_enqueue(settings, "optimize", args, rt)
        from ftsd.cli_client import enqueue

        return enqueue(settings, "optimize", _select_users(settings, args, rt), quiet=not _wants_output(args))
    names = _select_users(settings, args, rt)
    bar = _Bar(sys.stderr.isatty(), len(names), unit="user")
    try:
        report = runner.optimize(settings, names, on_event=bar, runtime=rt)
    finally:
        bar.close()
    for line in report.failed:
        print(f"ftsd: failed: {line}", file=sys.stderr)
    if report.failed:
        print(f"ftsd: {report.summary()}", file=sys.stderr)
        return EXIT_FAILED
    if _wants_output(args):
        print(report.summary())
    return 0


def _cmd_prune(settings: Settings, args: argparse.Namespace, rt: Runtime, *, remove: bool) -> int:
    """`status --orphans` (list) and `prune` (remove) the indexes of users the userdb no longer knows."""
    from ftsd import lifecycle

    found = lifecycle.orphans(settings)
    failed = 0
    for orphan in found:
        line = f"{orphan.user}\t{orphan.bytes / 1e6:.1f} MB\t{orphan.index_dir}"
        if not remove or getattr(args, "dry_run", False):
            print(line)
            continue
        try:
            lifecycle.prune(orphan, settings)
        except OSError as exc:
            print(f"ftsd: {privileges.explain_os_error(exc, orphan.user)}", file=sys.stderr)
            failed += 1
            continue
        if _wants_output(args):
            print(f"removed {line}")
    if not found and not remove and sys.stdout.isatty():
        print("no orphaned indexes")
    return EXIT_FAILED if failed else 0


def _cmd_check(settings: Settings, args: argparse.Namespace, rt: Runtime) -> int:
    from ftsd import monitor

    if args.warning > args.critical:
        raise UsageError("-w must not be larger than -c")
    names = _select_users(settings, args, rt) if (args.all or args.users or args.userfile) else rt.userdb.names()
    failures: list[str] = []
    users = runner.resolve(settings, names, lambda _name, line: failures.append(line), rt)
    now = time.time()

    def work(members: list[User], _emit: privileges.Emit) -> list[monitor.UserHealth]:
        return [monitor.user_health(settings, u, deep=args.deep, now=now) for u in members]

    health: list[monitor.UserHealth] = []
    for part in privileges.run_grouped(settings, users, work, lambda _e: None,
                                       lambda _n, line: failures.append(line), prepare=False):
        health += part
    note, failed_jobs = "", None
    socket = settings.resolve(settings.server.socket) if settings.server.socket else None
    if args.service or (args.service is None and socket is not None and socket.exists()):
        note, failed_jobs = monitor.service_health(settings)
    result = monitor.evaluate(health, failures, args.warning, args.critical, note, failed_jobs)
    print(result.text())
    return result.state


def _setup_logging(settings: Settings, args: argparse.Namespace) -> None:
    """Timestamps unless journald adds its own (JOURNAL_STREAM set), or JSON lines (log_format); quiet
    libraries; per-message lines only with -v for the bulk commands (they would drown a terminal and fill cron
    mail)."""
    level = logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logs.formatter(settings.log_format, bool(os.environ.get("JOURNAL_STREAM"))))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or getattr(logging, settings.log_level.upper()))
    if level is None and settings.log_level == "info" and args.command != "serve":
        root.setLevel(logging.WARNING)  # cron: warnings and errors only
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING if args.verbose < 2 else logging.DEBUG)


def _cluster_enqueue(settings: Settings, kind: str, args: argparse.Namespace, rt: Runtime) -> int:
    """Cluster mode: -q writes the jobs straight into the shared queue (no node needs to run here)."""
    from ftsd.cluster import admin

    ids = admin.enqueue(settings, kind, _select_users(settings, args, rt), getattr(args, "mailboxes", None) or [])
    if _wants_output(args):  # cron: silent on success
        print(f"{len(ids)} {kind} job(s) queued cluster-wide")
    return 0


def _cmd_cluster(settings: Settings, args: argparse.Namespace) -> int:
    from ftsd.cluster import admin

    status = admin.cluster_status(settings)
    print(json.dumps(status) if args.json else admin.format_status(status))
    return 0


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    _setup_logging(settings, args)
    if args.command not in ("config",):
        settings = with_dovecot_mailboxes(settings)
    umask = privileges.apply_umask(settings)
    rt = Runtime(settings)  # what this process's calls share (userdb, scan cache, readers, ...)
    try:
        return _dispatch(settings, args, rt)
    finally:
        rt.close()
        os.umask(umask)  # main() called in-process (tests, embedding) leaves the caller's umask as it was


def _dispatch(settings: Settings, args: argparse.Namespace, rt: Runtime) -> int:
    match args.command:
        case "index":
            return _cmd_index(settings, args, rt)
        case "rescan":
            args.mailboxes = []
            return _cmd_index(settings, args, rt, prune=True)
        case "search":
            return _cmd_search(settings, args, rt)
        case "status":
            return _cmd_status(settings, args, rt)
        case "optimize":
            return _cmd_optimize(settings, args, rt)
        case "check":
            return _cmd_check(settings, args, rt)
        case "prune":
            return _cmd_prune(settings, args, rt, remove=True)
        case "serve":
            from ftsd.api.server import serve

            privileges.refuse_root_service(args.allow_root)
            serve(settings)
            return 0
        case "config":
            print("\n".join(config_lines(settings, every=args.every)))
            return 0
        case "cluster":
            return _cmd_cluster(settings, args)
    raise UsageError(f"unknown command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ftsd` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    is_check = "check" in argv
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage line
        code = int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
        return 3 if is_check and code else code
    if args.command == "check":
        try:
            args.critical = float(args.critical)
        except ValueError:
            args.config, args.critical = args.critical, 86400.0
    try:
        return _run(args)
    except FtsdError as exc:
        if args.command == "check":  # monitoring-plugins: the check could not run -> UNKNOWN, one line
            print(f"FTSD UNKNOWN - {exc}")
            return 3
        print(f"ftsd: {exc}", file=sys.stderr)
        return outcome_of(exc).exit
    except OSError as exc:
        line = privileges.explain_os_error(exc)
        if args.command == "check":
            print(f"FTSD UNKNOWN - {line}")
            return 3
        if isinstance(exc, BrokenPipeError):  # `ftsd search ... | head`: the reader left, nothing more to say
            sys.stderr.close()
            return 0
        print(f"ftsd: {line}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("ftsd: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an unforeseen library error: one line, the traceback only with -vv
        if args.verbose > 1:
            raise
        line = f"internal error: {type(exc).__name__}: {exc} (run with -vv for the traceback, and report it)"
        if args.command == "check":
            print(f"FTSD UNKNOWN - {line}")
            return 3
        print(f"ftsd: {line}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
