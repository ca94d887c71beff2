"""`ftsd`: the command line, doveadm-like and thin: parse, call service, map errors to exit codes, print.

Exit codes: 0 ok, 1 some messages/users failed; an error that stops a command exits with the code of its class in
errors.OUTCOMES (sysexits): 2 usage or query error, 66 no such mailbox, 67 unknown user (EX_NOUSER), 74 index I/O
error, 75 index locked, being rebuilt or disk full (EX_TEMPFAIL: run again later), 78 configuration error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
from collections.abc import Sequence
from typing import Any

from ftsd import __version__, service
from ftsd.errors import FtsdError, UsageError, outcome_of
from ftsd.query import parse_argv
from ftsd.runtime import Runtime
from ftsd.settings import Settings, config_lines, load_settings

EXIT_FAILED, EXIT_USAGE = 1, 2


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="ftsd", description="Full-text search for Dovecot Maildirs.")
    top.add_argument("--version", action="version", version=f"ftsd {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", help="config file (default: $FTSD_CONFIG or /etc/ftsd/ftsd.toml)")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def users_args(p: argparse.ArgumentParser) -> None:
        who = p.add_mutually_exclusive_group(required=True)
        who.add_argument("-A", dest="all", action="store_true", help="every user of the userdb")
        who.add_argument("-u", dest="users", action="append", metavar="USER", help="this user (repeatable)")

    p = sub.add_parser("index", parents=[common], help="index new mail, drop expunged mail")
    users_args(p)
    p.add_argument("-q", dest="queue", action="store_true", help="queue the job on the running service")
    p.add_argument("mailboxes", nargs="*", metavar="MAILBOX")
    p = sub.add_parser("search", parents=[common], help="IMAP SEARCH keys -> UIDs")
    p.add_argument("-u", dest="user", required=True, metavar="USER")
    p.add_argument("-m", dest="mailboxes", action="append", metavar="MAILBOX", help="mailbox (repeatable, * = all)")
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
    p = sub.add_parser("check", parents=[common], help="check index consistency")
    users_args(p)
    sub.add_parser("serve", parents=[common], help="run the HTTP API (TCP + Unix socket)")
    p = sub.add_parser("config", parents=[common], help="print the effective non-default settings")
    p.add_argument("--all", dest="every", action="store_true", help="every setting, with its documentation")
    p = sub.add_parser("cluster", parents=[common], help="cluster mode: nodes, leases, queue (docs/scale-out.md)")
    p.add_argument("action", choices=["status"])
    p.add_argument("--json", action="store_true")
    return top


def _progress(enabled: bool) -> Any:
    """A tqdm bar on a terminal; nothing in cron (stderr not a TTY)."""
    if not enabled:
        return None
    from tqdm import tqdm  # type: ignore[import-untyped]

    bar = tqdm(total=0, unit="msg", file=sys.stderr, dynamic_ncols=True, leave=False)
    lock = threading.Lock()  # -A indexes several users at once

    def update(total: int, done: int) -> None:
        with lock:
            if total:
                bar.total += total
                bar.refresh()
            if done:
                bar.update(done)

    update.bar = bar  # type: ignore[attr-defined]
    return update


def _cmd_index(settings: Settings, args: argparse.Namespace, rt: Runtime, *, prune: bool = False) -> int:
    if getattr(args, "queue", False):
        if settings.cluster.dsn:
            return _cluster_enqueue(settings, "index", args)
        from ftsd.api.client import enqueue

        return enqueue(settings, "index", args.users or [], all_users=args.all, mailboxes=args.mailboxes)
    progress = _progress(sys.stderr.isatty())
    report = service.index_users(settings, args.users or [], all_users=args.all,
                                 mailboxes=getattr(args, "mailboxes", []), progress=progress, prune=prune, runtime=rt)
    if progress:
        progress.bar.close()
    print(report.summary())
    for line in report.failed[:20]:
        print(f"failed: {line}", file=sys.stderr)
    return EXIT_FAILED if report.failed else 0


def _cmd_search(settings: Settings, args: argparse.Namespace, rt: Runtime) -> int:
    if not args.keys:
        raise UsageError("search needs at least one search key, e.g. TEXT hello")
    query = parse_argv(args.keys, settings.limits)
    results = service.search(settings, args.user, args.mailboxes or ["INBOX"], query, autoindex=args.autoindex,
                             runtime=rt)
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
        print(json.dumps(service.message_status(settings, args.user, args.mailbox, args.uid, runtime=rt), indent=2))
        return 0
    for name in [args.user] if args.user else rt.userdb.names():
        st = service.user_status(settings, name, runtime=rt)
        if args.json:
            print(json.dumps(st.to_json()))
            continue
        state = {"rebuilding": " -- being rebuilt from the mail (it was damaged)",
                 "damaged": " -- DAMAGED: run ftsd index to rebuild it"}.get(st.index_state, "")
        print(f"{st.user}: index {st.index} ({st.index_bytes / 1e6:.1f} MB){state}")
        print(f"  {'mailbox':<28} {'messages':>9} {'indexed':>9} {'last_uid':>9} {'uidvalidity':>11}")
        for row in st.mailboxes:
            note = " (excluded)" if row.excluded else ""
            note += f" ({row.pending} without UID yet)" if row.pending else ""
            print(f"  {row.mailbox:<28} {row.messages:>9} {row.indexed:>9} {row.last_uid:>9} "
                  f"{row.uidvalidity:>11}{note}")
    return 0


def _cmd_optimize(settings: Settings, args: argparse.Namespace, rt: Runtime) -> int:
    if args.queue:
        if settings.cluster.dsn:
            return _cluster_enqueue(settings, "optimize", args)
        from ftsd.api.client import enqueue

        return enqueue(settings, "optimize", args.users or [], all_users=args.all)
    results = service.optimize_users(settings, args.users or [], all_users=args.all, runtime=rt)
    for r in results:
        if r.error:
            print(f"{r.user}: failed: {r.error}", file=sys.stderr)
        else:
            print(f"{r.user}: {r.bytes_before / 1e6:.1f} MB -> {r.bytes_after / 1e6:.1f} MB")
    return EXIT_FAILED if any(r.error for r in results) else 0


def _cmd_check(settings: Settings, args: argparse.Namespace, rt: Runtime) -> int:
    results = service.check_users(settings, args.users or [], all_users=args.all, runtime=rt)
    notes = {"none": "no index yet", "rebuilding": "ok (being rebuilt from the mail)", "ok": "ok"}
    for name, result in results.items():
        print(f"{name}: {result.problem or notes.get(result.state, result.state)}")
    return EXIT_FAILED if any(r.problem for r in results.values()) else 0


def _cluster_enqueue(settings: Settings, kind: str, args: argparse.Namespace) -> int:
    """Cluster mode: -q writes the jobs straight into the shared queue (no node needs to run here)."""
    from ftsd.cluster import admin
    from ftsd.userdb import list_users

    users = list_users(settings) if args.all else args.users
    ids = admin.enqueue(settings, kind, users, getattr(args, "mailboxes", None) or [])
    print(f"{len(ids)} {kind} job(s) queued cluster-wide")
    return 0


def _cmd_cluster(settings: Settings, args: argparse.Namespace) -> int:
    from ftsd.cluster import admin

    status = admin.cluster_status(settings)
    print(json.dumps(status) if args.json else admin.format_status(status))
    return 0


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    level = logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else None
    logging.basicConfig(level=level or getattr(logging, settings.log_level.upper()), stream=sys.stderr,
                        format="ftsd: %(levelname)s: %(message)s")
    if level is None and settings.log_level == "info" and args.command in ("search", "index", "rescan"):
        logging.getLogger().setLevel(logging.WARNING)  # per-message info lines would drown a terminal
    rt = Runtime(settings)  # what this process's calls share (scan cache, readers, ...)
    try:
        return _dispatch(settings, args, rt)
    finally:
        rt.close()


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
        case "serve":
            from ftsd.api.server import serve

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
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage line
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return _run(args)
    except FtsdError as exc:
        print(f"ftsd: {exc}", file=sys.stderr)
        return outcome_of(exc).exit
    except KeyboardInterrupt:
        print("ftsd: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `ftsd search ... | head`: the reader left, nothing more to say
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
