#!/usr/bin/env python3
"""CPU of the analysis stage alone (text -> Terms, index mode), and terms per document, on a seeded sample of a
Maildir: the messages are parsed once, then every variant analyses the same parsed fields, variants alternating
in rounds in ONE process (a loaded machine slows them alike). A variant is the working tree's ftsd.analysis or
ftsd/analysis.py as of a git revision (`--rev`), loaded as a module of its own.

    .venv/bin/python bench/bench_analysis.py MAILDIR [--sample 1000] [--rounds 3] [--rev main]
    .venv/bin/python bench/bench_analysis.py MAILDIR [MAILDIR...] --common-grams 600 [--sample 500]

`--common-grams N`: print the 1-2 character grams that ftsd/common_grams.py lists (how it was made): every ASCII
word-character gram ([a-z0-9_]) and any other among the N of the most fields (subject, from, to, cc, headers, body)
of the sample of each Maildir, most frequent first, the ASCII grams never seen last.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ftsd.message import ParsedMessage, parse_message  # noqa: E402
from ftsd.settings import Settings  # noqa: E402


def analysis_at(rev: str) -> ModuleType:
    """ftsd/analysis.py as of `rev`, imported under another name."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:ftsd/analysis.py"], check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp(prefix="ftsd-bench-analysis-")) / f"analysis_{rev.replace('/', '_')}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def analyse(analyzer: Any, parsed: ParsedMessage) -> list[Any]:
    """What indexer/pipeline.analyse_fields does."""
    headers, body = analyzer.header_and_body(parsed.headers, parsed.other_headers, parsed.body)
    return [analyzer.terms(parsed.subject), analyzer.terms(parsed.from_), analyzer.terms(parsed.to),
            analyzer.terms(parsed.cc), analyzer.terms(parsed.bcc), headers, body]


def print_common_grams(parsed: list[ParsedMessage], n: int) -> None:
    from collections import Counter

    from ftsd.analysis import Analyzer, normalise, searchable

    analyzer = Analyzer(partial=3)
    fields: Counter[str] = Counter()
    for m in parsed:
        for text in (m.subject, m.from_, m.to, m.cc, m.other_headers, m.body):
            words = {w for run in analyzer._runs(searchable(normalise(text), 64)) for w in re.findall(r"\w+", run)}
            joined = " ".join(words)
            fields.update({joined[i : i + k] for k in (1, 2) for i in range(len(joined) - k + 1)} - {" "})
    word_chars = "abcdefghijklmnopqrstuvwxyz0123456789_"
    ascii_grams = [*word_chars, *(a + b for a in word_chars for b in word_chars)]
    top = [g for g, _ in fields.most_common() if " " not in g]
    grams = [g for i, g in enumerate(top) if i < n or g.isascii()]
    print(" ".join(grams + sorted(set(ascii_grams) - set(grams))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("maildir", type=Path, nargs="+")
    ap.add_argument("--common-grams", type=int, default=0)
    ap.add_argument("--sample", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rev", action="append", default=[], help="also time ftsd/analysis.py of this git revision")
    args = ap.parse_args()
    settings = Settings()
    parsed = []
    for maildir in args.maildir:
        paths = sorted(p for p in maildir.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))
        files = random.Random(1).sample(paths, min(args.sample, len(paths)))
        parsed += [parse_message(p.read_bytes(), settings) for p in files]
    import ftsd.analysis

    if args.common_grams:
        print_common_grams(parsed, args.common_grams)
        return

    variants = {"worktree": ftsd.analysis} | {rev: analysis_at(rev) for rev in args.rev}
    analyzers = {name: mod.Analyzer.of(settings.fts) for name, mod in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, analyzer in analyzers.items():
            t = time.process_time()
            for message in parsed:
                analyse(analyzer, message)
            times[name].append(time.process_time() - t)
    where = " ".join(map(str, args.maildir))
    print(f"analysis CPU, {len(parsed)} messages of {where}, {args.rounds} rounds alternating (min / median)")
    for name, analyzer in analyzers.items():
        counts = {"words": 0, "runs": 0, "grams": 0, "marks": 0}
        for message in parsed:
            for terms in analyse(analyzer, message):
                for key in counts:
                    counts[key] += len(getattr(terms, key))
        per_doc = ", ".join(f"{k} {v / len(parsed):.0f}" for k, v in counts.items())
        print(f"  {name:<10} {min(times[name]) / len(parsed) * 1000:6.3f} / "
              f"{statistics.median(times[name]) / len(parsed) * 1000:6.3f} ms/msg; terms/doc "
              f"{sum(counts.values()) / len(parsed):.0f} ({per_doc})")


if __name__ == "__main__":
    main()
