#!/usr/bin/env python3
"""What the short grams cost the index and what 1-2 character searches cost (issue 17: pattern terms).

    .venv/bin/python bench/bench_grams.py writer MAILDIR [--sample 2000] [--rev main] [--rounds 3]
    .venv/bin/python bench/bench_grams.py search MAILDIR [--code DIR] [--copies 7] [--repeat 3]

`writer`: a seeded sample of a Maildir parsed once, then per variant -- this worktree's ftsd/analysis.py and that
of each `--rev` (loaded as a module of its own, as bench/bench_analysis.py does) -- the terms per document (short
grams apart), the analysis CPU, and Xapian's writer alone on the same documents (Document.unserialise +
add_document, commit every 100, as /tmp/exp/writer_exp.py measured it), variants alternating in ONE process; then
the index compacted (as optimize does) against the sample's mail bytes.

`search`: the whole Maildir analysed with the ftsd of `--code` (a checkout; default this one), its documents
written `--copies` times into one mailbox (new UIDs: the corpus replicated, for latency only), then every
1-character key [a-z0-9_] and 60 seeded 2-character ones (ASCII and not) timed in-process through that checkout's
Searcher (piece + uids) for BODY, TEXT (headers + body) and SUBJECT: p50/p99 ms and the mean number of matches. Run
it once per checkout, alternating, to compare schemas. The corpora: bench/README.md.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def message_paths(maildir: Path) -> list[Path]:
    return sorted(p for p in maildir.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def writer(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    import xapian
    from bench_analysis import analysis_at
    from compare_common import timed_writes

    import ftsd.analysis
    from ftsd.indexer.pipeline import analyse_fields
    from ftsd.message import parse_message
    from ftsd.settings import Settings
    from ftsd.store.schema import build_document

    settings = Settings()
    files = random.Random(1).sample(message_paths(args.maildir), min(args.sample, len(message_paths(args.maildir))))
    raw = [p.read_bytes() for p in files]
    parsed = [parse_message(data, settings) for data in raw]
    mail = sum(map(len, raw))
    modules = {"worktree": ftsd.analysis} | {rev: analysis_at(rev) for rev in args.rev}
    docs: dict[str, list[bytes]] = {}
    counts: dict[str, tuple[float, float]] = {}
    analyse_s: dict[str, list[float]] = {name: [] for name in modules}
    for _ in range(args.rounds):
        for name, module in modules.items():
            analyzer = module.Analyzer.of(settings.fts)
            t = time.process_time()
            fields = [analyse_fields(m, analyzer) for m in parsed]
            analyse_s[name].append(time.process_time() - t)
            terms = sum(len(f.all()) for message in fields for f in message.values())
            grams = sum(len(f.grams) for message in fields for f in message.values())
            counts[name] = (terms / len(parsed), grams / len(parsed))
            docs[name] = [build_document("g" * 32, i, message, {"uid": i}).data for i, message in enumerate(fields, 1)]
    add_s: dict[str, list[float]] = {name: [] for name in modules}
    total_s: dict[str, list[float]] = {name: [] for name in modules}
    size: dict[str, int] = {}
    for _ in range(args.rounds):
        for name in modules:
            work = Path(tempfile.mkdtemp(prefix="ftsd-bench-grams-"))
            total, adding = timed_writes(work / "db", docs[name], 100)
            total_s[name].append(total)
            add_s[name].append(adding)
            xapian.Database(str(work / "db")).compact(str(work / "compact"))
            size[name] = sum(p.stat().st_size for p in (work / "compact").iterdir())
            shutil.rmtree(work)
    n = len(parsed)
    print(f"## {n} messages sampled from {args.maildir} (seed 1), {args.rounds} rounds alternating, ms CPU per "
          "message (min / median)")
    print("| variant | terms/doc | short-gram terms/doc | analysis | writer add | writer add + commit | "
          "index/mail compacted |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in modules:
        def ms(values: list[float]) -> str:
            return f"{min(values) / n * 1000:.2f} / {statistics.median(values) / n * 1000:.2f}"

        print(f"| {name} | {counts[name][0]:.0f} | {counts[name][1]:.0f} | {ms(analyse_s[name])} | "
              f"{ms(add_s[name])} | {ms(total_s[name])} | {size[name] / mail:.3f} |")


def search(args: argparse.Namespace) -> None:
    code = (args.code or ROOT).resolve()
    sys.path.insert(0, str(code))
    import xapian

    from ftsd.analysis import Analyzer
    from ftsd.indexer.pipeline import analyse_fields
    from ftsd.message import parse_message
    from ftsd.settings import Settings
    from ftsd.store import schema
    from ftsd.store.searcher import Searcher

    settings = Settings()
    analyzer = Analyzer.of(settings.fts)
    paths = message_paths(args.maildir)
    work = Path(tempfile.mkdtemp(prefix="ftsd-bench-grams-"))
    guid = "0" * 32
    try:
        db = xapian.WritableDatabase(str(work / "db"), xapian.DB_CREATE_OR_OPEN)
        db.set_metadata(schema.META_SCHEMA, schema.SCHEMA_VERSION)
        n = len(paths)
        t = time.process_time()
        for i, path in enumerate(paths, 1):
            parsed = parse_message(path.read_bytes(), settings)
            fields = analyse_fields(parsed, analyzer)
            for copy in range(args.copies):
                uid = i + copy * n
                db.add_document(xapian.Document.unserialise(build(schema, guid, uid, fields)))
            if i % 100 == 0:
                db.commit()
        db.commit()
        db.close()
        built = time.process_time() - t
        xapian.Database(str(work / "db")).compact(str(work / "compact"))
        size = sum(p.stat().st_size for p in (work / "compact").iterdir())
        searcher = Searcher(work / "compact")
        rng = random.Random(1)
        chars = "abcdefghijklmnopqrstuvwxyz0123456789_"
        keys = list(chars) + sorted(rng.sample([a + b for a in chars for b in chars], 54))
        keys += ["é", "ß", "日", "日本", "жж", "道"]
        fields_of = {"BODY": ["body"], "TEXT": ["headers", "body"], "SUBJECT": ["subject"]}
        print(f"## {code.name}: schema {schema.SCHEMA_VERSION}, {n * args.copies} messages ({args.maildir.name} "
              f"x {args.copies}), built in {built:.0f} s CPU, compacted {size / 2**20:.0f} MB")
        print("| key set | field | p50 ms | p99 ms | max ms | mean matches |")
        print("|---|---|---:|---:|---:|---:|")
        for label, subset in (("1 char", keys[:37]), ("2 chars", keys[37:])):
            for name, names in fields_of.items():
                times: list[float] = []
                matches = []
                for _ in range(args.repeat):
                    for key in subset:
                        t = time.perf_counter()
                        run = (analyzer.pieces(key).runs or (key,))[0]  # "_" alone is no ICU run: its gram
                        query = searcher.piece(names, run, 40, analyzer.partial)
                        matches.append(len(searcher.uids(query, guid)))
                        times.append((time.perf_counter() - t) * 1000)
                print(f"| {label} | {name} | {pct(times, 50):.1f} | {pct(times, 99):.1f} | {max(times):.1f} | "
                      f"{statistics.mean(matches):.0f} |")
        searcher.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build(schema: Any, guid: str, uid: int, fields: Any) -> bytes:
    return bytes(schema.build_document(guid, uid, fields, {"uid": uid}).data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["writer", "search"])
    ap.add_argument("maildir", type=Path)
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rev", action="append", default=[], help="writer: also ftsd/analysis.py of this git revision")
    ap.add_argument("--code", type=Path, help="search: the ftsd checkout to build and search with")
    ap.add_argument("--copies", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    (writer if args.what == "writer" else search)(args)


if __name__ == "__main__":
    main()
