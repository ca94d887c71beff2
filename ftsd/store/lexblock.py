"""A lexicon block as stored (store/lexicon.py): its entries newline-joined (UTF-8), zstd-compressed.

Stored form since schema 6: MARK (0xFF, a byte UTF-8 text never holds) + the codec byte + one zstd frame that
records its content size. Anything else is a block of schema 5, the text itself, read as it is: an index written
by an earlier ftsd is read without a rebuild, and its blocks are compressed as its writer folds them or optimize
rebuilds them. Compressed, the lexicon takes 1.8x (header signature pieces) to 5x (body chunks) fewer bytes on disk
(bench/results/lexbytes-s7.md); zstd inflates at ~1.5 ns a byte, 3-4x faster than zlib, which is what a reader
loading the tails pays.

A stored block is untrusted input like the mail: its declared size is checked against MAX_BLOCK_BYTES before
anything is allocated, and damage of any kind is a xapian.DatabaseCorruptError (the index is set aside and
rebuilt from the mail, as for any damaged table).
"""

from __future__ import annotations

import xapian
import zstandard

MARK = b"\xff"
ZSTD = b"\x01"
MAX_BLOCK_BYTES = 4_194_304  # what a block may inflate to: the writer stores blocks of ~32 KB to ~1 MB
LEVEL_FAST = 3  # the writer's blocks of each commit and its folds (~12 ns a byte)
LEVEL_REBUILD = 9  # optimize's rebuild (~40 ns a byte, 3-10 % smaller)


def pack(text: bytes, level: int = LEVEL_FAST) -> bytes:
    """The stored form of a block of at most MAX_BLOCK_BYTES (b"" stays b"": a deleted block)."""
    if not text:
        return b""
    if len(text) > MAX_BLOCK_BYTES:
        raise ValueError(f"lexicon block of {len(text)} bytes (at most {MAX_BLOCK_BYTES})")
    return MARK + ZSTD + zstandard.ZstdCompressor(level=level, write_content_size=True).compress(text)


def unpack(value: bytes) -> bytes:
    """The text of a stored block (either layout). Raises xapian.DatabaseCorruptError for a damaged one."""
    if value[:1] != MARK:
        return value
    size = stored_size(value)
    try:
        text = zstandard.ZstdDecompressor().decompress(value[2:], max_output_size=size)
    except zstandard.ZstdError as exc:
        raise xapian.DatabaseCorruptError(f"lexicon block: {exc}") from None
    if len(text) != size:
        raise xapian.DatabaseCorruptError("lexicon block: damaged")
    return text


def stored_size(value: bytes) -> int:
    """The size of a stored block's text, from its header (no inflating). Raises xapian.DatabaseCorruptError for a
    damaged header or one that declares more than MAX_BLOCK_BYTES."""
    if value[:1] != MARK:
        return len(value)
    if value[1:2] != ZSTD:
        raise xapian.DatabaseCorruptError("lexicon block: unknown codec")
    try:
        size = zstandard.frame_content_size(value[2:])
    except zstandard.ZstdError as exc:
        raise xapian.DatabaseCorruptError(f"lexicon block: {exc}") from None
    if not 0 <= size <= MAX_BLOCK_BYTES:  # -1: no size recorded (not written by pack)
        raise xapian.DatabaseCorruptError(f"lexicon block: declares {size} bytes")
    return int(size)
