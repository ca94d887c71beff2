#!/usr/bin/env python3
"""Does ftsd.decoders.html.html_to_text still give the text an earlier version gave, on every HTML part of real mail?

    .venv/bin/python bench/html_equivalence.py record OUT.pickle MAILDIR [MAILDIR ...]
    .venv/bin/python bench/html_equivalence.py compare OUT.pickle [--examples 10] [--show-same-words]

`record` parses every message of the Maildirs the way the indexer does (ftsd.message.parse_message) and keeps, for
every HTML part, the markup handed to html_to_text and the text it returned, with the CPU time html_to_text took.
Run it with the version to compare against (e.g. `git stash` or a checkout of main); the pickle holds mail text, so
keep it out of the repository. `compare` runs the html_to_text of this checkout on the same markup and prints how
many parts give a different normalised text (analysis.normalise, ends stripped: what search sees), how many of those
differ only in where words break (same words, different white space), examples of both, and the CPU time of the
recorded and the current conversion.

Corpora used for the record in bench/results/html-equivalence.md: /tmp/corpus/sa/corpus-a (SpamAssassin) and
/tmp/corpus/openbmc/corpus-openbmc (../shared/corpus/openbmc-2024, see its SOURCE.md).
"""

from __future__ import annotations

import argparse
import difflib
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ftsd.message  # noqa: E402
from ftsd.analysis import normalise  # noqa: E402
from ftsd.settings import Settings  # noqa: E402


def _messages(maildir: Path) -> list[Path]:
    return sorted(p for p in maildir.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))


def record(out: Path, maildirs: list[Path]) -> None:
    convert: Callable[[str], str] = getattr(ftsd.message, "html_to_text")  # noqa: B009  # the name message.py calls
    rows: list[tuple[str, str, str, float]] = []
    current: list[str] = [""]

    def recording(html: str) -> str:
        t0 = time.process_time()
        text = convert(html)
        rows.append((current[0], html, text, time.process_time() - t0))
        return text

    setattr(ftsd.message, "html_to_text", recording)  # noqa: B010
    settings = Settings()
    count = 0
    for maildir in maildirs:
        for path in _messages(maildir):
            current[0] = str(path)
            ftsd.message.parse_message(path.read_bytes(), settings)
            count += 1
    setattr(ftsd.message, "html_to_text", convert)  # noqa: B010
    with out.open("wb") as f:
        pickle.dump(rows, f)
    print(f"{count} messages, {len(rows)} HTML parts, {sum(len(r[1]) for r in rows) / 1e6:.1f} M characters of "
          f"markup, html_to_text {sum(r[3] for r in rows):.2f} s CPU; written to {out}")


def _key(text: str) -> str:
    return normalise(text).strip()


def _diff(old: str, new: str, width: int = 160) -> str:
    """The first differing stretch of the two normalised texts, with some context."""
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            lo = max(0, i1 - 40)
            return (f"    old: ...{old[lo:i2 + 40][:width]!r}\n"
                    f"    new: ...{new[max(0, j1 - 40):j2 + 40][:width]!r}")
    return "    (equal)"


def compare(path: Path, examples: int, show_same_words: bool) -> None:
    from ftsd.decoders.html import html_to_text

    with path.open("rb") as f:
        rows: list[tuple[str, str, str, float]] = pickle.load(f)
    different: list[tuple[str, str, str]] = []
    same_words = 0
    new_cpu = 0.0
    for message, html, old_text, _ in rows:
        t0 = time.process_time()
        new_text = html_to_text(html)
        new_cpu += time.process_time() - t0
        old, new = _key(old_text), _key(new_text)
        if old != new:
            if old.split() == new.split():
                same_words += 1
            different.append((message, old, new))
    old_cpu = sum(r[3] for r in rows)
    print(f"{len(rows)} HTML parts ({len({r[0] for r in rows})} messages, {sum(len(r[1]) for r in rows) / 1e6:.1f} "
          f"M characters of markup)")
    print(f"normalised text different: {len(different)} parts, of which {same_words} have the same words "
          f"(only where words break differs)")
    parts = max(len(rows), 1)
    print(f"html_to_text CPU: recorded {old_cpu:.2f} s ({old_cpu / parts * 1000:.3f} ms/part), "
          f"now {new_cpu:.2f} s ({new_cpu / parts * 1000:.3f} ms/part): x{old_cpu / max(new_cpu, 1e-9):.1f}")
    shown = 0
    for message, old, new in different:
        if old.split() == new.split() and not show_same_words:
            continue
        if shown >= examples:
            break
        shown += 1
        print(f"\n{message}: {len(old)} -> {len(new)} characters")
        print(_diff(old, new))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("record")
    p.add_argument("out", type=Path)
    p.add_argument("maildirs", type=Path, nargs="+")
    p = sub.add_parser("compare")
    p.add_argument("record", type=Path)
    p.add_argument("--examples", type=int, default=10)
    p.add_argument("--show-same-words", action="store_true")
    args = ap.parse_args()
    if args.command == "record":
        record(args.out, args.maildirs)
    else:
        compare(args.record, args.examples, args.show_same_words)


if __name__ == "__main__":
    main()
