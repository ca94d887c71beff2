#!/usr/bin/env python3
"""Index a Maildir from scratch and print messages/s, CPU s, peak RSS, and index size / mail size (before and
after optimize). Standalone: not collected by pytest.

    .venv/bin/python bench/bench_index.py /tmp/corpus/sa/corpus-a [--workers N] [--runs 1]
    .venv/bin/python bench/bench_index.py /tmp/corpus/openbmc/corpus-openbmc [--workers N] [--runs 1]
    .venv/bin/python bench/bench_index.py MAILDIR --store-texts both --runs 2   # fts.store_texts off/on alternating

The Maildir's directory name is the user (`maildir:PARENT/%u`).
The benchmark corpora (SpamAssassin, openbmc) and how to unpack them: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def mail_bytes(root: Path) -> tuple[int, int]:
    files = [p for p in root.rglob("*") if p.is_file() and p.parent.name in ("cur", "new")]
    return len(files), sum(p.stat().st_size for p in files)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_once(maildir: Path, workers: int, store_texts: bool = False) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="ftsd-bench-"))
    cfg = work / "ftsd.toml"
    cfg.write_text(f'mail_location = "maildir:{maildir.parent}/%u:INDEX={work}/idx/%u"\n'
                   f'[fts]\nworkers = {workers}\nautoindex_exclude = []\n'
                   f'store_texts = {"true" if store_texts else "false"}\n')
    print(f"  ({work}, fts.store_texts = {store_texts})", file=sys.stderr)
    ftsd = [sys.executable, "-m", "ftsd"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([*ftsd, "index", "-c", str(cfg), "-u", maildir.name], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    index = work / "idx" / maildir.name / "xapian-indexes" / "ftsd.db"
    size = dir_bytes(index)
    subprocess.run([*ftsd, "optimize", "-c", str(cfg), "-u", maildir.name], check=True, stdout=subprocess.DEVNULL)
    return {
        "wall_s": wall,
        "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        # RUSAGE_CHILDREN's maxrss is the largest single process (the writer; workers are smaller)
        "peak_rss_mb": after.ru_maxrss / 1024,
        "index_mb": size / 1e6,
        "optimized_mb": dir_bytes(index) / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("maildir", type=Path)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--store-texts", choices=("off", "on", "both"), default="off",
                    help="fts.store_texts; both: off and on alternating within each run")
    args = ap.parse_args()
    count, size = mail_bytes(args.maildir)
    variants = {"off": [False], "on": [True], "both": [False, True]}[args.store_texts]
    for i, store_texts in ((i, v) for i in range(args.runs) for v in variants):
        r = run_once(args.maildir.resolve(), args.workers, store_texts)
        r |= {"messages": count, "mail_mb": size / 1e6, "msg_per_s": count / r["wall_s"], "store_texts": store_texts}
        if args.json:
            print(json.dumps(r))
            continue
        print(f"run {i + 1}: {count} messages, {size / 1e6:.1f} MB of mail, workers={args.workers or os.cpu_count()}"
              f", fts.store_texts = {str(store_texts).lower()}, load {os.getloadavg()[0]:.1f}")
        print(f"  CPU per msg  {1000 * r['cpu_s'] / count:.2f} ms")
        print(f"  index time   {r['wall_s']:.1f} s wall, {r['cpu_s']:.1f} s CPU  ->  {r['msg_per_s']:.0f} msg/s")
        print(f"  peak RSS     {r['peak_rss_mb']:.0f} MB (largest process)")
        print(f"  index size   {r['index_mb']:.1f} MB = {r['index_mb'] / r['mail_mb']:.2f}x mail; after optimize "
              f"{r['optimized_mb']:.1f} MB = {r['optimized_mb'] / r['mail_mb']:.2f}x mail")


if __name__ == "__main__":
    main()
