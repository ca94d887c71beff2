#!/usr/bin/env python3
"""Search latency over the reference query set (tests/querygen.py) on an indexed Maildir: p50/p95/p99 per query
category, in-process (service.search, autoindex off, index warm) and through the CLI (one process per query).
Standalone: not collected by pytest.

    .venv/bin/python bench/bench_search.py /tmp/corpus/sa/corpus-a [--cli 40] [--dovecot symbols,short]
    .venv/bin/python bench/bench_search.py /tmp/corpus/openbmc/corpus-openbmc [--cli 40]

The benchmark corpora (SpamAssassin, openbmc) and how to unpack them: bench/README.md.
    .venv/bin/python bench/bench_search.py /tmp/inbox40k --queries-from /tmp/corpus/sa/corpus-a \
        --categories phrase,punct --repeat 1 --limit-s 30

`--queries-from` draws the query set from another (smaller) Maildir with the same text, e.g. the corpus a large
mailbox was replicated from (make-maildir.py replicate): decoding 40k messages for the reference takes minutes.
"verified" is the number of messages read from the Maildir per query (mean and max over the category).

`--dovecot CATEGORIES` also times Dovecot's own search (a private Dovecot 2.3 without FTS on loopback, see
tests/integration/dovecot.py) in the same run: the mailbox is copied into its Maildir, Dovecot assigns the UIDs,
ftsd indexes that copy, and the queries of those categories go through IMAP `UID SEARCH` (a scan of every message)
and ftsd; both latencies are printed with the number of queries whose answers differ.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftsd import service  # noqa: E402
from ftsd.errors import SearchTimeoutError  # noqa: E402
from ftsd.query import Node, format_query  # noqa: E402
from ftsd.settings import Settings, load_settings  # noqa: E402
from tests.integration.dovecot import Dovecot  # noqa: E402
from tests.querygen import generate_queries  # noqa: E402
from tests.reference import ReferenceIndex  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("maildir", type=Path)
    ap.add_argument("--mailbox", default="INBOX")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cli", type=int, default=30, help="queries to time through the CLI")
    ap.add_argument("--dovecot", default="", help="query categories to time through Dovecot's own search too")
    ap.add_argument("--seed", type=int, default=1, help="query set seed (tests/querygen.py)")
    ap.add_argument("--categories", default="", help="only these query categories (comma-separated)")
    ap.add_argument("--queries-from", type=Path, help="draw the queries from this Maildir's text")
    ap.add_argument("--work", type=Path, help="keep the index here (and reuse it: only new mail is indexed)")
    ap.add_argument("--limit-s", type=float, default=0.0, help="stop a query after this long (counted as a timeout)")
    args = ap.parse_args()
    maildir = args.maildir.resolve()
    work = args.work.resolve() if args.work else Path(tempfile.mkdtemp(prefix="ftsd-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    work.chmod(0o755)  # Dovecot's mail uid must reach its Maildir
    dovecot = None
    if args.dovecot:
        dovecot, maildir = _start_dovecot(work, maildir, args.mailbox)
    try:
        _run(args, maildir, work, dovecot)
    finally:
        if dovecot is not None:
            dovecot.stop()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def _start_dovecot(work: Path, maildir: Path, mailbox: str) -> tuple[Dovecot, Path]:
    """A Dovecot without FTS whose user `bench` has a copy of `mailbox` as INBOX; (Dovecot, the copy's root)."""
    from tests.integration.imap import ImapSearch

    source = maildir if mailbox == "INBOX" else maildir / f".{mailbox}"
    dovecot = Dovecot(work / "dovecot", {}, mail_plugins="")
    dovecot.add_user("bench", [p for sub in ("cur", "new") for p in sorted((source / sub).iterdir())])
    dovecot.start()
    t = time.perf_counter()
    ImapSearch(dovecot.imap("bench")).close()  # Dovecot assigns UIDs and builds its own index on first SELECT
    print(f"dovecot: first SELECT {time.perf_counter() - t:.1f}s", file=sys.stderr)
    return dovecot, dovecot.maildir("bench")


def _run(args: argparse.Namespace, maildir: Path, work: Path, dovecot: Dovecot | None) -> None:
    if dovecot is not None:
        args.mailbox = "INBOX"
    cfg = work / "ftsd.toml"
    limits = f"[limits]\nsearch_time_s = {args.limit_s}\n" if args.limit_s else ""
    cfg.write_text(f'mail_location = "maildir:{maildir.parent}/%u:INDEX={work}/idx/%u"\n'
                   "[fts]\nautoindex_exclude = []\n" + limits)
    settings = load_settings(cfg)
    user = maildir.name
    t = time.perf_counter()
    service.index_users(settings, [user])
    print(f"indexed in {time.perf_counter() - t:.1f}s; building the query set...", file=sys.stderr)
    queries = generate_queries(ReferenceIndex((args.queries_from or maildir).resolve(), workers=2), seed=args.seed,
                               n=240)
    if args.categories:
        queries = [(c, n) for c, n in queries if c in args.categories.split(",")]
    by_cat: dict[str, list[float]] = defaultdict(list)
    checked: dict[str, list[int]] = defaultdict(list)
    timeouts: dict[str, int] = defaultdict(int)
    for category, node in queries:
        for _ in range(args.repeat):
            start = time.perf_counter()
            try:
                results = service.search(settings, user, [args.mailbox], node, autoindex=False)
                checked[category].append(sum(r.verified for r in results))
            except SearchTimeoutError:
                timeouts[category] += 1
            by_cat[category].append((time.perf_counter() - start) * 1000)
    everything = [v for vs in by_cat.values() for v in vs]
    every_check = [v for vs in checked.values() for v in vs]
    print(f"in-process, {len(queries)} queries x {args.repeat}, mailbox {args.mailbox}, seed {args.seed}")
    print(f"  {'category':<14} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'verified mean':>13} {'max':>6} {'timeouts':>8}")
    for category, values in sorted(by_cat.items()) + [("ALL", everything)]:
        reads = checked.get(category, every_check if category == "ALL" else [])
        late = sum(timeouts.values()) if category == "ALL" else timeouts[category]
        print(f"  {category:<14} {len(values) // args.repeat:>4} {statistics.median(values):>8.2f} "
              f"{pct(values, 95):>8.2f} {pct(values, 99):>8.2f} {max(values):>8.2f} "
              f"{statistics.mean(reads) if reads else 0:>13.1f} {max(reads, default=0):>6} {late:>8}")
    cli = []
    for _category, node in queries[: args.cli]:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ftsd", "search", "-c", str(cfg), "-u", user, "-m", args.mailbox,
                        "--no-autoindex", *_argv(node)], check=False, stdout=subprocess.DEVNULL)
        cli.append((time.perf_counter() - start) * 1000)
    if cli:
        print(f"CLI (process start included), {len(cli)} queries: p50 {statistics.median(cli):.0f} ms, "
              f"p99 {pct(cli, 99):.0f} ms")
    if dovecot is not None:
        _compare_dovecot(args, settings, user, dovecot, queries)


