#!/usr/bin/env python3
"""The floor of checking a key against kept texts (fts.store_texts), and what an index of adjacent chunk pairs
would cost: for each key, the candidates the index leaves and the CPU us per candidate of the whole search against
a bare loop (read the kept texts as kept_blobs does, decode -- inflate and check -- them, find the needle in TEXT);
then, over a sample of documents, distinct adjacent chunk pairs (of the header lines and of the body) per document
beside the terms it has today. In-process, one user's index with kept texts (bench/results/checks-s8.md).

    .venv/bin/python bench/check_floor.py CONFIG USER MAILBOX 'TEXT "the binding"' 'TEXT "value,"' --sample 1000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftsd import service  # noqa: E402
from ftsd.query import Key, parse_query  # noqa: E402
from ftsd.runtime import Runtime  # noqa: E402
from ftsd.search import CHECK_BATCH, MailboxSearch  # noqa: E402
from ftsd.settings import load_settings  # noqa: E402
from ftsd.store import schema, texts  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", type=Path)
    ap.add_argument("user")
    ap.add_argument("mailbox")
    ap.add_argument("keys", nargs="*", help="IMAP keys of one TEXT/BODY string each")
    ap.add_argument("--sample", type=int, default=1000, help="documents for the pair count (0: none)")
    args = ap.parse_args()
    settings = load_settings(args.config)
    rt = Runtime(settings)
    user = service.get_user(settings, args.user, rt)
    (box,) = service._mailboxes(rt, user, [args.mailbox])
    mark = texts.fingerprint(settings)
    with service.user_index(settings, user, rt).reader() as searcher:
        if searcher is None:
            raise SystemExit(f"{args.user}: no usable index")
        search = MailboxSearch(searcher, box.guid, set(box.messages), lambda uid: None, settings)
        indexed = searcher.indexed_uids(box.guid)
        for text in args.keys:
            node = parse_query(text)
            assert isinstance(node, Key), text
            sure, maybe = search._sets(node, indexed)
            candidates = sorted(maybe - sure)
            needle = search.pieces(node.value).text
            cpu = time.process_time()
            for start in range(0, len(candidates), CHECK_BATCH):
                for blob in searcher.kept_blobs(box.guid, candidates[start : start + CHECK_BATCH]).values():
                    kept = texts.decode(blob, settings, mark)
                    if kept is not None:
                        kept.holds("text", needle)  # the in-place find, without the search around it
            bare = time.process_time() - cpu
            cpu = time.process_time()
            service.search(settings, args.user, [args.mailbox], node, autoindex=False, runtime=rt)
            whole = time.process_time() - cpu
            each = max(1, len(candidates))
            print(f"{text}: {len(candidates)} candidates; whole search {whole * 1e6 / each:.1f} us, read + decode + "
                  f"find {bare * 1e6 / each:.1f} us per candidate")
        if args.sample:
            db, pairs, terms = searcher.db, [], []
            step = max(1, db.get_lastdocid() // args.sample)
            for docid in range(1, db.get_lastdocid() + 1, step):
                doc = db.get_document(docid)
                kept = texts.decode(doc.get_value(schema.SLOT_TEXTS), settings, mark)
                if kept is None:
                    continue
                found: set[tuple[str, str, str]] = set()
                for name in ("headers", "body"):
                    chunks = kept.field(name).split()
                    found.update((name, a, b) for a, b in zip(chunks, chunks[1:], strict=False))
                pairs.append(len(found))
                terms.append(doc.termlist_count())
            if pairs:
                print(f"{len(pairs)} documents: adjacent chunk pairs per document mean {statistics.mean(pairs):.0f}, "
                      f"median {statistics.median(pairs):.0f}; terms per document today {statistics.mean(terms):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
