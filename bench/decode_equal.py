#!/usr/bin/env python3
"""Proof of sameness for parse + decode: every message of the given Maildirs through ftsd.message.parse_message
(and attachment_text, the Solr bridge's part) in this checkout and in another version of ftsd, compared field by
field: subject, from, to, cc, bcc, headers, other_headers, body, the parts list and the header items (the kept
texts). Everything the indexer stores and the searches check is a function of these, so equal fields mean the same
terms, document data, kept texts and search answers. Prints the number of differing messages (must be 0).

    .venv/bin/python bench/decode_equal.py MAILDIR... --other /work/main
    .venv/bin/python bench/decode_equal.py MAILDIR... --record FILE      # pin this checkout's output
    .venv/bin/python bench/decode_equal.py MAILDIR... --pinned FILE      # compare against a pinned file
    .venv/bin/python bench/decode_equal.py MAILDIR... --trees            # mimeparse's Message against the FeedParser's

--other SRC runs SRC's own interpreter (SRC/.venv/bin/python) on SRC's code in a subprocess to pin its output to a
temporary file first. Corpora: /tmp/corpus/sa/corpus-a and /tmp/corpus/openbmc/corpus-openbmc.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FIELDS = ("subject", "from_", "to", "cc", "bcc", "headers", "other_headers", "body", "parts", "header_items")


def message_paths(maildirs: list[Path]) -> list[Path]:
    return [p for m in maildirs for p in sorted(p for p in m.rglob("*") if p.is_file()
                                                  and p.parent.name in ("cur", "new"))]


def outputs(maildirs: list[Path]) -> tuple[dict[str, Any], float]:
    """path -> (fields of parse_message, attachment_text or its error), and the CPU seconds of parse_message."""
    from ftsd.message import attachment_text, parse_message
    from ftsd.settings import Settings

    settings = Settings()
    out: dict[str, Any] = {}
    cpu = 0.0
    for path in message_paths(maildirs):
        raw = path.read_bytes()
        started = time.process_time()
        parsed = parse_message(raw, settings)
        cpu += time.process_time() - started
        fields = tuple([dataclasses.astuple(p) for p in parsed.parts] if name == "parts" else getattr(parsed, name)
                       for name in FIELDS)
        try:
            attached: object = attachment_text(raw, settings)
            attached = (attached[0], [dataclasses.astuple(p) for p in attached[1]])  # type: ignore[index]
        except Exception as exc:  # noqa: BLE001 - the same error on both sides is the same answer
            attached = f"{type(exc).__name__}: {exc}"
        out[str(path)] = (fields, attached)
    return out, cpu


def _shape(msg: Any) -> object:
    payload = msg._payload
    return (msg._headers, msg.get_unixfrom(), msg.preamble, msg.epilogue, [type(d) for d in msg.defects],
            msg.get_default_type(), [_shape(p) for p in payload] if isinstance(payload, list) else payload)


def trees(maildirs: list[Path]) -> int:
    """Every message (and its header block alone) through mimeparse and through the FeedParser: the messages
    mimeparse takes, and how many of them give another tree (must be 0)."""
    from ftsd.message import _feed
    from ftsd.mimeparse import Part, parse_text

    paths = message_paths(maildirs)
    taken = differing = 0
    for path in paths:
        text = path.read_bytes().decode("ascii", "surrogateescape")
        for headersonly in (False, True):
            fast = parse_text(text, Part, headersonly)
            if fast is None:
                continue
            taken += not headersonly
            if _shape(fast) != _shape(_feed(text, headersonly)):
                differing += 1
                print(f"  differs: {path} (headersonly={headersonly})")
    print(f"{len(paths)} messages, {taken} taken by mimeparse; differing trees: {differing}")
    return 1 if differing else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("maildirs", type=Path, nargs="+")
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--other", type=Path, help="another ftsd checkout (with its .venv)")
    group.add_argument("--record", type=Path, help="write this checkout's output here")
    group.add_argument("--pinned", type=Path, help="compare against this recorded output")
    group.add_argument("--trees", action="store_true", help="mimeparse's Message trees against the FeedParser's")
    ap.add_argument("--show", type=int, default=5, help="differing messages to describe")
    args = ap.parse_args()
    if args.trees:
        sys.exit(trees(args.maildirs))
    if args.record:
        data, cpu = outputs(args.maildirs)
        args.record.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
        print(f"recorded {len(data)} messages (parse_message {cpu / max(len(data), 1) * 1000:.3f} ms CPU/msg)")
        return
    pinned = args.pinned
    tmp = None
    if args.other:
        tmp = tempfile.NamedTemporaryFile(prefix="decode-equal-", suffix=".pickle", delete=False)
        tmp.close()
        pinned = Path(tmp.name)
        env = dict(os.environ, PYTHONPATH=str(args.other))
        subprocess.run([str(args.other / ".venv/bin/python"), __file__, *map(str, args.maildirs),
                        "--record", str(pinned)], check=True, env=env, cwd=str(args.other))
    try:
        other = pickle.loads(pinned.read_bytes())
    finally:
        if tmp is not None:
            os.unlink(tmp.name)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    mine, cpu = outputs(args.maildirs)
    differing = [path for path in mine if other.get(path) != mine[path]]
    missing = len(set(other) ^ set(mine))
    for path in differing[: args.show]:
        (a_fields, a_att), (b_fields, b_att) = other.get(path, ((None,) * len(FIELDS), None)), mine[path]
        names = [n for n, a, b in zip(FIELDS, a_fields, b_fields, strict=True) if a != b]
        if a_att != b_att:
            names.append("attachment_text")
        print(f"  differs: {path}: {', '.join(names)}")
    print(f"{len(mine)} messages, parse_message {cpu / max(len(mine), 1) * 1000:.3f} ms CPU/msg here; "
          f"differing messages: {len(differing)}; in one set only: {missing}")
    sys.exit(1 if differing or missing else 0)


if __name__ == "__main__":
    main()
