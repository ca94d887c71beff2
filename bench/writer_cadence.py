#!/usr/bin/env python3
"""The writer's commit cadence, in one process: every message of a Maildir is parsed, analysed and built into its
document once (cached in --cache), then the same documents are written through IndexWriter (lexicon included) with
each cadence in turn, the order rotating over --rounds. A cadence is `n=100` (commit every 100 documents, as
fts.commit_limit) or `terms=60000` (commit when the documents since the last commit hold that many terms: a
term-count limit, measured and not kept) or both (`n=200,terms=60000`); `seen=100000` sets the lexicon writer's
SEEN_LIMIT; `ref=1` writes with the LexiconWriter of git ref --lexicon-ref (ftsd/store/lexicon.py as it was there).
Prints the writer's CPU ms per message (add, commit, total: medians) and the index size raw and after compaction
(the RSS growth on stderr is only meaningful for a process's first run: later runs reuse what the first freed;
bench/memory.py measures memory).

    .venv/bin/python bench/writer_cadence.py /tmp/corpus/sa/corpus-a [--rounds 3] [n=25 n=50 n=100 terms=60000 ...]

Standalone: not collected by pytest. The machine's load inflates all cadences alike: compare within one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import xapian

from ftsd.analysis import Analyzer
from ftsd.indexer.pipeline import analyse_fields
from ftsd.message import parse_message
from ftsd.settings import Settings
from ftsd.store import lexicon
from ftsd.store import writer as writer_module
from ftsd.store.schema import Document, build_document
from ftsd.store.writer import IndexWriter

GUID = "0" * 32
SEEN_LIMIT = lexicon.SEEN_LIMIT
REPO = Path(__file__).resolve().parents[1]
OURS = lexicon.LexiconWriter


def lexicon_of(ref: str) -> Any:
    """The LexiconWriter class of ftsd/store/lexicon.py at git ref `ref` (loaded as a module of its own)."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:ftsd/store/lexicon.py"], check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="ftsd-lexicon-")) / "lexicon_ref.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("lexicon_ref", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shutil.rmtree(path.parent)  # loaded: the copy is no longer needed
    return module


def documents(maildir: Path, cache: Path | None) -> list[Document]:
    if cache is not None and cache.exists():
        with open(cache, "rb") as f:
            docs: list[Document] = pickle.load(f)
            return docs
    files = sorted(p for p in maildir.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))
    settings = Settings()
    analyzer = Analyzer.of(settings.fts)
    docs = []
    for uid, path in enumerate(files, 1):
        raw = path.read_bytes()
        parsed = parse_message(raw, settings, size=len(raw))
        parts = [dataclasses.astuple(p) for p in parsed.parts]
        data = {"uid": uid, "file": path.name, "size": len(raw), "parts": parts}
        docs.append(build_document(GUID, uid, analyse_fields(parsed, analyzer), data))
    if cache is not None:
        with open(cache, "wb") as f:
            pickle.dump(docs, f, protocol=pickle.HIGHEST_PROTOCOL)
    return docs


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run(docs: list[Document], counts: list[int], cadence: dict[str, int], ref: Any) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="ftsd-cadence-"))
    limit, terms_limit = cadence.get("n", 1 << 30), cadence.get("terms", 1 << 62)
    lexicon.SEEN_LIMIT = cadence.get("seen", SEEN_LIMIT)
    setattr(writer_module, "LexiconWriter", ref.LexiconWriter if cadence.get("ref") else OURS)  # noqa: B010
    base = _rss_kb()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], _rss_kb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    add = commit = 0.0
    commits = 0
    try:
        db = work / "db"
        with IndexWriter(db, lock_timeout_s=5, commit_limit=1 << 30, batch_bytes=1 << 62) as writer:
            since = terms = 0
            for doc, count in zip(docs, counts, strict=True):
                t0 = time.process_time()
                writer.add(doc)
                t1 = time.process_time()
                add += t1 - t0
                since += 1
                terms += count
                if since >= limit or terms >= terms_limit:
                    writer.commit()
                    commit += time.process_time() - t1
                    commits += 1
                    since = terms = 0
            t1 = time.process_time()
        commit += time.process_time() - t1
        stop.set()
        sampler.join()
        raw = dir_bytes(db)
        out = work / "compact"
        xapian.Database(str(db)).compact(str(out))
        return {"add_ms": add / len(docs) * 1e3, "commit_ms": commit / len(docs) * 1e3,
                "total_ms": (add + commit) / len(docs) * 1e3, "rss_mb": (peak[0] - base) / 1024,
                "raw_mb": raw / 1e6, "compact_mb": dir_bytes(out) / 1e6, "commits": commits + 1}
    finally:
        stop.set()
        shutil.rmtree(work, ignore_errors=True)


def parse_cadence(text: str) -> dict[str, int]:
    return {key: int(value) for key, value in (item.split("=") for item in text.split(","))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("maildir", type=Path)
    ap.add_argument("cadences", nargs="*", default=["n=25", "n=50", "n=100", "n=200"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cache", type=Path, help="pickle of the built documents (made on the first run)")
    ap.add_argument("--lexicon-ref", default="main", help="the git ref whose LexiconWriter `ref=1` uses")
    args = ap.parse_intermixed_args()
    docs = documents(args.maildir.resolve(), args.cache)
    ref = lexicon_of(args.lexicon_ref) if any("ref=" in c for c in args.cadences) else None
    terms = [xapian.Document.unserialise(d.data).termlist_count() for d in docs]
    print(f"{len(docs)} documents, {statistics.mean(terms):.0f} terms each (mean), "
          f"{statistics.median(terms):.0f} median, max {max(terms)}", file=sys.stderr)
    results: dict[str, list[dict[str, float]]] = {c: [] for c in args.cadences}
    for n in range(args.rounds):
        for cadence in args.cadences[n % len(args.cadences):] + args.cadences[:n % len(args.cadences)]:
            r = run(docs, terms, parse_cadence(cadence), ref)
            results[cadence].append(r)
            print(f"round {n + 1} {cadence}: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()), file=sys.stderr)
    load = os.getloadavg()
    print(f"## Writer cadence: {args.maildir}, {len(docs):,} documents, {statistics.mean(terms):.0f} terms each; "
          f"medians of {args.rounds} rounds, order rotating; load average {load[0]:.1f}\n")
    print("| cadence | commits | add ms/msg | commit ms/msg | writer ms/msg | index MB raw | index MB compacted |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for cadence, rows in results.items():
        if not rows:
            continue

        def m(key: str, rows: list[dict[str, float]] = rows) -> float:
            return statistics.median(r[key] for r in rows)
        print(f"| {cadence} | {m('commits'):.0f} | {m('add_ms'):.2f} | {m('commit_ms'):.2f} | {m('total_ms'):.2f} "
              f"| {m('raw_mb'):.1f} | {m('compact_mb'):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
