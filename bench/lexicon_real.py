#!/usr/bin/env python3
"""The lexicon of a ~100k-message mailbox of real mail: size, load time, uncached substring scans, memory.

Indexing 100k messages takes an hour on a loaded 2-core machine, and the lexicon depends only on the entries each
message brings, so this builds the lexicon a rebuilt index (`ftsd optimize`) would hold without building the
rest: every message of each source corpus goes through ftsd's own pipeline (indexer/pipeline.index_message: the
document's lexicon entries), then the mailbox is made of COPIES of each source the way bench/realmail.py makes
Maildirs: in every copy after the first, each entry that occurs in only ONE message of its source (signature
pieces, Message-IDs, hashes, rare words) becomes a new entry of the same shape (ASCII letters and digits
replaced, length and punctuation kept). So the vocabulary grows per message as the source's one-message
entries do -- an upper bound: some of those are rare words a real 100k mailbox would repeat.

The entries are stored in a fresh Xapian database exactly as store/lexicon.rebuild() stores them (segments with
gram pages; `--layout chunks`: the layout before them, one value per ~4 M characters, which the reader reads as
an unfolded tail; with `--filter`, hash-like words -- 16+ ASCII letters and digits, two of each at least -- are
left out: the trade measured in bench/results/lexicon-real-100k.md, not taken by ftsd), then read with the
current ftsd.store.lexicon.Lexicon: load time and RSS growth of a first load (fresh process per measurement),
the time of uncached lookups (`expand`, the block cache emptied before each) of in-word substrings and rare words
drawn from the sources, over the 7 TEXT fields and over BODY alone, the bytes each fetched, and the RSS after all
lookups (the cache is bounded). CPU time is given beside wall time: the machine may be loaded.

    .venv/bin/python bench/lexicon_real.py --source /tmp/corpus/openbmc/corpus-openbmc:13 \\
        --source /tmp/corpus/sa/corpus-a:10 --work /tmp/lexbench [--filter] [--tail-bytes N] [--output FILE.md]

Per-message entries are cached in WORK (entries-*.pickle) and reused by later runs. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import pickle
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_common import build_queries, pct  # noqa: E402

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"

_HASH_LIKE = re.compile(r"(?=(?:[a-z]*[0-9]){2})(?=(?:[0-9]*[a-z]){2})[a-z0-9]{16,}")


def hash_like(word: str) -> bool:
    """A word of 16+ ASCII letters and digits with at least two of each: signature and digest pieces."""
    return _HASH_LIKE.fullmatch(word) is not None


def _entries(path: Path) -> tuple[str, ...]:
    from ftsd.indexer.pipeline import index_message
    from ftsd.settings import Settings

    outcome = index_message("0" * 32, 1, path, Settings())
    if outcome.document is None:
        return ()
    entries: set[str] = set()
    for item in outcome.document.lexicon:  # (kind + prefix, newline-joined entries), or kind + prefix + entry
        if isinstance(item, tuple):
            entries.update(item[0] + e for e in item[1].split("\n") if e)
        else:
            entries.add(item)
    return tuple(sorted(entries))


def source_entries(src: Path, work: Path) -> list[tuple[str, ...]]:
    """The lexicon entries (kind + field prefix + text) of every message of a source Maildir, cached."""
    cache = work / f"entries-{hashlib.sha1(str(src).encode()).hexdigest()[:10]}.pickle"
    if cache.exists():
        return list(pickle.loads(cache.read_bytes()))
    files = sorted(p for p in src.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))
    with multiprocessing.Pool(2) as pool:
        out = pool.map(_entries, files, chunksize=50)
    cache.write_bytes(pickle.dumps(out))
    return out


def mutate(text: str, copy: int) -> str:
    rng = random.Random(hashlib.blake2b(f"{text}/{copy}".encode(), digest_size=8).digest())
    return "".join(_DIGITS[rng.randrange(10)] if c in _DIGITS else _LOWER[rng.randrange(26)] if c in _LOWER else c
                   for c in text)


def build(sources: list[tuple[Path, int]], work: Path, db_path: Path, use_filter: bool,
          layout: str, entries_from: Path | None = None) -> dict[str, object]:
    import xapian

    from ftsd.store import lexicon, schema

    kinds: dict[str, list[str]] = defaultdict(list)
    stats: dict[str, object] = {}
    messages = 0
    if entries_from is not None:  # the entries of a database an earlier run built, sorted as a rebuild lists them
        source = xapian.Database(str(entries_from))
        kinds.update({kp: sorted(e for e in entries if e) for kp, entries in lexicon.listed_entries(source).items()})
        source.close()
        messages = sum(len(source_entries(src, work)) * copies for src, copies in sources)
    for src, copies in sources if entries_from is None else ():
        per_message = source_entries(src, work)
        df: Counter[str] = Counter()
        for entries in per_message:
            df.update({e[2:] for e in entries})
        first = {e for entries in per_message for e in entries}
        once = sorted(e for e in first if df[e[2:]] == 1)
        stats[str(src)] = {"messages": len(per_message), "entries": len(first), "one-message entries": len(once)}
        for e in sorted(first):
            kinds[e[:2]].append(e[2:])
        short: set[str] = set(first)
        for copy in range(1, copies):
            for e in once:
                new = e[:2] + mutate(e[2:], copy)
                if len(new) <= 8:  # short ones may collide: keep them unique
                    if new in short:
                        continue
                    short.add(new)
                kinds[new[:2]].append(new[2:])
        messages += len(per_message) * copies
    if db_path.exists():
        shutil.rmtree(db_path)
    db = xapian.WritableDatabase(str(db_path), xapian.DB_CREATE)
    db.set_metadata(schema.META_SCHEMA, schema.SCHEMA_VERSION)
    stored = chars = 0
    cpu = time.process_time()
    every: dict[str, list[str]] = {}
    for kind_prefix, all_entries in kinds.items():
        listed = all_entries
        if use_filter:
            listed = [e for e in all_entries if kind_prefix[0] != schema.WORDS or not hash_like(e)]
        stored += len(listed)
        chars += sum(map(len, listed)) + len(listed)
        if layout == "segments":
            every[kind_prefix] = listed
            continue
        chunk: list[str] = []
        size = n = 0
        for entry in listed:
            chunk.append(entry)
            size += len(entry) + 1
            if size >= 4_000_000:
                db.set_metadata(f"{schema.META_LEXICON}{kind_prefix}.{n:08d}", "\n".join(chunk))
                chunk, size, n = [], 0, n + 1
        if chunk:
            db.set_metadata(f"{schema.META_LEXICON}{kind_prefix}.{n:08d}", "\n".join(chunk))
    if every:
        lexicon.store_kinds(db, every, messages)  # as rebuild() stores them in an index of that many messages
    db.commit()
    db.close()
    stats["store cpu s"] = round(time.process_time() - cpu, 1)
    stats["chars"] = chars
    stats["disk MB"] = round(sum(f.stat().st_size for f in db_path.iterdir()) / 1e6, 1)
    stats["messages"] = messages
    stats["entries stored"] = stored
    stats["entries before filter"] = sum(map(len, kinds.values()))
    return stats


_MEASURE = r"""
import json, sys, time, xapian
from ftsd.store import lexicon, schema
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * 4096
db = xapian.Database(sys.argv[1])
needles = json.loads(sys.argv[2])
before = rss()
t, c = time.perf_counter(), time.process_time()
lex = lexicon.Lexicon()
lex.refresh(db, [schema.WORDS + "X"])  # what a BODY search loads (each field on its first lookup)
body_load = time.perf_counter() - t
body_grown = rss() - before
lex.refresh(db)  # every kind of every field: the most a TEXT search reads
load = time.perf_counter() - t
load_cpu = time.process_time() - c
grown = rss() - before
text_fields = [schema.FIELD_PREFIXES[n] for n in ("subject", "from", "to", "cc", "bcc", "headers", "body")]
scans = {"text": [], "body": []}
cpu = {"text": [], "body": []}
fetched = {"text": [], "body": []}
hits = []
for needle in needles:
    for name, prefixes in (("text", text_fields), ("body", ["X"])):
        lex.cache.clear()
        lex._expanded = {}
        t, c = time.perf_counter(), time.process_time()
        found = lex.expand(db, schema.WORDS, prefixes, needle)
        scans[name].append((time.perf_counter() - t) * 1000)
        cpu[name].append((time.process_time() - c) * 1000)
        fetched[name].append(lex.cache.bytes / 1e6)
        if name == "text":
            hits.append(len(found))
