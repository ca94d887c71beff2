#!/usr/bin/env python3
"""What the kept texts of fts.store_texts (ftsd/store/texts.py) cost per message with each codec: their bytes (and
x the mail), compress ms and inflate us, on the payload ftsd builds (normalised texts + the header values' table)
of N messages of a Maildir, in one process. Codecs whose module is missing are left out.

    .venv/bin/python bench/kept_texts.py /tmp/corpus/sa/corpus-a --n 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftsd.maildir import read_message  # noqa: E402
from ftsd.message import parse_message  # noqa: E402
from ftsd.settings import Settings  # noqa: E402
from ftsd.store import texts  # noqa: E402

Codec = tuple[str, Callable[[bytes], bytes], Callable[[bytes], bytes]]


def codecs() -> list[Codec]:
    out: list[Codec] = [("zlib 6", lambda p: zlib.compress(p, 6), zlib.decompress),
                        ("zlib 1", lambda p: zlib.compress(p, 1), zlib.decompress)]
    lz4: Any = _module("lz4.block")
    if lz4 is not None:
        out += [("lz4", lz4.compress, lz4.decompress),
                ("lz4 hc 9", lambda p: lz4.compress(p, mode="high_compression", compression=9), lz4.decompress)]
    zstd: Any = _module("zstandard")
    if zstd is not None:
        for level in (1, 3):
            out.append((f"zstd {level}", zstd.ZstdCompressor(level=level).compress,
                        zstd.ZstdDecompressor().decompress))
    return out


def _module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("maildir", type=Path)
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    files = sorted(p for p in args.maildir.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))
    files = files[:: max(1, len(files) // args.n)][: args.n]
    base = Settings()
    settings = dataclasses.replace(base, fts=dataclasses.replace(base.fts, store_texts=True))
    payloads = []
    for path in files:
        parsed = parse_message(read_message(path, settings.fts.max_message_bytes).data, settings)
        blob = texts.encode(parsed.header_items, parsed.body, settings)
        kept = texts.decode(blob, settings) if blob else None
        if kept is not None:  # the payload again, as the codecs get it
            payloads.append(kept.t.encode("utf-8", "surrogatepass") + b"\n" + kept.table)
    mail = sum(p.stat().st_size for p in files) / len(files)
    print(f"{args.maildir.name}: {len(payloads)} messages, mail {mail:.0f} B/msg, payload "
          f"{sum(map(len, payloads)) / len(payloads):.0f} B/msg")
    print("| codec | B/msg | x mail | compress ms | inflate us |\n|---|---:|---:|---:|---:|")
    for name, compress, inflate in codecs():
        start = time.process_time()
        packed = [compress(p) for p in payloads]
        spent = time.process_time() - start
        start = time.process_time()
        for p in packed:
            inflate(p)
        back = time.process_time() - start
        size = sum(map(len, packed)) / len(packed)
        print(f"| {name} | {size:.0f} | {size / mail:.2f} | {1000 * spent / len(packed):.3f} | "
              f"{1e6 * back / len(packed):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
