#!/usr/bin/env python3
"""The writer's lexicon cost per message on real mail: LexiconWriter.add + flush + commit of each message's
lexicon entries (the entries bench/lexicon_real.py cached per message of a source Maildir), commit every
`--commit` messages, into a fresh database holding only the lexicon. Variants alternate in one process: `folding`
(tails folded into segments with gram pages past lexicon.TAIL_BYTES, as ftsd does) and `tail only` (never folded:
the layout before segments). CPU time per message (the machine may be loaded).

    .venv/bin/python bench/lexicon_writer.py --work /tmp/lexbench --source /tmp/corpus/openbmc/corpus-openbmc

Not collected by pytest.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lexicon_real import source_entries  # noqa: E402


def run(per_message: list[tuple[str, ...]], tail_bytes: int, commit: int, where: Path) -> tuple[float, int, int]:
    """(CPU ms per message, segments stored, bytes of the database)."""
    import xapian

    from ftsd.store import lexicon, schema

    lexicon.TAIL_BYTES = tail_bytes
    path = where / "db"
    shutil.rmtree(path, ignore_errors=True)
    db = xapian.WritableDatabase(str(path), xapian.DB_CREATE)
    writer = lexicon.LexiconWriter(db)
    groups_of = []
    for entries in per_message:
        grouped: dict[str, list[str]] = defaultdict(list)
        for e in entries:
            grouped[e[:2]].append(e[2:])
        groups_of.append(tuple((kp, "\n".join(v)) for kp, v in grouped.items()))
    t = time.process_time()
    db.begin_transaction()
    for i, groups in enumerate(groups_of, 1):
        writer.add(groups)
        if i % commit == 0:
            writer.flush()
            db.commit_transaction()
            db.begin_transaction()
    writer.flush()
    db.commit_transaction()
    cpu = time.process_time() - t
    segments = sum(1 for _ in db.metadata_keys(schema.META_LEXSEG))
    db.close()
    size = sum(f.stat().st_size for f in path.iterdir())
    return cpu * 1000 / len(per_message), segments, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=Path, action="append", required=True)
    ap.add_argument("--work", type=Path, required=True, help="where bench/lexicon_real.py cached the entries")
    ap.add_argument("--commit", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    from ftsd.store import lexicon

    folding = lexicon.TAIL_BYTES
    print("| source | messages | entry chars / msg (before the dedup) | variant | CPU ms / msg (median of rounds) "
          "| segments | database MB |\n|---|---:|---:|---|---:|---:|---:|")
    for src in args.source:
        per_message = source_entries(src, args.work)
        chars = sum(len(e) - 1 for entries in per_message for e in entries) / len(per_message)
        results: dict[str, list[tuple[float, int, int]]] = defaultdict(list)
        with tempfile.TemporaryDirectory(prefix="lexwriter-") as tmp:
            for _ in range(args.rounds):
                for name, tail in (("tail only", 1 << 62), ("folding", folding)):
                    results[name].append(run(per_message, tail, args.commit, Path(tmp)))
        for name, rows in results.items():
            print(f"| {src.name} | {len(per_message):,} | {chars:.0f} | {name} "
                  f"| {statistics.median(r[0] for r in rows):.3f} | {rows[0][1]} | {rows[0][2] / 1e6:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
