#!/usr/bin/env python3
"""Search latency over the reference query set (tests/querygen.py) on an indexed Maildir: p50/p95/p99 per query
category, in-process (service.search, autoindex off, index warm) and through the CLI (one process per query).
Standalone: not collected by pytest.

    .venv/bin/python bench/bench_search.py /tmp/corpus/corpus-a [--cli 40]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftsd import service  # noqa: E402
from ftsd.query import format_query  # noqa: E402
from ftsd.settings import load_settings  # noqa: E402
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
    args = ap.parse_args()
    maildir = args.maildir.resolve()
    work = Path(tempfile.mkdtemp(prefix="ftsd-bench-"))
    cfg = work / "ftsd.toml"
    cfg.write_text(f'mail_location = "maildir:{maildir.parent}/%u:INDEX={work}/idx/%u"\n'
                   "[fts]\nautoindex_exclude = []\n")
    settings = load_settings(cfg)
    user = maildir.name
    t = time.perf_counter()
    service.index_users(settings, [user])
    print(f"indexed in {time.perf_counter() - t:.1f}s; building the query set...", file=sys.stderr)
    queries = generate_queries(ReferenceIndex(maildir, workers=2), seed=1, n=240)
    by_cat: dict[str, list[float]] = defaultdict(list)
    for category, node in queries:
        for _ in range(args.repeat):
            start = time.perf_counter()
            service.search(settings, user, [args.mailbox], node, autoindex=False)
            by_cat[category].append((time.perf_counter() - start) * 1000)
    everything = [v for vs in by_cat.values() for v in vs]
    print(f"in-process, {len(queries)} queries x {args.repeat}, mailbox {args.mailbox}")
    print(f"  {'category':<14} {'n':>4} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for category, values in sorted(by_cat.items()) + [("ALL", everything)]:
        print(f"  {category:<14} {len(values) // args.repeat:>4} {statistics.median(values):>8.2f} "
              f"{pct(values, 95):>8.2f} {pct(values, 99):>8.2f} {max(values):>8.2f}")
    cli = []
    for _category, node in queries[: args.cli]:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ftsd", "search", "-c", str(cfg), "-u", user, "-m", args.mailbox,
                        "--no-autoindex", *_argv(node)], check=False, stdout=subprocess.DEVNULL)
        cli.append((time.perf_counter() - start) * 1000)
    if cli:
        print(f"CLI (process start included), {len(cli)} queries: p50 {statistics.median(cli):.0f} ms, "
              f"p99 {pct(cli, 99):.0f} ms")


def _argv(node: object) -> list[str]:
    """The query as CLI arguments: the IMAP form split at top level is enough for these queries."""
    import shlex

    return shlex.split(format_query(node))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
