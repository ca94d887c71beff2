#!/usr/bin/env python3
"""Helper of bench/compare that runs inside ftsd's virtualenv (bench/compare itself needs only the standard library).

    .venv/bin/python bench/compare_inproc.py search CONFIG USER MAILBOX < queries.json   # ftsd in-process latency
    .venv/bin/python bench/compare_inproc.py doccount DB...                               # documents in Xapian DBs

`search` reads a JSON list of words on stdin, warms the index up with a few of them, then runs each word once as
`TEXT word` through ftsd.service.search(..., autoindex=False) with one Runtime (as a warm service keeps it) and
prints one JSON object: {"results": [[word, hits, wall_ms, cpu_ms], ...]}. `doccount` prints the total document
count of the given Xapian databases (used to check how many messages fts-xapian really indexed).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

WARMUP = 5


def search(config: str, user: str, mailbox: str, words: list[str]) -> list[tuple[str, int, float, float]]:
    from ftsd import service
    from ftsd.query import parse_query
    from ftsd.runtime import Runtime
    from ftsd.settings import load_settings

    settings = load_settings(Path(config))
    runtime = Runtime(settings)  # as the service keeps it: open readers and the lexicon are reused between searches
    boxes = [mailbox]
    for word in words[:WARMUP]:
        service.search(settings, user, boxes, parse_query(f"TEXT {word}"), autoindex=False, runtime=runtime)
    out = []
    for word in words:
        query = parse_query(f"TEXT {word}")
        cpu, wall = time.process_time(), time.perf_counter()
        results = service.search(settings, user, boxes, query, autoindex=False, runtime=runtime)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        out.append((word, sum(len(r.uids) for r in results), wall * 1000, cpu * 1000))
    return out


def doccount(paths: list[str]) -> int:
    import xapian

    return sum(int(xapian.Database(p).get_doccount()) for p in paths)


def main(argv: list[str]) -> int:
    if len(argv) >= 4 and argv[0] == "search":
        words = json.load(sys.stdin)
        print(json.dumps({"results": search(argv[1], argv[2], argv[3], words)}))
        return 0
    if argv and argv[0] == "doccount":
        print(doccount(argv[1:]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
