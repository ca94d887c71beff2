#!/usr/bin/env python3
"""Parse + decode CPU per message (ftsd.message.parse_message) of this checkout against another version of ftsd, in
ONE process, the two alternating over the same seeded sample: the figure to compare on a loaded machine.

    .venv/bin/python bench/parse_compare.py MAILDIR OTHER_SRC [--sample 1000] [--rounds 3]

OTHER_SRC: a directory holding the other version as package `ftsd_old`, e.g. from main:

    git archive main ftsd | tar -x -C /tmp/old && mv /tmp/old/ftsd /tmp/old/ftsd_old
    grep -rl ftsd /tmp/old/ftsd_old | xargs sed -i 's/from ftsd\\([. ]\\)/from ftsd_old\\1/g'

Corpora: /tmp/corpus/sa/corpus-a (SpamAssassin) and /tmp/corpus/openbmc/corpus-openbmc
(../shared/corpus/openbmc-2024).
The sample is the one `compare_profile.py stages` takes (random.Random(1)); the files are read once, before timing.
"""

from __future__ import annotations

import argparse
import importlib
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftsd.message import parse_message  # noqa: E402
from ftsd.settings import Settings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("maildir", type=Path)
    ap.add_argument("other", type=Path)
    ap.add_argument("--sample", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(args.other))
    old = importlib.import_module("ftsd_old.message")
    old_settings = importlib.import_module("ftsd_old.settings").Settings()
    files = sorted(p for p in args.maildir.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))
    raws = [p.read_bytes() for p in random.Random(1).sample(files, min(args.sample, len(files)))]
    settings = Settings()
    variants: dict[str, Callable[[bytes], object]] = {
        "other": lambda raw: old.parse_message(raw, old_settings),
        "this": lambda raw: parse_message(raw, settings),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, parse in variants.items():
            started = time.process_time()
            for raw in raws:
                parse(raw)
            times[name].append((time.process_time() - started) / len(raws) * 1000)
    print(f"{args.maildir}: {len(raws)} messages, {sum(map(len, raws)) / len(raws) / 1000:.1f} KB mean, "
          f"{args.rounds} rounds alternating; parse + decode ms CPU per message (median, min):")
    for name, values in times.items():
        print(f"  {name:6} {statistics.median(values):.3f}  {min(values):.3f}")
    print(f"  ratio other/this (median): {statistics.median(times['other']) / statistics.median(times['this']):.2f}")


if __name__ == "__main__":
    main()
