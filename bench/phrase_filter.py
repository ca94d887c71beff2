#!/usr/bin/env python3
"""What a per-message filter of *space windows* would save phrase searches, and what it would cost the index.
A prototype measurement, not a feature: nothing here is used by ftsd.

A phrase (a search string with spaces) is narrowed today by its pieces (every matching message holds each piece
inside a stored word or chunk) and then checked against the message text. The filter: for every space of the
normalised text T of a message (the text TEXT is checked against: searchable(normalise(headers + "\\n" + body))),
the item `a[-3:] + " " + b[:3]` of the chunks a, b on either side (T.split(" ")), stored as a Bloom filter of
BITS bits per distinct item, K hash functions, per message. A phrase q with parts p0 .. pn (q.split(" ")) contains,
for each space between p_i and p_i+1, the item p_i[-3:] + " " + p_i+1[:3], as long as p_i is a middle part or has
>= 3 characters (p0 is only a suffix of a chunk of T) and p_i+1 is a middle part or has >= 3 characters (pn is
only a prefix): a message whose filter lacks one of these items cannot match (exact), one that has them all is
still checked (false positives of the Bloom filter and of the 3-character windows).

    .venv/bin/python bench/phrase_filter.py MAILDIR QUERIES.json [--bits 4,8] [--k 2] [--index DB]

QUERIES.json: bench/search_latency.py's query file (its phrase categories are used). Prints per category the
median / max messages checked today (all pieces present), with the filter, and true matches; the filter's CPU
per message and its bytes per message next to the index's (--index: the Xapian index of MAILDIR).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftsd.analysis import normalise, searchable  # noqa: E402
from ftsd.maildir import read_message  # noqa: E402
from ftsd.message import parse_message  # noqa: E402
from ftsd.settings import Settings  # noqa: E402


def items_of(text: str) -> set[str]:
    chunks = text.split(" ")
    return {a[-3:] + " " + b[:3] for a, b in zip(chunks, chunks[1:], strict=False)}


def query_items(q: str) -> list[str]:
    parts = q.split(" ")
    out = []
    last = len(parts) - 1
    for i in range(last):
        a, b = parts[i], parts[i + 1]
        if (i > 0 or len(a) >= 3) and (i + 1 < last or len(b) >= 3):
            out.append(a[-3:] + " " + b[:3])
    return out


def positions(item: str, bits: int, k: int) -> list[int]:
    h = zlib.crc32(item.encode())
    h2 = zlib.adler32(item.encode()) | 1
    return [(h + i * h2) % bits for i in range(k)]


def bloom(items: set[str], bits_per_item: int, k: int) -> tuple[int, int]:
    """(bit count, bitmap as an int) of a Bloom filter of these items."""
    bits = max(64, bits_per_item * len(items))
    value = 0
    for item in items:
        for pos in positions(item, bits, k):
            value |= 1 << pos
    return bits, value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("maildir", type=Path)
    ap.add_argument("queries", type=Path)
    ap.add_argument("--bits", default="4,8")
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--index", type=Path)
    args = ap.parse_args()
    settings = Settings()
    files = sorted(p for sub in ("cur", "new") for p in (args.maildir / sub).iterdir())
    texts, cpu_items = [], 0.0
    for path in files:
        msg = read_message(path, settings.fts.max_message_bytes)
        p = parse_message(msg.data, settings, size=msg.size)
        text = searchable(normalise(p.headers + "\n" + p.body), settings.fts.max_word_chars)
        start = time.process_time()
        items = items_of(text)
        cpu_items += time.process_time() - start
        texts.append((text, items))
    widths = [int(b) for b in args.bits.split(",")]
    start = time.process_time()
    filters = {b: [bloom(items, b, args.k) for _, items in texts] for b in widths}
    cpu_bloom = (time.process_time() - start) / len(widths)
    n = len(texts)
    nitems = [len(items) for _, items in texts]
    index_bytes = sum(f.stat().st_size for f in args.index.iterdir()) if args.index else 0
    print(f"{n} messages of {args.maildir}; distinct space windows per message: median "
          f"{statistics.median(nitems):.0f}, mean {statistics.mean(nitems):.0f}; CPU per message: items "
          f"{cpu_items / n * 1000:.3f} ms, Bloom ({args.k} hashes, Python) {cpu_bloom / n * 1000:.3f} ms "
          "(the normalised whole text is not made by the indexer today: not counted).")
    for b in widths:
        size = sum(bits // 8 for bits, _ in filters[b])
        ratio = f", {size / index_bytes:.1%} of the index ({index_bytes / n:,.0f} bytes/message)" if index_bytes else ""
        print(f"- {b} bits per item: {size / n:,.0f} bytes/message{ratio}")
    queries = json.loads(args.queries.read_text())
    print("\n| category | phrases | checked today median / max | " +
          " | ".join(f"with filter {b} bits median / max" for b in widths) + " | true matches median / max |")
    print("|---|---:|---:|" + "---:|" * len(widths) + "---:|")
    for cat in [c for c in queries if c.startswith("phrase")]:
        today, true = [], []
        kept: dict[int, list[int]] = {b: [] for b in widths}
        for q in queries[cat]:
            q = normalise(q)
            pieces = [x for x in q.split(" ") if x]
            wanted = query_items(q)
            cand = [i for i, (text, _) in enumerate(texts) if all(x in text for x in pieces)]
            today.append(len(cand))
            true.append(sum(q in texts[i][0] for i in cand))
            for b in widths:
                count = 0
                for i in cand:
                    bits, value = filters[b][i]
                    if all(value >> pos & 1 for item in wanted for pos in positions(item, bits, args.k)):
                        count += 1
                kept[b].append(count)
        cols = " | ".join(f"{statistics.median(kept[b]):.0f} / {max(kept[b])}" for b in widths)
        print(f"| {cat} | {len(today)} | {statistics.median(today):.0f} / {max(today)} | {cols} | "
              f"{statistics.median(true):.0f} / {max(true)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
