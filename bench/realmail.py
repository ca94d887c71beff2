#!/usr/bin/env python3
"""A large Maildir from real mail whose vocabulary grows the way real mail's does: each source corpus is copied
N times, and in every copy after the first the tokens that occur in only ONE message of the source (DKIM/ARC
signature pieces, Message-IDs, MIME boundaries, commit hashes, rare names...) are rewritten into new tokens of
the same shape (letters stay letters of the same case, digits stay digits, length kept). Plain replication
(make-maildir.py replicate) repeats those tokens, so the lexicon stops growing; here every copy brings as many
new tokens as its source's one-message tokens -- more than real mail would at that size, as some of those are
rare words that a bigger mailbox would repeat: the lexicon measured on the result is an upper bound.

Base64 part bodies are copied unchanged (their lines are not text). Tokens are maximal [A-Za-z0-9]+ runs of the
header block and of the non-base64 body lines, counted once per message.

    .venv/bin/python bench/realmail.py OUT --source /tmp/corpus/openbmc/corpus-openbmc:13:INBOX \\
        --source /tmp/corpus/sa/corpus-a:10:sa

`SRC:COPIES:FOLDER`: the messages of every folder of SRC go to FOLDER (INBOX or a Maildir++ name; a SRC
subfolder `.x` goes to `FOLDER.x`, or `.x` when FOLDER is INBOX). Prints per source: messages, one-message tokens
and their share of all token occurrences. Standard library only; the sources are only read.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import re
import sys
from collections import Counter
from pathlib import Path

_TOKEN = re.compile(rb"[A-Za-z0-9]+")
_B64_CTE = re.compile(rb"^content-transfer-encoding:\s*base64", re.I | re.M)
_LOWER = b"abcdefghijklmnopqrstuvwxyz"
_UPPER = _LOWER.upper()
_DIGITS = b"0123456789"


def message_files(root: Path) -> list[tuple[str, Path]]:
    """(subfolder name or "", file) of every message of a Maildir++ tree, sorted."""
    out = []
    for folder in sorted([root, *[p for p in root.iterdir() if p.name.startswith(".") and p.is_dir()]]):
        name = "" if folder == root else folder.name
        for sub in ("cur", "new"):
            if (folder / sub).is_dir():
                out += [(name, p) for p in sorted((folder / sub).iterdir()) if p.is_file()]
    return out


def text_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of the token spans of a message outside base64 part bodies."""
    spans = []
    head_end = data.find(b"\n\n")
    head_end = len(data) if head_end < 0 else head_end
    spans += [m.span() for m in _TOKEN.finditer(data, 0, head_end)]
    # the body, line by line: a part's own headers say whether its body is base64
    pos, in_headers, b64, part_head = head_end + 2, False, bool(_B64_CTE.search(data, 0, head_end)), b""
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        line = data[pos:end]
        if line.startswith(b"--"):
            in_headers, b64, part_head = True, False, b""
        elif in_headers:
            part_head += line
            if not line.strip():
                in_headers, b64 = False, bool(_B64_CTE.search(part_head))
        if not b64 or in_headers or line.startswith(b"--"):
            spans += [m.span() for m in _TOKEN.finditer(data, pos, end)]
        pos = end
    return spans


def mutate(token: bytes, copy: int) -> bytes:
    """A token of the same shape, fixed by (token, copy)."""
    rng = random.Random(hashlib.blake2b(token + b"/" + str(copy).encode(), digest_size=8).digest())
    out = bytearray(token)
    for i, c in enumerate(token):
        pool = _DIGITS if 48 <= c <= 57 else _UPPER if 65 <= c <= 90 else _LOWER
        out[i] = pool[rng.randrange(len(pool))]
    return bytes(out)


def target_folder(out: Path, folder: str, sub: str) -> Path:
    if folder == "INBOX":
        return out / sub if sub else out
    return out / (f".{folder}{sub}" if sub else f".{folder}")


def replicate(src: Path, copies: int, folder: str, out: Path, serial: list[int]) -> None:
    files = message_files(src)
    datas = [(sub, p, p.read_bytes()) for sub, p in files]
    spans = [text_spans(d) for _, _, d in datas]
    df: Counter[bytes] = Counter()
    occurrences = 0
    for (_, _, data), sp in zip(datas, spans, strict=True):
        tokens = {data[a:b] for a, b in sp}
        df.update(tokens)
        occurrences += len(sp)
    rare = {t for t, n in df.items() if n == 1}
    rare_occ = sum(1 for (_, _, d), sp in zip(datas, spans, strict=True) for a, b in sp if d[a:b] in rare)
    print(f"{src}: {len(datas)} messages, {len(df)} distinct tokens, {len(rare)} in one message only "
          f"({sum(map(len, rare)) / 1e6:.1f} M chars, {100 * rare_occ / max(occurrences, 1):.1f} % of occurrences), "
          f"x{copies} -> {folder}", file=sys.stderr)
    for copy in range(copies):
        for (sub, path, data), sp in zip(datas, spans, strict=True):
            if copy:
                buf = bytearray(data)
                for a, b in sp:
                    token = data[a:b]
                    if token in rare:
                        buf[a:b] = mutate(token, copy)
                data = bytes(buf)
            box = target_folder(out, folder, sub)
            for d in ("cur", "new", "tmp"):
                (box / d).mkdir(parents=True, exist_ok=True)
            serial[0] += 1
            st = path.stat()
            flags = path.name.split(":2,", 1)[1] if ":2," in path.name else ""
            name = f"{int(st.st_mtime)}.M{serial[0]}P{copy}.realmail,S={len(data)}:2,{flags}"
            target = box / "cur" / name
            target.write_bytes(data)
            os.utime(target, (st.st_mtime, st.st_mtime))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--source", action="append", required=True, help="SRC:COPIES:FOLDER")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    serial = [0]
    for spec in args.source:
        src, copies, folder = spec.rsplit(":", 2)
        replicate(Path(src), int(copies), folder, args.out, serial)
    print(f"{serial[0]} messages in {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
