"""Gram pages: which blocks of a lexicon segment (store/lexicon.py) may hold a given substring.

A segment is up to SEGMENT_BLOCKS blocks of entries (about BLOCK_BYTES each, newline-joined UTF-8). Its gram
index is every distinct pair (g << 8) | b, where g is a 4-byte window of block b followed by a newline, with no
newline in its first three bytes (big-endian: pairs of grams that share their first three bytes are adjacent),
sorted and cut into pages of PAGE_PAIRS pairs, each stored as byte planes, zlib-compressed; the segment's
directory keeps the first pair of each page. A needle of four bytes or more can only be in a block that has each
of its 4-byte windows; a needle of three bytes is followed in its entry by a byte or the newline, so its block has
a window that starts with it. Shorter needles read every block. No false negatives by construction: a needle in a
block always has its windows in that block.

Why on disk: on real mail most of the lexicon is signature pieces and message ids (random strings), whose 4-grams
are as many as their characters. A filter per block that is small enough to load at open passes most blocks; this
index is read a page per gram and segment instead (bench/results/lexicon-real-100k.md).
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import xapian

try:  # the compiled twin of py_block_pairs (ftsd/_lexgrams.c; setup.py builds it where a C compiler is found)
    from ftsd import _lexgrams

    NATIVE = True
except ImportError:  # no compiler at install time
    NATIVE = False

BLOCK_BYTES = 32_768  # entries per block, about (a block is what a lookup fetches and scans)
SEGMENT_BLOCKS = 128  # blocks per segment (at most 256: the block number is 8 bits)
PAGE_PAIRS = 2_048  # pairs per page (10 KB as byte planes, about 2.5 KB compressed)
GRAMS_LOOKED_UP = 3  # 4-byte windows of a needle tested (first, middle, last): each costs a page per segment
_HEADER = "<I"  # a directory: its block count, then the first pair of each page (little-endian)
_HEADER_SIZE = 4


def py_block_pairs(blocks: Sequence[bytes]) -> bytes:
    """The sorted distinct pairs (4-byte window of blocks[b], big-endian) << 8 | b, as native uint64 bytes; not
    the windows with a newline in their first three bytes (no needle starts there: 10 % of the pairs)."""
    pairs: set[int] = set()
    for b, text in enumerate(blocks):
        for k in range(4):  # the windows at k, k + 4, ...: one array of whole 4-byte words each
            words = array("I")
            words.frombytes(text[k : k + (len(text) - k) // 4 * 4])
            if sys.byteorder == "little":
                words.byteswap()
            pairs.update((g << 8) | b for g in words if 10 not in ((g >> 24) & 255, (g >> 16) & 255, (g >> 8) & 255))
    return array("Q", sorted(pairs)).tobytes()


def block_pairs(blocks: Sequence[bytes]) -> bytes:
    return _lexgrams.block_pairs(blocks) if NATIVE else py_block_pairs(blocks)


@dataclass(frozen=True, slots=True)
class Segment:
    """What a reader keeps of a segment: its id, its number of blocks and the first pair of each page."""

    id: str
    blocks: int
    bounds: array  # type: ignore[type-arg]

    def size(self) -> int:
        return 64 + 8 * len(self.bounds)


def frame(entries: Sequence[str]) -> bytes:
    """A block as stored: the entries newline-joined (UTF-8)."""
    return "\n".join(entries).encode("utf-8", "surrogatepass")


def encode(blocks: Sequence[bytes], page_pairs: int = PAGE_PAIRS) -> tuple[bytes, list[bytes]]:
    """(directory, pages) of a segment of these blocks (as stored, unframed)."""
    pairs = array("Q")
    pairs.frombytes(block_pairs([block + b"\n" for block in blocks]))
    if sys.byteorder != "little":
        pairs.byteswap()  # pages and bounds are stored little-endian
    raw = pairs.tobytes()
    step = 8 * page_pairs
    pages = [zlib.compress(_planes(raw[i : i + step]), 1) for i in range(0, len(raw), step)]
    bounds = array("Q", pairs[::page_pairs])
    return struct.pack(_HEADER, len(blocks)) + bounds.tobytes(), pages


def _planes(raw: bytes) -> bytes:
    """Little-endian pairs (40 significant bits) as 5 byte planes: the block numbers, then the gram's bytes from
    the last to the first -- sorted pairs make long runs in the high planes (28 % smaller compressed than the
    pairs as they are, measured on real-mail segments; decoded by 5 slice assignments)."""
    return b"".join(raw[k::8] for k in range(5))


def decode(segment_id: str, directory: bytes) -> Segment:
    """A stored directory. Raises xapian.DatabaseCorruptError for one that is damaged (the index is then set aside
    and rebuilt from the mail, as for any damaged table)."""
    if len(directory) < _HEADER_SIZE or (len(directory) - _HEADER_SIZE) % 8:
        raise xapian.DatabaseCorruptError(f"lexicon segment {segment_id}: damaged directory")
    (blocks,) = struct.unpack_from(_HEADER, directory)
    bounds = array("Q")
    bounds.frombytes(directory[_HEADER_SIZE:])
    if sys.byteorder != "little":
        bounds.byteswap()
    return Segment(segment_id, blocks, bounds)


def page(data: bytes, page_pairs: int = PAGE_PAIRS) -> array:  # type: ignore[type-arg]
    """The pairs of a stored page, inflated to at most the size a page can have. Raises xapian.DatabaseCorruptError
    for a damaged one."""
    try:
        planes = zlib.decompressobj().decompress(data, 5 * page_pairs + 1)
    except zlib.error as exc:
        raise xapian.DatabaseCorruptError(f"lexicon gram page: {exc}") from None
    if len(planes) % 5 or len(planes) > 5 * page_pairs:
        raise xapian.DatabaseCorruptError("lexicon gram page: damaged")
    n = len(planes) // 5
    raw = bytearray(8 * n)
    for k in range(5):
        raw[k::8] = planes[k * n : (k + 1) * n]
    pairs = array("Q")
    pairs.frombytes(raw)
    if sys.byteorder != "little":
        pairs.byteswap()
    return pairs


def ranges(needle: bytes) -> list[tuple[int, int]] | None:
    """Pair ranges [lo, hi] a block must each have a pair in to hold `needle` (None: any block may)."""
    if len(needle) < 3:
        return None
    if len(needle) == 3:
        head = int.from_bytes(needle, "big")
        return [(head << 16, (head << 16) | 0xFFFF)]
    last = len(needle) - 4
    starts = sorted({0, last // 2, last}) if GRAMS_LOOKED_UP >= 3 else [0, last]
    out = []
    for start in starts:
        g = int.from_bytes(needle[start : start + 4], "big")
        out.append((g << 8, (g << 8) | 0xFF))
    return out


def pages_of(segment: Segment, lo: int, hi: int) -> range:
    """The page numbers of `segment` that may hold pairs in [lo, hi]."""
    first = max(bisect_right(segment.bounds, lo) - 1, 0)
    return range(first, bisect_right(segment.bounds, hi))


def blocks_in(pairs: array, lo: int, hi: int) -> int:  # type: ignore[type-arg]
    """Bit set of the block numbers of the pairs in [lo, hi] of a page."""
    mask = 0
    for pair in pairs[bisect_left(pairs, lo) : bisect_right(pairs, hi)]:
        mask |= 1 << (pair & 0xFF)
    return mask
