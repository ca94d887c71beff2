#!/usr/bin/env python3
"""How ftsd's indexing speed, index size and search latency grow with the mailbox: the corpus is replicated
(/work/shared/tools/make-maildir.py replicate: every copy a distinct message) to >= 100,000 messages and fed to ftsd
in steps (by default 1, 4, 8 and 16 copies of the SpamAssassin corpus = 6k, 25k, 50k, 100k messages). Each step adds
the next copies to the same Maildir (hard links) and runs `ftsd index` (incremental: only the new mail), then
`ftsd optimize`, then times single-word searches in-process on the INBOX and on all mailboxes.

    .venv/bin/python bench/scale.py [--corpus /tmp/corpus/corpus-a] [--copies 1,4,8,16] [--output FILE.md]

Prints a markdown table per step: messages, new messages, index wall/CPU s and msg/s of the increment, peak memory of
the indexer's process tree (summed RSS and PSS), index size after optimize (and its ratio to the mail), optimize time,
search p50/p99 (rare, common words and in-word substrings; `TEXT word`, ftsd.service.search, autoindex off). A PNG
plot is written with --plot only if matplotlib is importable (it is not a dependency). Temp data (the replicated
Maildir, ~0.8 GB for 100k messages, and the index) lives in one temp dir, removed at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_common import (  # noqa: E402
    QuerySet,
    build_queries,
    du,
    ftsd_digest,
    mail_stats,
    med,
    message_files,
    pct,
    run_measured,
)

REPO = Path(__file__).resolve().parents[1]
MAKE_MAILDIR = Path("/work/shared/tools/make-maildir.py")
DEFAULT_CORPUS = Path("/tmp/corpus/corpus-a")
USER = "bench"
# make-maildir.py names files <time>.M<usec>P<pid>.<host>,...: usec + (pid - 1000) * 1e6 is its running counter
_COUNTER = re.compile(r"^\d+\.M(\d+)P(\d+)\.")


def replicate(corpus: Path, out: Path, copies: int, timeout_s: float) -> None:
    cmd = [sys.executable, str(MAKE_MAILDIR), "replicate", str(corpus), str(out), "--times", str(copies)]
    subprocess.run(cmd, check=True, timeout=timeout_s, stdout=subprocess.DEVNULL)


def copy_number(name: str, per_copy: int) -> int:
    """Which copy (0-based) a replicated file belongs to: copies are written one after another."""
    m = _COUNTER.match(name)
    if not m:
        raise ValueError(f"not a make-maildir.py file name: {name}")
    counter = int(m.group(1)) + (int(m.group(2)) - 1000) * 1_000_000
    return (counter - 1) // per_copy


def link_copies(replica: Path, staged: Path, per_copy: int, first: int, last: int) -> int:
    """Hard-link the files of copies first..last-1 from the replica into the staged Maildir; the count."""
    added = 0
    for dirpath, _, files in os.walk(replica):
        sub = Path(dirpath)
        if sub.name not in ("cur", "new"):
            continue
        target = staged / sub.relative_to(replica)
        target.mkdir(parents=True, exist_ok=True)
        (target.parent / "tmp").mkdir(exist_ok=True)
        for name in files:
            if first <= copy_number(name, per_copy) < last:
                os.link(sub / name, target / name)
                added += 1
    return added


def search(config: Path, mailbox: str, queries: QuerySet, timeout_s: float) -> dict[str, list[float]]:
    """Wall ms per query by category, through bench/compare_inproc.py (a fresh process, warmed up)."""
    out: dict[str, list[float]] = {}
    for category, words in queries.categories(substrings=True).items():
        proc = subprocess.run([sys.executable, str(REPO / "bench" / "compare_inproc.py"), "search", str(config), USER,
                               mailbox], input=json.dumps(words), capture_output=True, text=True, check=True,
                              timeout=timeout_s)
        out[category] = [row[2] for row in json.loads(proc.stdout)["results"]]
    return out


def fmt_search(times: dict[str, list[float]]) -> str:
    words = times["rare"] + times["common"]
    subs = times["substring"]
    return f"{med(words):.2f} / {pct(words, 99):.1f} | {med(subs):.2f} / {pct(subs, 99):.1f}"


def plot(rows: list[dict[str, float]], path: Path) -> str:
    try:
        import matplotlib  # type: ignore[import-not-found, unused-ignore]

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return "matplotlib is not installed: no plot"
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    x = [r["messages"] / 1000 for r in rows]
    axes[0].plot(x, [r["msg_per_s"] for r in rows], "o-")
    axes[0].set_title("index msg/s (increment)")
    axes[1].plot(x, [r["index_mb"] for r in rows], "o-")
    axes[1].set_title("index MB after optimize")
    axes[2].plot(x, [r["p99_all"] for r in rows], "o-", label="p99 all mailboxes")
    axes[2].plot(x, [r["p50_all"] for r in rows], "o-", label="p50 all mailboxes")
    axes[2].set_title("search ms (words)")
    axes[2].legend()
    for ax in axes:
        ax.set_xlabel("thousand messages")
    fig.tight_layout()
    fig.savefig(path)
    return f"plot: {path}"


def _raise_exit(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="the Maildir to replicate (only read)")
    parser.add_argument("--copies", default="1,4,8,16", help="cumulative copies of the corpus at each step")
    parser.add_argument("--queries", type=int, default=50, help="words per category")
    parser.add_argument("--workers", type=int, default=0, help="fts.workers (0: CPU count)")
    parser.add_argument("--timeout", type=float, default=7200, help="time limit of one step's indexing, seconds")
    parser.add_argument("--tmp", type=Path, default=None, help="where the temp dir goes (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (replica and index)")
    parser.add_argument("--output", type=Path, help="also write the report (markdown) here")
    parser.add_argument("--plot", type=Path, help="PNG plot (only if matplotlib is importable)")
    args = parser.parse_args(argv)
    steps = [int(c) for c in args.copies.split(",")]
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_exit)
    corpus = args.corpus.resolve()
    per_copy, _ = mail_stats(corpus)
    work = Path(tempfile.mkdtemp(prefix="ftsd-scale-", dir=args.tmp))
    ftsd = [sys.executable, "-m", "ftsd"]
    rows: list[dict[str, float]] = []
    lines: list[str] = []
    try:
        started = time.perf_counter()
        replicate(corpus, work / "replica", max(steps), args.timeout)
        print(f"replicated {per_copy} x {max(steps)} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        staged = work / "mail" / USER
        staged.mkdir(parents=True)
        for extra in ("subscriptions",):
            if (work / "replica" / extra).exists():
                shutil.copy(work / "replica" / extra, staged / extra)
        config = work / "ftsd.toml"
        config.write_text(f'mail_location = "maildir:{work}/mail/%u:INDEX={work}/index/%u"\n'
                          f'[fts]\nautoindex_exclude = []\nworkers = {args.workers}\n'
                          f'[server]\nsocket = ""\nstate_dir = "{work}/state"\n')
        queries = build_queries(corpus, args.queries)
        db = work / "index" / USER / "xapian-indexes" / "ftsd.db"
        done = 0
        for copies in steps:
            added = link_copies(work / "replica", staged, per_copy, done, copies)
            done = copies
            messages, mail_bytes = mail_stats(staged)
            inbox = sum(1 for _ in message_files(staged))
            print(f"step {copies} copies: {messages} messages (+{added}), indexing...", file=sys.stderr)
            idx = run_measured([*ftsd, "index", "-c", str(config), "-u", USER], work / "index.log",
                               timeout_s=args.timeout)
            if idx.returncode != 0:
                raise RuntimeError(f"ftsd index failed ({idx.returncode}): {idx.output}")
            raw = du(db)
            opt = run_measured([*ftsd, "optimize", "-c", str(config), "-u", USER], work / "optimize.log",
                               timeout_s=args.timeout)
            size = du(db)
            print(f"  {idx.wall_s:.0f} s, {added / idx.wall_s:.0f} msg/s, {size / 1e6:.0f} MB; searching...",
                  file=sys.stderr)
            in_inbox = search(config, "INBOX", queries, 600)
            in_all = search(config, "*", queries, 1200)
            all_words = in_all["rare"] + in_all["common"]
            rows.append({"messages": messages, "added": added, "inbox": inbox, "wall_s": idx.wall_s,
                         "cpu_s": idx.cpu_s, "msg_per_s": added / idx.wall_s, "cpu_ms_per_msg": idx.cpu_s / added * 1e3,
                         "rss_mb": idx.tree_rss_mb, "pss_mb": idx.tree_pss_mb, "largest_mb": idx.maxrss_mb,
                         "raw_mb": raw / 1e6, "index_mb": size / 1e6, "ratio": size / mail_bytes,
                         "mail_mb": mail_bytes / 1e6, "optimize_s": opt.wall_s, "optimize_rss_mb": opt.tree_rss_mb,
                         "p50_all": med(all_words), "p99_all": pct(all_words, 99)})
            lines.append(f"| {messages:,} | {added:,} | {idx.wall_s:.0f} | {idx.cpu_s:.0f} | {added / idx.wall_s:.0f} "
                         f"| {idx.cpu_s / added * 1e3:.2f} | {idx.tree_rss_mb:.0f} / {idx.tree_pss_mb:.0f} "
                         f"| {raw / 1e6:,.0f} | {size / 1e6:,.0f} | {size / mail_bytes:.2f} | {opt.wall_s:.0f} "
                         f"| {inbox:,} | {fmt_search(in_inbox)} | {fmt_search(in_all)} |")
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    text = "\n".join([
        f"# bench/scale.py: {corpus} replicated x{max(steps)}, ftsd indexing in steps",
        "",
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} at the end; fts.workers = "
        f"{args.workers or os.cpu_count()}. Search: `TEXT word` in-process (ftsd.service.search, autoindex off), "
        f"{len(queries.rare)} rare + {len(queries.common)} common words, {len(queries.substrings)} in-word substrings; "
        f"p50 / p99 in ms. ftsd source digest {ftsd_digest()}.",
        "",
        "| messages | new | index s | CPU s | msg/s (new) | CPU ms/msg | peak RSS / PSS MB (tree) | index MB raw "
        "| index MB optimized | index / mail | optimize s | INBOX messages | INBOX words p50 / p99 | INBOX substrings "
        "p50 / p99 | all mailboxes words p50 / p99 | all mailboxes substrings p50 / p99 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *lines,
        "",
    ])
    if args.plot:
        text += "\n" + plot(rows, args.plot) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