def _compare_dovecot(args: argparse.Namespace, settings: Settings, user: str, dovecot: Dovecot,
                     queries: list[tuple[str, Node]]) -> None:
    from tests.integration.imap import ImapSearch

    imap = ImapSearch(dovecot.imap("bench"))
    wanted = set(args.dovecot.split(","))
    chosen = [(c, n) for c, n in queries if c in wanted]
    dv: dict[str, list[float]] = defaultdict(list)
    ft: dict[str, list[float]] = defaultdict(list)
    differ = 0
    for category, node in chosen:
        for _ in range(args.repeat):
            found = imap.uids(node)
            dv[category].append(imap.last_ms)
            start = time.perf_counter()
            got = service.search(settings, user, ["INBOX"], node, autoindex=False)[0].uids
            ft[category].append((time.perf_counter() - start) * 1000)
        differ += found != got
    imap.close()
    print(f"Dovecot 2.3 without FTS (IMAP UID SEARCH, a scan) vs ftsd, same mailbox, {len(chosen)} queries x "
          f"{args.repeat}; {differ} queries differ (docs/search-differences.md)")
    print(f"  {'category':<14} {'n':>4} {'dovecot p50':>12} {'p99':>8} {'ftsd p50':>9} {'p99':>8}")
    for category in sorted(dv):
        d, f = dv[category], ft[category]
        print(f"  {category:<14} {len(d) // args.repeat:>4} {statistics.median(d):>12.1f} {pct(d, 99):>8.1f} "
              f"{statistics.median(f):>9.2f} {pct(f, 99):>8.2f}")


def _argv(node: object) -> list[str]:
    """The query as CLI arguments: the IMAP form split at top level is enough for these queries."""
    import shlex

    return shlex.split(format_query(node))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
