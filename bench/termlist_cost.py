#!/usr/bin/env python3
"""What Xapian's termlist table costs ftsd: the same documents (parsed, analysed and built as the indexer does,
ahead of the timing) written by add_document + a commit every 200, into a glass database made with and without
`xapian.DB_NO_TERMLIST`, alternating in one process; then each compacted as optimize does (FULLER).

    .venv/bin/python bench/termlist_cost.py MAILDIR [--sample 2000] [--rounds 2]

Prints per variant and round: writer CPU ms per message (all, and add_document alone) and the index size over
the mail's, raw and compacted, with the termlist table's share. The lexicon (metadata) is not written here: the
sizes are the documents' alone. Without a termlist Xapian cannot delete or replace a document (ftsd would need
tombstones and a rebuild from the mail to reclaim space): this measures what that would buy, nothing more.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import shutil
import sys
import tempfile
from pathlib import Path

import xapian

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare_common import timed_writes  # noqa: E402

from ftsd.analysis import Analyzer  # noqa: E402
from ftsd.indexer.pipeline import analyse_fields  # noqa: E402
from ftsd.message import parse_message  # noqa: E402
from ftsd.settings import Settings  # noqa: E402
from ftsd.store.schema import build_document  # noqa: E402


def documents(maildir: Path, sample: int) -> tuple[list[bytes], int]:
    files = sorted(p for p in maildir.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))
    files = random.Random(1).sample(files, min(sample, len(files)))
    settings = Settings()
    analyzer = Analyzer.of(settings.fts)
    docs = []
    for uid, path in enumerate(files, 1):
        raw = path.read_bytes()
        parsed = parse_message(raw, settings)
        parts = [dataclasses.astuple(p) for p in parsed.parts]
        data = {"uid": uid, "file": path.name, "size": len(raw), "parts": parts}
        docs.append(build_document("0" * 32, uid, analyse_fields(parsed, analyzer), data).data)
    return docs, sum(p.stat().st_size for p in files)


def size(path: Path, prefix: str = "") -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.name.startswith(prefix))


def write(docs: list[bytes], mail: int, flags: int) -> str:
    work = Path(tempfile.mkdtemp(prefix="ftsd-termlist-"))
    try:
        total, adding = timed_writes(work / "db", docs, 200, flags)
        xapian.Database(str(work / "db")).compact(str(work / "compact"), xapian.Compactor.FULLER)
        raw, compact = size(work / "db"), size(work / "compact")
        termlist = size(work / "compact", "termlist")
        return (f"writer {total * 1000 / len(docs):.2f} ms/msg (add_document {adding * 1000 / len(docs):.2f}) | "
                f"raw {raw / mail:.2f}x | compacted {compact / mail:.2f}x | termlist {termlist / mail:.2f}x")
    finally:
        shutil.rmtree(work)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("maildir", type=Path)
    ap.add_argument("--sample", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    docs, mail = documents(args.maildir, args.sample)
    print(f"{len(docs)} documents of {args.maildir} ({mail / 1e6:.1f} MB of mail), Xapian {xapian.version_string()}")
    for rnd in range(1, args.rounds + 1):
        for name, flags in (("with termlist", 0), ("DB_NO_TERMLIST", xapian.DB_NO_TERMLIST)):
            print(f"round {rnd} | {name} | {write(docs, mail, flags)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
