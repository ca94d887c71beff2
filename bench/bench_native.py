#!/usr/bin/env python3
"""The compiled path (ftsd/_native.c) against the pure-Python fallback on whole corpora: the same terms and document
bytes for every message, and the CPU per message of each, alternating in one process.

    .venv/bin/python bench/bench_native.py check MAILDIR [MAILDIR ...]
    .venv/bin/python bench/bench_native.py time MAILDIR [--sample 2000] [--rounds 3]

`check`: every message parsed once, analysed both ways (every field's Terms compared) and its document built both
ways (bytes compared); prints the number of messages and of differences ("0 differences" is the pass).
`time`: a seeded sample parsed once, then per round analyse + build document with the compiled path and with the
fallback, alternating; CPU ms/message of each stage (median over rounds).
For the whole indexer, run bench/bench_index.py with FTSD_NATIVE=0 (fallback) and without, alternating.
The corpora (SpamAssassin, openbmc) and how to unpack them: bench/README.md.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

from ftsd import analysis
from ftsd.analysis import NATIVE, Analyzer, Terms
from ftsd.indexer.pipeline import analyse_fields
from ftsd.message import ParsedMessage, parse_message
from ftsd.settings import Settings
from ftsd.store.schema import build_document

GUID = "0" * 32


def message_paths(maildir: Path) -> list[Path]:
    return sorted(p for p in maildir.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))


def analyzers(settings: Settings) -> tuple[Analyzer, Analyzer]:
    fts = settings.fts
    return (Analyzer(partial=fts.partial, full=fts.full, max_word_chars=fts.max_word_chars, native=True),
            Analyzer(partial=fts.partial, full=fts.full, max_word_chars=fts.max_word_chars, native=False))


def analyse(parsed: ParsedMessage, analyzer: Analyzer) -> dict[str, Terms]:
    """analyse_fields, with normalise/searchable (switched per process by FTSD_NATIVE) on the analyzer's path."""
    analysis.NATIVE = analyzer.native
    try:
        return analyse_fields(parsed, analyzer)
    finally:
        analysis.NATIVE = NATIVE


def check(maildirs: list[Path]) -> int:
    settings = Settings()
    fast, slow = analyzers(settings)
    messages = differences = 0
    for maildir in maildirs:
        for path in message_paths(maildir):
            parsed = parse_message(path.read_bytes(), settings)
            ours, theirs = analyse(parsed, fast), analyse(parsed, slow)
            messages += 1
            same = ours == theirs
            if same:
                same = (build_document(GUID, messages, ours, {}, native=True)
                        == build_document(GUID, messages, ours, {}, native=False))
            if not same:
                differences += 1
                fields = [name for name in ours if ours[name] != theirs.get(name)]
                print(f"differs: {path} {fields or 'document bytes'}")
    print(f"{messages} messages, {differences} differences")
    return 1 if differences else 0


def timed(parsed: list[ParsedMessage], analyzer: Analyzer, native: bool) -> tuple[float, float]:
    clock = time.process_time
    analyse = build = 0.0
    analysis.NATIVE = native
    for uid, message in enumerate(parsed, 1):
        t0 = clock()
        terms: dict[str, Terms] = analyse_fields(message, analyzer)
        t1 = clock()
        build_document(GUID, uid, terms, {"uid": uid}, native=native)
        build += clock() - t1
        analyse += t1 - t0
    analysis.NATIVE = NATIVE
    return analyse, build


def timing(maildir: Path, sample: int, rounds: int) -> int:
    settings = Settings()
    fast, slow = analyzers(settings)
    paths = message_paths(maildir)
    paths = random.Random(1).sample(paths, min(sample, len(paths)))
    parsed = [parse_message(p.read_bytes(), settings) for p in paths]
    results: dict[str, list[tuple[float, float]]] = {"compiled": [], "python": []}
    for _ in range(rounds):
        results["compiled"].append(timed(parsed, fast, True))
        results["python"].append(timed(parsed, slow, False))
    n = len(parsed)
    print(f"{n} messages sampled from {maildir} (seed 1), {rounds} rounds alternating, CPU ms/message (median)")
    print("| path | analyse | build document | both |")
    print("|---|---:|---:|---:|")
    for name, runs in results.items():
        a = statistics.median(r[0] for r in runs) * 1000 / n
        b = statistics.median(r[1] for r in runs) * 1000 / n
        print(f"| {name} | {a:.3f} | {b:.3f} | {a + b:.3f} |")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check")
    c.add_argument("maildirs", type=Path, nargs="+")
    t = sub.add_parser("time")
    t.add_argument("maildir", type=Path)
    t.add_argument("--sample", type=int, default=2000)
    t.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if not NATIVE:
        print("ftsd._native is not built (or FTSD_NATIVE=0): run ./scripts/setup", file=sys.stderr)
        return 2
    if args.command == "check":
        return check(args.maildirs)
    return timing(args.maildir, args.sample, args.rounds)


if __name__ == "__main__":
    sys.exit(main())