print(json.dumps({"load_ms": load * 1000, "load_cpu_ms": load_cpu * 1000, "rss_mb": grown / 1e6,
                  "body_load_ms": body_load * 1000,
                  "body_rss_mb": body_grown / 1e6, "held_mb": lex.size() / 1e6, "scans": scans, "cpu": cpu,
                  "fetched": fetched, "hits": hits, "after_rss_mb": (rss() - before) / 1e6,
                  "by_kind": {k: f.size() for k, f in lex.fields.items()}}))
"""


def measure(db_path: Path, needles: list[str], runs: int) -> list[dict[str, object]]:
    out = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", _MEASURE, str(db_path), json.dumps(needles)], check=True,
                              capture_output=True, text=True)
        out.append(json.loads(proc.stdout))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", action="append", required=True, help="MAILDIR:COPIES")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--filter", action="store_true", help="leave hash-like words out (see hash_like)")
    ap.add_argument("--layout", choices=("segments", "chunks"), default="segments")
    ap.add_argument("--reuse", action="store_true", help="measure the database a previous run built")
    ap.add_argument("--entries-from", type=Path, help="take the entries from this lexicon database (any layout) "
                    "instead of making them from the sources (minutes)")
    ap.add_argument("--runs", type=int, default=3, help="fresh processes measuring load and scans")
    ap.add_argument("--queries", type=int, default=30, help="needles per category")
    ap.add_argument("--tail-bytes", type=int, help="lexicon.TAIL_BYTES for this build (the database is named "
                    "after it)")
    ap.add_argument("--output", type=Path)
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sources = [(Path(s.rsplit(":", 1)[0]), int(s.rsplit(":", 1)[1])) for s in args.source]
    tail = f"-tail{args.tail_bytes}" if args.tail_bytes else ""
    db_path = args.work / f"lexicon-{args.layout}{'-filtered' if args.filter else ''}{tail}.db"
    if args.tail_bytes:
        from ftsd.store import lexicon

        lexicon.TAIL_BYTES = args.tail_bytes
    t = time.perf_counter()
    saved = db_path.with_suffix(".json")
    if args.reuse and saved.exists() and db_path.exists():
        stats = json.loads(saved.read_text())
    else:
        stats = build(sources, args.work, db_path, args.filter, args.layout, args.entries_from)
        saved.write_text(json.dumps(stats))
    print(f"built in {time.perf_counter() - t:.0f} s: {json.dumps(stats)}", file=sys.stderr)
    needles: list[str] = []
    for src, _ in sources:
        q = build_queries(src, args.queries)
        needles += q.substrings + q.rare
    runs = measure(db_path, needles, args.runs)
    load = [float(r["load_ms"]) for r in runs]  # type: ignore[arg-type]
    load_cpu = [float(r.get("load_cpu_ms", 0)) for r in runs]  # type: ignore[arg-type]
    rss = [float(r["rss_mb"]) for r in runs]  # type: ignore[arg-type]
    body_load = [float(r.get("body_load_ms", 0)) for r in runs]  # type: ignore[arg-type]
    body_rss = [float(r.get("body_rss_mb", 0)) for r in runs]  # type: ignore[arg-type]
    found = [float(h) for h in runs[0]["hits"]]  # type: ignore[attr-defined]
    text = [x for r in runs for x in r["scans"]["text"]]  # type: ignore[index]
    body = [x for r in runs for x in r["scans"]["body"]]  # type: ignore[index]
    text_cpu = [x for r in runs for x in r["cpu"]["text"]]  # type: ignore[index]
    body_cpu = [x for r in runs for x in r["cpu"]["body"]]  # type: ignore[index]
    text_mb = [x for r in runs for x in r["fetched"]["text"]]  # type: ignore[index]
    body_mb = [x for r in runs for x in r["fetched"]["body"]]  # type: ignore[index]
    after = [float(r["after_rss_mb"]) for r in runs]  # type: ignore[arg-type]
    chars = float(stats["chars"])
    la = os.getloadavg()
    lines = [
        f"## bench/lexicon_real.py {args.label} (layout {args.layout}{tail}, "
        f"{'hash-like words left out' if args.filter else 'every entry'})",
        "",
        f"Sources {', '.join(f'{s} x{c}' for s, c in sources)} = {stats['messages']:,} messages; "
        f"{stats['entries stored']:,} entries stored of {stats['entries before filter']:,}; stored in "
        f"{stats['store cpu s']} s CPU, {stats['disk MB']} MB on disk; load average "
        f"{la[0]:.1f} / {la[1]:.1f} / {la[2]:.1f} on 2 CPUs. {len(needles)} needles (in-word substrings and rare "
        f"words), block cache emptied before each, {args.runs} fresh processes.",
        "",
        "| lexicon M chars | load ms, every field / BODY's words only (median of runs; CPU every field) "
        "| RSS growth MB, every "
        "field / BODY only | RSS growth after all lookups MB | scan TEXT (7 fields) p50 / p99 ms (CPU p50 / p99) "
        "| scan BODY p50 / p99 ms (CPU p50 / p99) | MB fetched per lookup TEXT / BODY p50 / p99 "
        "| median entries found |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {chars / 1e6:.1f} | {statistics.median(load):.0f} / {statistics.median(body_load):.0f} "
        f"({statistics.median(load_cpu):.0f}) "
        f"| {statistics.median(rss):.0f} / {statistics.median(body_rss):.0f} | {statistics.median(after):.0f} "
        f"| {statistics.median(text):.1f} / {pct(text, 99):.1f} ({statistics.median(text_cpu):.1f} / "
        f"{pct(text_cpu, 99):.1f}) | {statistics.median(body):.1f} / {pct(body, 99):.1f} "
        f"({statistics.median(body_cpu):.1f} / {pct(body_cpu, 99):.1f}) "
        f"| {statistics.median(text_mb):.2f} / {pct(text_mb, 99):.2f}, {statistics.median(body_mb):.2f} / "
        f"{pct(body_mb, 99):.2f} | {statistics.median(found):.0f} |",
        "",
        "Held per kind and field after the load (MB): " + ", ".join(
            f"{k} {v / 1e6:.2f}" for k, v in sorted(runs[0]["by_kind"].items())),  # type: ignore[attr-defined]
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.output:
        with args.output.open("a") as f:
            f.write(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
