#!/usr/bin/env python3
"""In-process search latency per query category, wall and CPU (time.process_time) per search, for a loaded
machine: rare/common words, in-word substrings, two-word phrases (rare and common pairs) and hyphenated strings
(`e-mail`: ICU splits them, so they are checked against the message like phrases), each as `TEXT "..."` through
ftsd.service.search with one warm Runtime (as `ftsd serve` keeps it), autoindex off.

    .venv/bin/python bench/search_latency.py draw CORPUS --n 30 > /tmp/q.json      # the queries, once
    .venv/bin/python bench/search_latency.py run CONFIG USER MAILBOX /tmp/q.json   # one pass, JSON lines out
    .venv/bin/python bench/search_latency.py compare CONFIG USER MAILBOX /tmp/q.json --root /work/main --root . \\
        --rounds 2                                                                 # alternating, markdown out
    .venv/bin/python bench/search_latency.py compare OFF.toml USER MAILBOX /tmp/q.json --root . \\
        --also-config ON.toml             # two indexes of the same mail (fts.store_texts off / on), alternating

`compare` runs `run` in a fresh process per (round, root), roots alternating, each with ROOT/.venv/bin/python
(so each root's ftsd; with --also-config, each config too), and prints per variant and category p50/p99 of wall
and CPU ms, median hits, messages checked to settle the answer (`verified`) and, of those, read from the Maildir
(`read`: the rest were checked against the texts the index keeps, fts.store_texts). Categories beyond words:
two-word phrases, hyphenated strings, punctuation at an edge (`word,`), strings over 40 characters and HEADER
keys of headers without a field of their own, all checked against the message after the index. Words are drawn
from CORPUS (a source Maildir is faster to read than the big one). Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_common import _text_of, build_queries, med, message_files, pct  # noqa: E402

_WORDS = re.compile(r"[a-z]{3,12}")
_HYPHEN = re.compile(r"\b[a-z]{1,8}-[a-z]{2,10}\b")
_EDGE = re.compile(r"(?<!\S)[a-z]{3,10}[,;:)](?!\S)")  # punctuation at a key's edge: left to the check
# a word of a header that has no field of its own: its HEADER key is looked up in the shared pool, then checked
_HEADER_WORD = re.compile(r"^(x-mailer|user-agent|list-id|in-reply-to|content-language): .*?\b([a-z]{4,12})\b",
                          re.I | re.M)
WARMUP = 5


def draw(corpus: Path, n: int, seed: int = 1) -> dict[str, list[str]]:
    """Per category the strings of `TEXT "..."` keys; `header-*` categories hold whole IMAP keys."""
    base = build_queries(corpus, n, seed)
    pairs: Counter[str] = Counter()
    hyph: Counter[str] = Counter()
    edges: Counter[str] = Counter()
    lines: list[str] = []
    headers: list[str] = []
    for path in message_files(corpus):
        raw = path.read_bytes()
        text = _text_of(raw).lower()
        seen: set[str] = set()
        for line in text.splitlines():
            words = line.split()
            for a, b in zip(words, words[1:], strict=False):
                if _WORDS.fullmatch(a) and _WORDS.fullmatch(b):
                    seen.add(f"{a} {b}")
            if len(line) >= 60 and line.isascii() and len(lines) < 5000:
                lines.append(" ".join(words))
        pairs.update(seen)
        hyph.update(set(_HYPHEN.findall(text)))
        edges.update(set(_EDGE.findall(text)))
        head = raw.split(b"\n\n", 1)[0].decode("ascii", "replace")
        for m in _HEADER_WORD.finditer(head):
            headers.append(f'HEADER {m.group(1).lower()} "{m.group(2).lower()}"')
    rng = random.Random(seed)
    by_freq = [p for p, _ in pairs.most_common(300)]
    rare = sorted(p for p, c in pairs.items() if 2 <= c <= 5)
    longs = [line[:45] for line in rng.sample(lines, min(n, len(lines)))]  # > 40 characters: always checked
    return {"rare": base.rare, "common": base.common, "substring": base.substrings,
            "phrase-common": rng.sample(by_freq, min(n, len(by_freq))),
            "phrase-rare": rng.sample(rare, min(n, len(rare))),
            "hyphenated": rng.sample([h for h, _ in hyph.most_common(200)], min(n, len(hyph))),
            "edge": rng.sample([e for e, _ in edges.most_common(300)], min(n, len(edges))),
            "long": longs,
            "header-shared": rng.sample(sorted(set(headers)), min(n, len(set(headers))))}


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run(config: str, user: str, mailbox: str, queries: dict[str, list[str]]) -> None:
    from ftsd import service
    from ftsd.errors import SearchTimeoutError
    from ftsd.query import parse_query
    from ftsd.runtime import Runtime
    from ftsd.settings import load_settings

    settings = load_settings(Path(config))
    runtime = Runtime(settings)
    boxes = [mailbox]
    for word in queries.get("rare", ["warmup"])[:WARMUP]:
        service.search(settings, user, boxes, parse_query(f"TEXT {word}x"), autoindex=False, runtime=runtime)
    order = [(cat, q) for cat, qs in queries.items() for q in qs]
    random.Random(2).shuffle(order)  # categories interleaved: a load burst hits all alike
    for cat, q in order:
        node = parse_query(q if cat.startswith("header") else f"TEXT {_quote(q)}")
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            results = service.search(settings, user, boxes, node, autoindex=False, runtime=runtime)
            hits, verified = sum(len(r.uids) for r in results), sum(r.verified for r in results)
            read = sum(getattr(r, "read", r.verified) for r in results)  # an older ftsd reads every check
        except SearchTimeoutError:  # limits.search_time_s: counted at its wall time, hits unknown (-1)
            hits, verified, read = -1, -1, -1
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(json.dumps({"cat": cat, "q": q, "hits": hits, "verified": verified, "read": read, "wall": wall * 1000,
                          "cpu": cpu * 1000}), flush=True)


def candidates(config: str, user: str, mailbox: str, queries: dict[str, list[str]], sample: int) -> None:
    """Per phrase: the messages the index leaves to check (maybe - sure), the index part's wall/CPU ms, and the
    CPU ms per check measured on `sample` of them (the whole search would read them all)."""
    from ftsd import service
    from ftsd.query import parse_query
    from ftsd.runtime import Runtime
    from ftsd.search import MailboxSearch, MaildirText
    from ftsd.settings import load_settings

    settings = load_settings(Path(config))
    rt = Runtime(settings)
    user_obj = service.get_user(settings, user, rt)
    (box,) = service._mailboxes(rt, user_obj, [mailbox])
    with service.user_index(settings, user_obj, rt).reader() as searcher:
        assert searcher is not None
        for cat, qs in queries.items():
            for q in qs:
                node = parse_query(f"TEXT {_quote(q)}")

                def texts(uid: int) -> MaildirText:
                    return MaildirText(Path(box.messages[uid]), settings, rt.texts)

                search = MailboxSearch(searcher, box.guid, set(box.messages), texts, settings, user=user)
                cpu, wall = time.process_time(), time.perf_counter()
                sure, maybe = search._sets(node, searcher.indexed_uids(box.guid))
                index_wall, index_cpu = time.perf_counter() - wall, time.process_time() - cpu
                check = sorted(maybe - sure)
                picked = random.Random(3).sample(check, min(sample, len(check)))
                cpu = time.process_time()
                found = sum(search._verify(uid, node) for uid in picked)
                per_check = (time.process_time() - cpu) / max(1, len(picked))
                print(json.dumps({"cat": cat, "q": q, "check": len(check), "index_wall": index_wall * 1000,
                                  "index_cpu": index_cpu * 1000, "check_cpu": per_check * 1000,
                                  "sample_matches": found, "sample": len(picked)}), flush=True)


def compare(args: argparse.Namespace) -> None:
    rows: dict[str, dict[str, list[dict[str, float]]]] = {}
    hits: dict[str, dict[str, int]] = {}
    script = Path(__file__).resolve()
    configs = [args.config, *(args.also_config or [])]
    for rnd in range(args.rounds):
        for root in args.root:
            for config in configs:
                root = root.resolve()
                label = f"{root} {config.name}" if len(configs) > 1 else str(root)
                cmd = [str(root / ".venv/bin/python"), str(script), "run", str(config), args.user, args.mailbox,
                       str(args.queries)]
                out = subprocess.run(cmd, cwd=root, check=True, capture_output=True, text=True).stdout
                for line in out.splitlines():
                    r = json.loads(line)
                    rows.setdefault(label, {}).setdefault(r["cat"], []).append(r)
                    prev = hits.setdefault(r["q"], r["hits"])
                    if prev != r["hits"] and -1 not in (prev, r["hits"]):
                        print(f"MISMATCH {r['q']!r}: {prev} vs {r['hits']} ({label})", file=sys.stderr)
                print(f"round {rnd + 1} {label} done, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    load = os.getloadavg()
    print(f"Load average at the end {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (2 CPUs); {args.rounds} rounds, "
          "variants alternating; every query of a category once per round.\n")
    print("| ftsd | category | queries | wall p50 ms | wall p99 ms | CPU p50 ms | CPU p99 ms | median hits | "
          "median / max checked | median / max read from the Maildir | timed out |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, cats in rows.items():
        for cat, rs in cats.items():
            wall, cpu = [r["wall"] for r in rs], [r["cpu"] for r in rs]
            done = [r for r in rs if r["hits"] >= 0]
            ver, read = [r["verified"] for r in done] or [0], [r.get("read", r["verified"]) for r in done] or [0]
            print(f"| {label} | {cat} | {len(rs)} | {med(wall):.1f} | {pct(wall, 99):.1f} | {med(cpu):.1f} | "
                  f"{pct(cpu, 99):.1f} | {med([r['hits'] for r in rs]):.0f} | {med(ver):.0f} / {max(ver):.0f} | "
                  f"{med(read):.0f} / {max(read):.0f} | {len(rs) - len(done)} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("draw")
    d.add_argument("corpus", type=Path)
    d.add_argument("--n", type=int, default=30)
    for name in ("run", "compare", "candidates"):
        p = sub.add_parser(name)
        p.add_argument("config", type=Path)
        p.add_argument("user")
        p.add_argument("mailbox")
        p.add_argument("queries", type=Path)
        if name == "compare":
            p.add_argument("--root", type=Path, action="append", required=True)
            p.add_argument("--rounds", type=int, default=2)
            p.add_argument("--also-config", type=Path, action="append",
                           help="another config (e.g. an index with fts.store_texts), alternating with CONFIG")
        if name == "candidates":
            p.add_argument("--sample", type=int, default=40, help="candidates checked to time one check")
    args = ap.parse_args()
    if args.cmd == "draw":
        json.dump(draw(args.corpus, args.n), sys.stdout, indent=0)
    elif args.cmd == "run":
        run(str(args.config), args.user, args.mailbox, json.loads(args.queries.read_text()))
    elif args.cmd == "candidates":
        candidates(str(args.config), args.user, args.mailbox, json.loads(args.queries.read_text()), args.sample)
    else:
        compare(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
