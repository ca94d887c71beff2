#!/usr/bin/env python3
"""Where ftsd's indexing time goes, and what settings or core changes would buy (the evidence in docs/performance.md).

    .venv/bin/python bench/compare_profile.py stages MAILDIR [--sample 1000]
    .venv/bin/python bench/compare_profile.py variants MAILDIR [--repeat 2] [--only NAME,...]
    .venv/bin/python bench/compare_profile.py search-variants MAILDIR [--only baseline,partial=2]
    .venv/bin/python bench/compare_profile.py search-profile MAILDIR [--copies 16]

The benchmark corpora (SpamAssassin, openbmc) and how to unpack them: bench/README.md.

`stages`: a seeded sample of messages through the indexer's steps in ONE process, CPU time per step (read, parse,
analyse, build the Xapian document, then the real IndexWriter's work split in its steps: lexicon check, unserialise +
replace_document, commit with the lexicon flush), terms per document (words, punctuated runs, short grams), then the
top functions of a cProfile run of the same loop.

`variants`: the whole Maildir indexed from scratch once per variant and round, variants alternating, each in a fresh
process (forked workers inherit the patches): wall, CPU of the writer process (the parent: feeder + Xapian writes) and
of the worker processes, peak summed RSS/PSS of the process tree, index size raw and compacted (as optimize does,
without its lexicon rebuild). Variants are settings (`fts.workers`, `fts.commit_limit`, `fts.partial`,
`fts.max_word_chars`, `fts.header_excludes`) and monkeypatched prototypes of core changes (Received headers stripped
before parsing, per-worker shard writers merged by compaction, a fuller compaction).

`search-variants`: TEXT search latency and hit counts on indexes built with some of those variants (the compare query
set plus 1- and 2-character strings). `search-profile`: where the time of the slowest searches goes on the corpus
replicated (16 copies = 100k messages). Temp dirs are removed at the end.

Written for the suffix-term scheme (schema 1), adapted to words + lexicon (schema 2). Gone with schema 1: the
`dictionary` subcommand (whole runs per document + a suffix dictionary, the prototype schema 2 succeeded; results in
bench/results/profile-dictionary.md) and the variants that replaced Analyzer.terms ("no short grams", "whole runs ...
(prototype)"); their code is in git history before the commit "Words + lexicon instead of suffix terms". The
`full=12`/`full=16` variants went too (see VARIANTS).
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import os
import pstats
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_common import (  # noqa: E402
    TreeSampler,
    build_queries,
    ftsd_digest,
    kill_group,
    mail_stats,
    med,
    pct,
)

USER = "bench"
GUID = "0" * 32

# name -> ([fts] settings, patch name or ""). No `full` variants: schema 2 uses it only as max(full, 40) (window
# overlap, query length the index settles alone), so any full <= 40 builds the baseline's index.
VARIANTS: dict[str, tuple[dict[str, int | list[str]], str]] = {
    "baseline": ({}, ""),
    "workers=1": ({"workers": 1}, ""),
    "workers=3": ({"workers": 3}, ""),
    "commit_limit=100": ({"commit_limit": 100}, ""),
    "commit_limit=2000": ({"commit_limit": 2000}, ""),
    "partial=2": ({"partial": 2}, ""),
    "partial=4": ({"partial": 4}, ""),
    "max_word_chars=32": ({"max_word_chars": 32}, ""),
    "no Received headers (patch)": ({}, "no_received"),
    "no Received + partial=2": ({"partial": 2}, "no_received"),
    "compaction FULLER (patch)": ({}, "fuller"),
    "shard per worker (prototype)": ({}, "shards"),
    "shards + no Received + FULLER": ({}, "shards_no_received_fuller"),
    "commit_limit=500": ({"commit_limit": 500}, ""),
    "header_excludes=Received": ({"header_excludes": ["Received"]}, ""),
    "header_excludes=trace headers": ({"header_excludes": ["Received", "DKIM-*", "ARC-*", "X-*", "List-*",
                                                           "Return-Path", "Delivered-To"]}, ""),
    "partial=2 + header_excludes=Received": ({"partial": 2, "header_excludes": ["Received"]}, ""),
    "shards + partial=2 + header_excludes=Received": ({"partial": 2, "header_excludes": ["Received"]}, "shards"),
    "commit_limit=25": ({"commit_limit": 25}, ""),
    "commit_limit=50": ({"commit_limit": 50}, ""),
    "commit_limit=200": ({"commit_limit": 200}, ""),
    "partial=2 + commit_limit=100": ({"partial": 2, "commit_limit": 100}, ""),
    "no Received + partial=2 + commit_limit=100": ({"partial": 2, "commit_limit": 100}, "no_received"),
    "shards + commit_limit=100": ({"commit_limit": 100}, "shards"),
    "shards + partial=2 + commit_limit=100": ({"partial": 2, "commit_limit": 100}, "shards"),
    "shards + no Received + partial=2 + commit_limit=100": ({"partial": 2, "commit_limit": 100}, "shards_no_received"),
}


def message_paths(maildir: Path) -> list[Path]:
    return sorted(p for p in maildir.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))


# -- stages ------------------------------------------------------------------------------------------------------


def stages(maildir: Path, sample: int) -> str:
    import xapian

    from ftsd.analysis import Analyzer
    from ftsd.indexer.pipeline import analyse_fields
    from ftsd.message import parse_message
    from ftsd.settings import Settings
    from ftsd.store.schema import build_document
    from ftsd.store.writer import IndexWriter

    files = random.Random(1).sample(message_paths(maildir), sample)
    settings = Settings()
    analyzer = Analyzer.of(settings.fts)
    commit_limit = settings.fts.commit_limit
    work = Path(tempfile.mkdtemp(prefix="ftsd-profile-"))

    def loop(times: dict[str, float], counts: dict[str, int], count: bool) -> None:
        writer = IndexWriter(work / f"db{len(os.listdir(work))}", lock_timeout_s=settings.fts.lock_timeout_s,
                             commit_limit=commit_limit, batch_bytes=settings.fts.batch_bytes)
        clock = time.process_time
        for i, path in enumerate(files, 1):
            t0 = clock()
            raw = path.read_bytes()
            t1 = clock()
            parsed = parse_message(raw, settings)
            t2 = clock()
            terms = analyse_fields(parsed, analyzer)
            t3 = clock()
            parts = [dataclasses.astuple(p) for p in parsed.parts]
            doc = build_document(GUID, i, terms, {"uid": i, "file": path.name, "size": len(raw), "parts": parts})
            t4 = clock()
            # IndexWriter.add in its two steps, timed apart: the lexicon check is the writer's schema 2 cost
            writer.lexicon.add(doc.lexicon)
            t5 = clock()
            writer.db.add_document(xapian.Document.unserialise(doc.data))  # IndexWriter.add, as sync does
            t6 = clock()
            if i % commit_limit == 0:  # as indexer/sync.py does; commit() also flushes the lexicon
                writer.commit()
            t7 = clock()
            for name, seconds in (("read", t1 - t0), ("parse + decode", t2 - t1), ("analyse", t3 - t2),
                                  ("build document", t4 - t3), ("writer: lexicon check", t5 - t4),
                                  ("writer: unserialise + add", t6 - t5), ("writer: commit", t7 - t6)):
                times[name] = times.get(name, 0.0) + seconds
            if not count:
                continue
            counts["bytes"] = counts.get("bytes", 0) + len(raw)
            counts["lexicon"] = counts.get("lexicon", 0) + sum(text.count("\n") + 1 for _, text in doc.lexicon)
            for fieldname, field_terms in terms.items():
                for key, n in (("terms", len(field_terms.all())), (f"terms.{fieldname}", len(field_terms.all())),
                               ("words", len(field_terms.words)), ("chunks", len(field_terms.chunks)),
                               ("grams", len(field_terms.grams))):
                    counts[key] = counts.get(key, 0) + n
        t = time.process_time()
        writer.commit()
        writer.db.close()  # everything is committed: closing the IndexWriter would only commit nothing again
        times["writer: commit"] = times.get("writer: commit", 0.0) + time.process_time() - t

    try:
        times: dict[str, float] = {}
        counts: dict[str, int] = {}
        loop(times, counts, True)
        total = sum(times.values())
        out = [f"## Indexer stages, one process, {sample} messages sampled from {maildir} (seed 1; commit every "
               f"{commit_limit} documents; ftsd source digest {ftsd_digest()})", "",
               "| step | CPU s | ms/message | share |", "|---|---:|---:|---:|"]
        for name, seconds in times.items():
            out.append(f"| {name} | {seconds:.2f} | {seconds / sample * 1000:.2f} | {seconds / total:.0%} |")
        out.append(f"| **total** | {total:.2f} | {total / sample * 1000:.2f} | {sample / total:.0f} msg/s "
                   "on one core |")
        per_field = ", ".join(f"{k.split('.')[1]} {v / sample:.0f}" for k, v in counts.items()
                              if k.startswith("terms."))
        out += ["", f"{counts['terms'] / sample:.0f} distinct terms per document ({per_field}): "
                f"{counts['words'] / sample:.0f} words, {counts['chunks'] / sample:.0f} chunks with punctuation, "
                f"{counts['grams'] / sample:.0f} 1..partial-1 character grams; {counts['lexicon'] / sample:.0f} "
                f"lexicon entries per document handed to the writer; {counts['bytes'] / sample:.0f} bytes per "
                "message.", ""]
        profiler = cProfile.Profile()
        profiler.enable()
        loop({}, {}, False)
        profiler.disable()
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(22)
        body = buf.getvalue()
        body = body[body.index("   ncalls"):] if "   ncalls" in body else body
        out += ["cProfile of the same loop, top functions by own time:", "", "```", body.rstrip(), "```", ""]
        return "\n".join(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- variants ----------------------------------------------------------------------------------------------------

_RECEIVED = re.compile(rb"^Received:.*\n(?:[ \t].*\n)*", re.MULTILINE | re.IGNORECASE)


def _strip_received(raw: bytes) -> bytes:
    end = raw.find(b"\n\n")
    end = len(raw) if end < 0 else end + 1
    return _RECEIVED.sub(b"", raw[:end]) + raw[end:]


def apply_patch(patch: str) -> None:
    """Monkeypatch ftsd before the worker pool forks (the workers inherit it)."""
    from ftsd import message
    from ftsd.indexer import pipeline, pool

    if hasattr(pool, "_start_method"):
        pool._start_method = "fork"  # the patches below reach the workers only through fork

    if "no_received" in patch:
        original = message.parse_message

        def parse(raw: bytes, settings: Any, **kw: Any) -> Any:
            return original(_strip_received(raw), settings, **kw)

        pipeline.parse_message = parse  # type: ignore[attr-defined]  # the name the pipeline calls


def compact(path: Path, fuller: bool) -> int:
    import xapian

    tmp = path.with_name(path.name + ".compact")
    db = xapian.Database(str(path))
    db.compact(str(tmp), xapian.DBCOMPACT_NO_RENUMBER | (xapian.Compactor.FULLER if fuller else 0))
    db.close()
    shutil.rmtree(path)
    tmp.rename(path)
    return dir_bytes(path)


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _shard_worker(args: tuple[str, list[tuple[int, str]], Any]) -> float:
    """Prototype: one worker parses, analyses and writes its own shard (documents and lexicon, through the real
    IndexWriter); returns its CPU seconds."""
    from ftsd.indexer import pipeline
    from ftsd.store.writer import IndexWriter

    shard, items, settings = args
    commit_limit = settings.fts.commit_limit
    with IndexWriter(Path(shard), lock_timeout_s=settings.fts.lock_timeout_s, commit_limit=commit_limit,
                     batch_bytes=settings.fts.batch_bytes) as writer:
        for n, (uid, path) in enumerate(items, 1):
            # index_message calls pipeline.parse_message, which apply_patch() may have replaced in the parent
            outcome = pipeline.index_message(GUID, uid, Path(path), settings)
            if outcome.document is not None:
                writer.replace(GUID, uid, outcome.document)
            if n % commit_limit == 0:
                writer.commit()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return float(usage.ru_utime + usage.ru_stime)


def shards_index(maildir: Path, work: Path, settings: Any, fuller: bool) -> tuple[int, int]:
    """Prototype: N worker processes each write a shard, then one compaction merges them. (raw, merged) bytes."""
    import multiprocessing

    import xapian

    workers = settings.fts.workers or os.cpu_count() or 1
    items = [(uid, str(p)) for uid, p in enumerate(message_paths(maildir), 1)]
    chunks = [items[i::workers] for i in range(workers)]
    shards = [str(work / f"shard{i}") for i in range(workers)]
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.map(_shard_worker, [(s, c, settings) for s, c in zip(shards, chunks, strict=True)])
    raw = sum(dir_bytes(Path(s)) for s in shards)
    # Lexicon chunk keys are unique per shard, so the merge keeps every shard's lexicon (an entry new to several
    # shards is listed several times, as after several commits: the reader copes with that).
    merged = xapian.Database(shards[0])
    for s in shards[1:]:
        merged.add_database(xapian.Database(s))
    out = work / "merged.db"
    merged.compact(str(out), xapian.Compactor.FULLER if fuller else 0)
    merged.close()
    return raw, dir_bytes(out)


def run_variant(name: str, maildir: Path, work: Path) -> dict[str, float]:
    """Inside a fresh process: index the Maildir with this variant; wall, CPU (self/children), sizes."""
    from ftsd import service
    from ftsd.settings import load_settings

    fts, patch = VARIANTS[name]
    apply_patch(patch)  # also for "": pins the fork start method
    config = work / "ftsd.toml"  # the Maildir itself: ftsd refuses a mail directory reached through a symlink
    config.write_text(f'mail_location = "maildir:{maildir.resolve()}:INDEX={work}/index/%u"\n'
                      "[fts]\nautoindex_exclude = []\n"
                      + "".join(f"{k} = {json.dumps(v)}\n" for k, v in fts.items()))
    settings = load_settings(config)
    start = time.perf_counter()
    if "shards" in patch:
        raw, optimized = shards_index(maildir, work, settings, "fuller" in patch)
        indexed = len(message_paths(maildir))
    else:
        report = service.index_users(settings, [USER])
        indexed = report.indexed
    wall = time.perf_counter() - start
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    if "shards" not in patch:
        db = work / "index" / USER / "xapian-indexes" / "ftsd.db"
        raw = dir_bytes(db)
        optimized = compact(db, "fuller" in patch)
    return {"wall_s": wall, "writer_cpu_s": me.ru_utime + me.ru_stime, "workers_cpu_s": kids.ru_utime + kids.ru_stime,
            "raw_bytes": raw, "optimized_bytes": optimized, "indexed": indexed}


def variants(maildir: Path, repeat: int, only: list[str], timeout_s: float) -> str:
    names = [n for n in VARIANTS if not only or n in only]
    messages, mail_bytes = mail_stats(maildir)
    results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
    for round_no in range(repeat):
        order = names if round_no % 2 == 0 else names[::-1]
        for name in order:
            work = Path(tempfile.mkdtemp(prefix="ftsd-variant-"))
            proc = subprocess.Popen([sys.executable, __file__, "_variant", name, str(maildir), str(work)],
                                    stdout=subprocess.PIPE, text=True, start_new_session=True)
            sampler = TreeSampler(proc.pid)
            sampler.start()
            try:
                stdout, _ = proc.communicate(timeout=timeout_s)
                row = json.loads(stdout.strip().splitlines()[-1]) if proc.returncode == 0 else None
            except subprocess.TimeoutExpired:
                row = None
            finally:
                sampler.stop()
                kill_group(proc.pid)
                proc.wait()
                shutil.rmtree(work, ignore_errors=True)
            if row is None:  # one broken variant must not lose the others' numbers
                print(f"round {round_no + 1} {name}: FAILED ({proc.returncode})", file=sys.stderr)
                continue
            row |= {"rss_mb": sampler.peak_rss_kb / 1024, "pss_mb": sampler.peak_pss_kb / 1024}
            results[name].append(row)
            print(f"round {round_no + 1} {name}: {json.dumps(row)}", file=sys.stderr)
    load = os.getloadavg()
    out = [f"## Variants: {maildir}, {messages:,} messages, {mail_bytes / 1e6:.1f} MB; medians of {repeat} round(s), "
           f"variants alternating; load average at the end {load[0]:.1f}; ftsd source digest {ftsd_digest()}", "",
           "| variant | wall s | msg/s | CPU s total | writer CPU s | workers CPU s | CPU ms/msg | peak RSS / PSS MB "
           "(tree) | index MB raw | index MB optimized | index / mail | size vs baseline | CPU vs baseline |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    base = results.get("baseline")

    def m(rows: list[dict[str, float]], key: str | Callable[[dict[str, float]], float]) -> float:
        return med([key(r) if callable(key) else r[key] for r in rows])

    def cpu(r: dict[str, float]) -> float:
        return r["writer_cpu_s"] + r["workers_cpu_s"]

    for name in names:
        rows = results[name]
        if not rows:
            out.append(f"| {name} | failed |" + " |" * 11)
            continue
        size, total = m(rows, "optimized_bytes"), m(rows, cpu)
        vs_size = f"{size / m(base, 'optimized_bytes') - 1:+.0%}" if base else ""
        vs_cpu = f"{total / m(base, cpu) - 1:+.0%}" if base else ""
        out.append(f"| {name} | {m(rows, 'wall_s'):.1f} | {messages / m(rows, 'wall_s'):.0f} | {total:.1f} "
                   f"| {m(rows, 'writer_cpu_s'):.1f} | {m(rows, 'workers_cpu_s'):.1f} | {total / messages * 1e3:.2f} "
                   f"| {max(r['rss_mb'] for r in rows):.0f} / {max(r['pss_mb'] for r in rows):.0f} "
                   f"| {m(rows, 'raw_bytes') / 1e6:.1f} | {size / 1e6:.1f} | {size / mail_bytes:.2f} | {vs_size} "
                   f"| {vs_cpu} |")
    return "\n".join(out) + "\n"


# -- search variants ---------------------------------------------------------------------------------------------


def _index_with(maildir: Path, work: Path, variant: str) -> dict[str, float]:
    """Index in a fresh process (apply_patch there), as the variants do."""
    proc = subprocess.run([sys.executable, __file__, "_variant", variant, str(maildir), str(work)],
                          capture_output=True, text=True, check=True, timeout=3600)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


SHORT_QUERIES = {
    "1 char": ["a", "e", "s", "q", "z", "x", "7", "0"],
    "2 chars": ["th", "he", "in", "er", "an", "re", "on", "at", "st", "ng", "zq", "qx", "xj", "vk", "uu", "yy"],
}


def search_variants(maildir: Path, names: list[str]) -> str:
    """TEXT search latency on the INBOX (in-process, autoindex off) on indexes built with other settings: the
    compare query set plus 1- and 2-character strings, whose cost depends on `fts.partial`."""
    from ftsd import service
    from ftsd.query import parse_query
    from ftsd.settings import load_settings

    queries = build_queries(maildir, 50)
    cats = {**queries.categories(True), **SHORT_QUERIES}
    work = Path(tempfile.mkdtemp(prefix="ftsd-search-variants-"))
    rows = ["| variant | " + " | ".join(f"{c} p50 / p99 ms" for c in cats) + " |", "|---|" + "---:|" * len(cats)]
    hits: dict[str, dict[str, list[int]]] = {}
    try:
        for number, name in enumerate(names):
            home = work / f"v{number}"
            home.mkdir()
            _index_with(maildir, home, name)
            settings = load_settings(home / "ftsd.toml")
            cells = []
            hits[name] = {}
            for cat, qs in cats.items():
                for q in qs[:3]:
                    service.search(settings, USER, ["INBOX"], parse_query(f"TEXT {q}"), autoindex=False)
                times = []
                for q in qs:
                    t = time.perf_counter()
                    result = service.search(settings, USER, ["INBOX"], parse_query(f"TEXT {q}"), autoindex=False)
                    times.append((time.perf_counter() - t) * 1000)
                    hits[name].setdefault(cat, []).append(len(result[0].uids))
                cells.append(f"{med(times):.2f} / {pct(times, 99):.1f}")
            rows.append(f"| {name} | " + " | ".join(cells) + " |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    first = hits[names[0]]
    same = all(h == first for h in hits.values())
    return "\n".join([f"## Search latency by index variant ({maildir}, INBOX, `TEXT string`, in-process; "
                      f"ftsd source digest {ftsd_digest()})", "", *rows, "",
                      f"Same hit counts for every query in every variant: {'yes' if same else 'NO'}. "
                      f"1 char: {' '.join(SHORT_QUERIES['1 char'])}; 2 chars: {' '.join(SHORT_QUERIES['2 chars'])}."
                      ]) + "\n"


def _fast_uids() -> Callable[..., set[int]]:
    """Prototype of a cheaper Searcher.uids: the match spy's values read through the raw SWIG calls (no Python
    wrapper object per hit), and when a query matches more than half of the mailbox, its complement is enumerated
    instead (UIDs = all indexed UIDs - complement)."""
    import xapian

    from ftsd.store import schema

    raw = xapian._xapian

    def collect(db: Any, query: Any, mailbox: Any) -> tuple[int, Any]:
        enquire = xapian.Enquire(db)
        enquire.set_query(xapian.Query(xapian.Query.OP_FILTER, query, mailbox))
        enquire.set_weighting_scheme(xapian.BoolWeight())
        spy = xapian.ValueCountMatchSpy(schema.SLOT_UID)
        enquire.add_matchspy(spy)
        mset = enquire.get_mset(0, 0, db.get_doccount())
        return int(mset.get_matches_estimated()), spy

    def values(spy: Any) -> set[int]:
        out: set[int] = set()
        add, get, nxt, eq = out.add, raw._TermIterator_get_term, raw._TermIterator___next__, raw._TermIterator_equals
        it, end = raw.ValueCountMatchSpy_values_begin(spy), raw.ValueCountMatchSpy_values_end(spy)
        while not eq(it, end):
            add(int(get(it)))
            nxt(it)
        return out

    def uids(self: Any, query: Any, guid: str) -> set[int]:
        mailbox = xapian.Query(schema.mailbox_term(guid))
        count, spy = collect(self.db, query, mailbox)
        total = self.db.get_termfreq(schema.mailbox_term(guid))
        if query is xapian.Query.MatchAll or count <= total // 2:
            return values(spy)
        _, rest = collect(self.db, xapian.Query(xapian.Query.OP_AND_NOT, xapian.Query.MatchAll, query), mailbox)
        indexed: set[int] = self.indexed_uids(guid)
        return indexed - values(rest)

    return uids


def search_profile(maildir: Path, copies: int) -> str:
    """`TEXT word` over all mailboxes of the corpus replicated `copies` times (make-maildir.py replicate): latency per
    category, then a cProfile of the 10 slowest queries (where the time of a slow search goes)."""
    from ftsd import service
    from ftsd.query import parse_query
    from ftsd.settings import load_settings

    work = Path(tempfile.mkdtemp(prefix="ftsd-search-profile-"))
    try:
        subprocess.run([sys.executable, "/work/shared/tools/make-maildir.py", "replicate", str(maildir),
                        str(work / "mail" / USER), "--times", str(copies)], check=True, stdout=subprocess.DEVNULL,
                       timeout=3600)
        config = work / "ftsd.toml"
        config.write_text(f'mail_location = "maildir:{work}/mail/%u:INDEX={work}/index/%u"\n'
                          "[fts]\nautoindex_exclude = []\n")
        subprocess.run([sys.executable, "-m", "ftsd", "index", "-c", str(config), "-u", USER], check=True,
                       timeout=7200, stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, "-m", "ftsd", "optimize", "-c", str(config), "-u", USER], check=True,
                       timeout=3600, stdout=subprocess.DEVNULL)
        settings = load_settings(config)
        messages, _ = mail_stats(work / "mail" / USER)
        queries = build_queries(maildir, 50)
        timed: list[tuple[float, str, int]] = []
        rows = ["| strings | p50 ms | p99 ms | median hits |", "|---|---:|---:|---:|"]
        for cat, qs in queries.categories(True).items():
            for q in qs[:3]:
                service.search(settings, USER, ["*"], parse_query(f"TEXT {q}"), autoindex=False)
            times, hits = [], []
            for q in qs:
                t = time.perf_counter()
                result = service.search(settings, USER, ["*"], parse_query(f"TEXT {q}"), autoindex=False)
                times.append((time.perf_counter() - t) * 1000)
                hits.append(sum(len(r.uids) for r in result))
                timed.append((times[-1], q, hits[-1]))
            rows.append(f"| {cat} | {med(times):.2f} | {pct(times, 99):.1f} | {med(hits):.0f} |")
        from ftsd.store.searcher import Searcher

        original = Searcher.uids
        Searcher.uids = _fast_uids()  # type: ignore[method-assign]
        rows += ["", "Prototype Searcher.uids (raw match-spy iteration + complement above half the mailbox), same "
                 "queries:", "", "| strings | p50 ms | p99 ms | same hits as now |", "|---|---:|---:|---:|"]
        for cat, qs in queries.categories(True).items():
            times, same = [], 0
            for q in qs:
                t = time.perf_counter()
                result = service.search(settings, USER, ["*"], parse_query(f"TEXT {q}"), autoindex=False)
                times.append((time.perf_counter() - t) * 1000)
                Searcher.uids = original  # type: ignore[method-assign]
                now = service.search(settings, USER, ["*"], parse_query(f"TEXT {q}"), autoindex=False)
                Searcher.uids = _fast_uids()  # type: ignore[method-assign]
                same += [r.uids for r in result] == [r.uids for r in now]
            rows.append(f"| {cat} | {med(times):.2f} | {pct(times, 99):.1f} | {same}/{len(qs)} |")
        Searcher.uids = original  # type: ignore[method-assign]
        slowest = sorted(timed, reverse=True)[:10]
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(3):
            for _, q, _ in slowest:
                service.search(settings, USER, ["*"], parse_query(f"TEXT {q}"), autoindex=False)
        profiler.disable()
        buf = io.StringIO()
        pstats.Stats(profiler, stream=buf).sort_stats("tottime").print_stats(15)
        body = buf.getvalue()
        body = body[body.index("   ncalls"):] if "   ncalls" in body else body
        return "\n".join([
            f"## Search profile: {maildir} x{copies} = {messages:,} messages, `TEXT word` over all mailboxes "
            f"(in-process, autoindex off; ftsd source digest {ftsd_digest()})", "", *rows, "",
            "10 slowest: " + ", ".join(f"{q} ({ms:.0f} ms, {h:,} hits)" for ms, q, h in slowest), "",
            "cProfile of those 10 queries x 3, top functions by own time:", "", "```", body.rstrip(), "```", ""])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("stages")
    p.add_argument("maildir", type=Path)
    p.add_argument("--sample", type=int, default=1000)
    p = sub.add_parser("variants")
    p.add_argument("maildir", type=Path)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--only", default="", help="comma-separated variant names")
    p.add_argument("--timeout", type=float, default=1200, help="time limit of one variant run, seconds")
    p = sub.add_parser("search-variants")
    p.add_argument("maildir", type=Path)
    p.add_argument("--only", default="baseline,partial=2,commit_limit=100", help="comma-separated variant names")
    p = sub.add_parser("search-profile")
    p.add_argument("maildir", type=Path)
    p.add_argument("--copies", type=int, default=16)
    p = sub.add_parser("_variant")  # internal: one variant in this process
    p.add_argument("name")
    p.add_argument("maildir", type=Path)
    p.add_argument("work", type=Path)
    args = parser.parse_args(argv)
    if args.command == "stages":
        print(stages(args.maildir.resolve(), args.sample))
    elif args.command == "search-variants":
        print(search_variants(args.maildir.resolve(), [n for n in args.only.split(",") if n]))
    elif args.command == "search-profile":
        print(search_profile(args.maildir.resolve(), args.copies))
    elif args.command == "variants":
        print(variants(args.maildir.resolve(), args.repeat, [n for n in args.only.split(",") if n], args.timeout))
    else:
        print(json.dumps(run_variant(args.name, args.maildir.resolve(), args.work)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
