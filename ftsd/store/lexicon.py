"""The lexicon: every word, chunk and mark a user's index stores, per field, so that a query string can be
looked up as a *substring* of stored words (analysis.py). It lives in Xapian metadata, written in the same
transaction as the documents, so a reader never sees a document whose words the lexicon lacks.

Layout, per kind + field prefix (kp): blocks META_LEXICON + kp + "." + id -> entries, one per line (UTF-8),
compressed (store/lexblock.py; an index of schema 5 has plain blocks, read as they are). The writer stores per
commit and kp a *tail* block (id: hex; cut at about TAIL_BLOCK_BYTES) with the entries the index did not have yet.
When the tails of all kps together pass TAIL_BYTES, the writer folds the largest (and any whose pages are cheap
beside the index: SEGMENT_MIN_BYTES), in the same transaction, into a *segment*: blocks of about BLOCK_BYTES (id "s"
+ segment id + "." + number), a directory (META_LEXSEG) and gram pages (META_LEXGRAM) that tell which of its blocks
may hold a substring (store/lexgrams.py). optimize rebuilds the whole lexicon from Xapian's term list: the smallest
kps as tails while they fit in TAIL_BYTES together, the others (and those whose pages are cheap) as segments.
Entries of expunged messages stay until then: the lexicon is a superset of the stored entries, and an entry without
documents costs a lookup, never a wrong answer. An index of the layout before segments (blocks of any size, no
segment) is all tail: read as such, folded by its next write, rebuilt by optimize.

The reader keeps per kp the segment directories (a few KB) and the tail (newline-separated entries in pieces: all
tails together at most about TAIL_BYTES), scanned with bytes.find. A lookup reads, per segment, the pages of up to
three of the needle's 4-byte windows and fetches, inflates and scans only the blocks that have them all; fetched
blocks and pages stay in a bytes-bounded LRU (CACHE_BYTES). Memory per open index: directories + tails + that
cache, not the lexicon.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xapian

from ftsd.analysis import is_gram_form, is_mark, is_word
from ftsd.store import lexblock, lexgrams, schema
from ftsd.store.lexgrams import BLOCK_BYTES, SEGMENT_BLOCKS

SEEN_LIMIT = 200_000  # entries one writer session remembers exactly (two generations of half each; ~22 MB)
LISTED_BITS = 1 << 25  # a fresh session's filter of every entry it listed, once it forgets some: 4 MB
# The tails of all kps of an index together hold at most this; past it the writer folds the largest tail into a
# segment, and a rebuild keeps the smallest kps as tails up to it. Gram pages cost ~1.2-1.4 bytes on disk per
# lexicon byte (openbmc's 3,000 messages: +0.27x the mail): below this a tail in memory, scanned whole (~3 ms per
# 16 MB), is the better trade; above it the memory and the load are what matter (real list mail at 100k messages:
# 126 MB of header chunks alone, and the body's chunks and words 24 MB).
TAIL_BYTES = 16_777_216
TAIL_BLOCK_BYTES = 1_048_576  # tail blocks are cut at about this (each is compressed on its own: lexblock.py)
# A kp of at least SEGMENT_MIN_BYTES gets segments even within TAIL_BYTES when its gram pages (~1.3 bytes per byte)
# would cost little beside the index, i.e. when it holds at most PAGED_BYTES_PER_DOCUMENT per document (an index
# takes 5-20 KB per document: ~3 % of it at most): the body's words of a large mailbox (7.8 MB at 100k real
# messages: 78 bytes a document) leave memory, openbmc's header chunks at 3,000 messages (3.1 KB a document:
# pages of 20 % of its index) stay a tail.
SEGMENT_MIN_BYTES = 4_194_304
PAGED_BYTES_PER_DOCUMENT = 256
PIECE_BYTES = 262_144  # a reader joins the tail blocks smaller than this (per-commit ones) into pieces
CACHE_BYTES = 8_388_608  # fetched blocks and pages kept per lexicon (least recently used dropped first)
EXPANSIONS_KEPT = 256  # lookups remembered per lexicon (until it changes)
SHARED_MAX_BYTES = 256_000_000  # lexicons kept in memory by a process (least recently used dropped first)


class LexiconWriter:
    """Collects the new entries of a write transaction; `flush` stores them just before the commit.

    An entry is new when the index does not store it. The check is set arithmetic per (kind, field) against the
    entries this writer saw recently (two generations of SEEN_LIMIT / 2: an entry seen again moves to the current
    one, so the vocabulary that repeats stays, and hash-like one-off tokens age out); the index is asked
    (term_exists) only for the rest, and only where it may store them. While the writer started on an empty index
    (the first index of a user, a rebuild: the big runs) everything stored was listed by this writer, so an entry
    it never listed is new without asking: `listed`, a filter of what it forgot (one bit per hash, two hashes per
    entry, no false negatives), tells those apart from the few that need the question."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.seen: dict[str, set[str]] = defaultdict(set)  # kind + field prefix -> entries (current generation)
        self.older: dict[str, set[str]] = {}  # the previous generation
        self.seen_count = 0
        self.fresh = db.get_doccount() == 0  # nothing stored that this writer did not list
        self.listed: bytearray | None = None  # entries forgotten by a fresh writer (made at the first rotation)
        self.pending: dict[str, list[str]] = defaultdict(list)
        self.tails: dict[str, list[tuple[str, int]]] = {}  # kp -> its tail blocks (key, bytes), read at first flush

    def add(self, groups: Iterable[tuple[str, str]]) -> None:
        """The entries of a document about to be added: (kind + field prefix, newline-joined entries)."""
        for kind_prefix, joined in groups:
            seen = self.seen[kind_prefix]
            new = set(joined.split("\n"))
            new -= seen
            if not new:
                continue
            seen |= new
            self.seen_count += len(new)
            older = self.older.get(kind_prefix)
            if older:
                new -= older  # seen in the previous generation: listed already (now in the current one)
            if new and (self.listed is not None or not self.fresh):
                new = self._unlisted(kind_prefix, new)
            if new:
                self.pending[kind_prefix] += new
        if self.seen_count > SEEN_LIMIT // 2:
            self._rotate()

    def _unlisted(self, kind_prefix: str, entries: set[str]) -> set[str]:
        """Those of `entries` the index does not store (neither committed nor in this transaction)."""
        term_exists, prefix = self.db.term_exists, kind_prefix[1:]
        if self.listed is None:  # not fresh: anything may be stored
            return {entry for entry in entries if not term_exists(prefix + entry)}
        bits, mask, salt = self.listed, LISTED_BITS - 1, hash(kind_prefix)
        out = set()
        for entry in entries:
            h = hash(entry) ^ salt
            a, b = h & mask, (h >> 32) & mask
            if (bits[a >> 3] >> (a & 7)) & (bits[b >> 3] >> (b & 7)) & 1 and term_exists(prefix + entry):
                continue  # maybe forgotten here: the index tells
            out.add(entry)
        return out

    def _rotate(self) -> None:
        """The current generation becomes the older one; the older one is forgotten (into `listed` if fresh)."""
        if self.fresh and self.older:
            if self.listed is None:
                self.listed = bytearray(LISTED_BITS >> 3)
            bits, mask = self.listed, LISTED_BITS - 1
            for kind_prefix, entries in self.older.items():
                salt = hash(kind_prefix)
                for entry in entries:
                    h = hash(entry) ^ salt
                    a, b = h & mask, (h >> 32) & mask
                    bits[a >> 3] |= 1 << (a & 7)
                    bits[b >> 3] |= 1 << (b & 7)
        self.older = dict(self.seen)
        self.seen = defaultdict(set)
        self.seen_count = 0

    def flush(self) -> None:
        if not any(self.pending.values()):
            self.pending.clear()
            return
        if not self.tails:  # the first flush of this session: the tails stored so far, every kp
            self.tails = _tail_sizes(self.db)
        for kind_prefix, entries in self.pending.items():
            if not entries:
                continue
            tail = self.tails.setdefault(kind_prefix, [])
            for text in _cut(lexgrams.frame(entries), TAIL_BLOCK_BYTES):
                key = f"{schema.META_LEXICON}{kind_prefix}.{uuid.uuid4().hex[:16]}"
                self.db.set_metadata(key, lexblock.pack(text))
                tail.append((key, len(text)))
        self.pending.clear()
        total = {kp: sum(size for _, size in tail) for kp, tail in self.tails.items()}
        paged = PAGED_BYTES_PER_DOCUMENT * self.db.get_doccount()
        for kind_prefix, size in total.items():
            if SEGMENT_MIN_BYTES <= size <= paged:  # pages cheap beside the index: out of memory
                self._fold(kind_prefix, [k for k, _ in self.tails[kind_prefix]])
                self.tails[kind_prefix] = []
                total[kind_prefix] = 0
        while sum(total.values()) > TAIL_BYTES:  # fold the largest tails until the rest fits
            largest = max(total, key=total.__getitem__)
            self._fold(largest, [k for k, _ in self.tails[largest]])
            self.tails[largest] = []
            total[largest] = 0

    def _fold(self, kind_prefix: str, keys: list[str]) -> None:
        """Move these tail blocks into segments (same transaction: readers see the tail or the segment). Read one
        at a time: the first write to an index of the earlier layout folds all of its lexicon."""
        store_segments(self.db, kind_prefix, _recut(self.db, keys))
        for key in keys:
            self.db.set_metadata(key, b"")

    def cancel(self) -> None:
        """The transaction was cancelled: what was seen in it was never stored."""
        self.pending.clear()
        self.tails.clear()
        self.seen.clear()
        self.older = {}
        self.seen_count = 0
        self.listed = None
        self.fresh = False  # what was stored in this session is not remembered any more


def _tail_keys(db: Any, kind_prefix: str) -> list[str]:
    """Keys of the tail blocks of a kp (ids in hex or digits, sorted before the segment blocks' "s")."""
    prefix = f"{schema.META_LEXICON}{kind_prefix}."
    out = []
    for key in db.metadata_keys(prefix):
        if key[len(prefix) :][:1] >= b"s":
            break
        out.append(key.decode())
    return out


def _tail_sizes(db: Any) -> dict[str, list[tuple[str, int]]]:
    """kp -> its tail blocks (key, bytes of text), of every kp of `db`."""
    out: dict[str, list[tuple[str, int]]] = defaultdict(list)
    start = len(schema.META_LEXICON)
    for raw in db.metadata_keys(schema.META_LEXICON):
        key = raw.decode()
        if key[start + 3 : start + 4] >= "s":  # a segment block
            continue
        if value := db.get_metadata(key):
            out[key[start : start + 2]].append((key, lexblock.stored_size(value)))
    return out


def _cut(text: bytes, size: int | None = None) -> Iterator[bytes]:
    """Newline-joined entries cut at newlines into blocks of about `size` (None: BLOCK_BYTES)."""
    size = BLOCK_BYTES if size is None else size
    start = 0
    while start < len(text):
        end = text.find(b"\n", start + size)
        if end < 0:
            end = len(text)
        if end > start:
            yield text[start:end]
        start = end + 1


def _recut(db: Any, keys: list[str]) -> Iterator[bytes]:
    """The entries of these blocks, in blocks of about BLOCK_BYTES (small per-commit blocks joined)."""
    held = b""
    for key in keys:
        value = lexblock.unpack(db.get_metadata(key))
        if not value:
            continue
        held = held + b"\n" + value if held else value
        if len(held) >= BLOCK_BYTES:
            pieces = list(_cut(held))
            held = pieces.pop() if pieces else b""
            yield from pieces
    yield from _cut(held)


def store_segments(db: Any, kind_prefix: str, blocks: Iterable[bytes], level: int = lexblock.LEVEL_FAST) -> None:
    """Store these blocks (newline-joined entries) of a kp as segments of up to SEGMENT_BLOCKS blocks."""
    group: list[bytes] = []
    for block in blocks:
        group.append(block)
        if len(group) == SEGMENT_BLOCKS:
            _store_segment(db, kind_prefix, group, level)
            group = []
    if group:
        _store_segment(db, kind_prefix, group, level)


def _store_segment(db: Any, kind_prefix: str, blocks: list[bytes], level: int) -> None:
    segment = uuid.uuid4().hex[:12]
    for n, block in enumerate(blocks):
        db.set_metadata(_block_key(kind_prefix, segment, n), lexblock.pack(block, level))
    directory, pages = lexgrams.encode(blocks)
    for n, data in enumerate(pages):
        db.set_metadata(_page_key(kind_prefix, segment, n), data)
    db.set_metadata(f"{schema.META_LEXSEG}{kind_prefix}.{segment}", directory)


def _block_key(kind_prefix: str, segment: str, n: int) -> str:
    return f"{schema.META_LEXICON}{kind_prefix}.s{segment}.{n:03d}"


def _page_key(kind_prefix: str, segment: str, n: int) -> str:
    return f"{schema.META_LEXGRAM}{kind_prefix}.{segment}.{n:05d}"


def stored_entries(db: Any, partial: int) -> dict[str, list[str]]:
    """kind + field prefix -> the entries the term list of `db` holds (what a complete lexicon lists)."""
    kinds: dict[str, list[str]] = defaultdict(list)
    field_prefixes = set(schema.FIELD_PREFIXES.values())
    for item in db.allterms():
        term = item.term.decode("utf-8", "replace")
        if term[:1] not in field_prefixes:
            continue
        text = term[1:]
        if is_mark(text):  # marks and chunks are listed whatever their length
            kinds[schema.MARKS + term[0]].append(text)
        elif is_gram_form(text):  # a pattern term of the known short grams: no lexicon entry
            continue
        elif not is_word(text):  # chunks whatever their length ("a,")
            kinds[schema.CHUNKS + term[0]].append(text)
        elif len(text) >= partial:  # shorter words are grams
            kinds[schema.WORDS + term[0]].append(text)
    return kinds


def listed_entries(db: Any) -> dict[str, set[str]]:
    """kind + field prefix -> every entry the lexicon lists (tail and segment blocks alike)."""
    listed: dict[str, set[str]] = defaultdict(set)
    start = len(schema.META_LEXICON)
    for key in db.metadata_keys(schema.META_LEXICON):
        if value := lexblock.unpack(db.get_metadata(key)):
            listed[key[start : start + 2].decode()].update(value.decode("utf-8", "replace").split("\n"))
    return listed


def missing(db: Any, partial: int) -> tuple[int, int]:
    """(entries the index stores but its lexicon lacks, entries stored): a search would miss the former."""
    listed = listed_entries(db)
    stored = stored_entries(db, partial)
    lacking = sum(len(set(entries) - listed.get(kp, set())) for kp, entries in stored.items())
    return lacking, sum(map(len, stored.values()))


def rebuild(db: Any, partial: int) -> int:
    """Replace the lexicon of a writable `db` by the entries its term list holds now (drops entries of expunged
    messages), stored by store_kinds; returns the number of entries. The caller commits."""
    kinds = stored_entries(db, partial)
    for prefix in (schema.META_LEXICON, schema.META_LEXSEG, schema.META_LEXGRAM):
        for key in list(db.metadata_keys(prefix)):
            db.set_metadata(key, b"")
    store_kinds(db, kinds)
    return sum(map(len, kinds.values()))


def store_kinds(db: Any, kinds: dict[str, list[str]], documents: int | None = None) -> None:
    """Store the entries of these kps (into a lexicon without them): the smallest kps as tails while all tails
    together stay within TAIL_BYTES, the rest as segments, and so are those whose pages are cheap beside the index
    of `documents` documents (None: db's; see SEGMENT_MIN_BYTES)."""
    framed = {kind_prefix: lexgrams.frame(entries) for kind_prefix, entries in kinds.items() if entries}
    paged = PAGED_BYTES_PER_DOCUMENT * (db.get_doccount() if documents is None else documents)
    held = 0
    for kind_prefix in sorted(framed, key=lambda kp: len(framed[kp])):
        text = framed.pop(kind_prefix)
        if held + len(text) <= TAIL_BYTES and not SEGMENT_MIN_BYTES <= len(text) <= paged:
            held += len(text)
            for n, block in enumerate(_cut(text, TAIL_BLOCK_BYTES)):
                db.set_metadata(f"{schema.META_LEXICON}{kind_prefix}.{n:08x}",
                                lexblock.pack(block, lexblock.LEVEL_REBUILD))
        else:
            store_segments(db, kind_prefix, _cut(text), lexblock.LEVEL_REBUILD)


@dataclass(frozen=True, slots=True)
class _Field:
    """A kp as a reader knows it at `revision`: its segments and its tail, as pieces of newline-joined entries."""

    revision: int
    segments: tuple[lexgrams.Segment, ...]
    tail_keys: frozenset[str]
    tail: tuple[bytes, ...]

    def size(self) -> int:
        return sum(map(len, self.tail)) + sum(segment.size() for segment in self.segments)


class _Cache:
    """Fetched blocks and pages, least recently used dropped beyond `max_bytes` (both are immutable under their
    key: a block or page is written once, and deleted, never changed)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: str, value: Any, size: int) -> None:
        with self._lock:
            if key in self._items or size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0


class Lexicon:
    """Reader side: the lexicon of one open database. A kp is read on its first lookup and caught up when the
    database's revision moved: a SUBJECT or BODY search never reads the headers' words. Kept as UTF-8 bytes, as
    stored: a UTF-8 needle found in UTF-8 text is a substring of the text. Shared by the threads that search one
    index: `fields` is replaced, never changed in place, so a lookup scans a consistent snapshot outside the lock."""

    def __init__(self, cache_bytes: int = CACHE_BYTES) -> None:
        self.fields: dict[str, _Field] = {}
        self.cache = _Cache(cache_bytes)
        # the same string is often looked up again: per mailbox of one search, or a webmail paging
        self._expanded: dict[tuple[str, tuple[str, ...], str], list[str]] = {}
        self._lock = threading.Lock()

    def refresh(self, db: Any, kind_prefixes: Iterable[str] | None = None) -> None:
        """Catch these (kind + field prefix; None: every one stored) up with `db` (never going back: readers of
        older revisions share it; one that needs what a newer revision moved is told to reopen, see _fetch)."""
        revision = db.get_revision()
        if kind_prefixes is None:  # (listing the stored keys would walk every block)
            kind_prefixes = [kind + prefix for kind in (schema.WORDS, schema.CHUNKS, schema.MARKS)
                             for prefix in schema.FIELD_PREFIXES.values()]
        with self._lock:
            stale = [kp for kp in kind_prefixes if kp not in self.fields or self.fields[kp].revision < revision]
            if stale:
                self._refresh(db, revision, stale)

    def _refresh(self, db: Any, revision: int, kind_prefixes: list[str]) -> None:
        fields = dict(self.fields)
        for kind_prefix in kind_prefixes:
            old = fields.get(kind_prefix)
            meta = f"{schema.META_LEXSEG}{kind_prefix}."
            ids = [key[len(meta) :].decode() for key in db.metadata_keys(meta)]
            known = {segment.id: segment for segment in old.segments} if old else {}
            if not known.keys() <= set(ids):  # rebuilt: start afresh
                known, old = {}, None
            segments = tuple(known.get(i) or lexgrams.decode(i, db.get_metadata(meta + i)) for i in ids)
            tail_keys = frozenset(_tail_keys(db, kind_prefix))
            if old is not None and old.tail_keys <= tail_keys:
                tail = _pieces(db, sorted(tail_keys - old.tail_keys), old.tail)
            else:  # folded (or first read)
                tail = _pieces(db, sorted(tail_keys), ())
            if old is None or tail_keys != old.tail_keys or len(segments) != len(old.segments):
                self._expanded = {}
            fields[kind_prefix] = _Field(revision, segments, tail_keys, tail)
        self.fields = fields

    def expand(self, db: Any, kind: str, prefixes: Sequence[str], needle: str) -> list[str]:
        """Terms (prefix + entry) of the entries of these fields that contain `needle` (no newline); refresh()
        those fields first. Raises xapian.DatabaseModifiedError when `db` is older than what the lexicon knows
        and lacks a block it needs: reopen and retry."""
        key = (kind, tuple(prefixes), needle)
        with self._lock:
            cached = self._expanded.get(key)
            fields, expanded = self.fields, self._expanded
        if cached is not None:
            return cached
        found = self._scan(db, fields, kind, prefixes, needle.encode("utf-8", "surrogatepass"))
        with self._lock:
            if self._expanded is expanded:  # not refreshed meanwhile: the answer is still current
                if len(expanded) >= EXPANSIONS_KEPT:
                    expanded.clear()
                expanded[key] = found
        return found

    def _scan(self, db: Any, fields: dict[str, _Field], kind: str, prefixes: Sequence[str],
              needle: bytes) -> list[str]:
        out: list[str] = []
        ranges = lexgrams.ranges(needle)
        for prefix in prefixes:
            kind_prefix = kind + prefix
            field = fields.get(kind_prefix)
            if field is None:
                continue
            for piece in field.tail:
                _find(piece, needle, prefix, out)
            for segment in field.segments:
                mask = self._candidates(db, field, kind_prefix, segment, ranges)
                while mask:
                    low = mask & -mask
                    n = low.bit_length() - 1
                    mask ^= low
                    key = _block_key(kind_prefix, segment.id, n)
                    text = self.cache.get(key)
                    if text is None:
                        text = lexblock.unpack(self._fetch(db, field, key))
                        self.cache.put(key, text, len(text))
                    _find(text, needle, prefix, out)
        return list(dict.fromkeys(out))  # blocks of different commits may repeat an entry

    def _candidates(self, db: Any, field: _Field, kind_prefix: str, segment: lexgrams.Segment,
                    ranges: list[tuple[int, int]] | None) -> int:
        """Bit set of the blocks of `segment` that may hold a needle with these pair ranges."""
        mask = (1 << segment.blocks) - 1
        for lo, hi in ranges or ():
            has = 0
            for n in lexgrams.pages_of(segment, lo, hi):
                key = _page_key(kind_prefix, segment.id, n)
                pairs = self.cache.get(key)
                if pairs is None:
                    pairs = lexgrams.page(self._fetch(db, field, key))
                    self.cache.put(key, pairs, 8 * len(pairs) + 64)
                has |= lexgrams.blocks_in(pairs, lo, hi)
            mask &= has
            if not mask:
                break
        return mask

    @staticmethod
    def _fetch(db: Any, field: _Field, key: str) -> bytes:
        value: bytes = db.get_metadata(key)
        if not value and db.get_revision() < field.revision:
            raise xapian.DatabaseModifiedError(f"{key}: the lexicon moved on since revision {db.get_revision()}")
        return value

    def size(self) -> int:
        """Bytes held: directories, tails, cached blocks and pages."""
        return sum(field.size() for field in self.fields.values()) + self.cache.bytes


def _pieces(db: Any, keys: list[str], before: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """A tail's pieces: `before` and the entries of these blocks, as they were inflated (no copy of MBs), the small
    ones (a commit's) joined into pieces of at least PIECE_BYTES (a lookup scans each piece with one call)."""
    out = list(before)
    small = [out.pop()] if out and len(out[-1]) < PIECE_BYTES else []
    for key in keys:
        if value := lexblock.unpack(db.get_metadata(key)):
            if len(value) < PIECE_BYTES:
                small.append(value)
            else:
                out.append(value)
    if small:
        out.append(b"\n".join(small))
    return tuple(out)


def _find(text: bytes, needle: bytes, prefix: str, out: list[str]) -> None:
    """Append prefix + each entry of `text` (newline-joined entries) that contains `needle` (no newline)."""
    find, rfind = text.find, text.rfind
    pos = find(needle)
    while pos >= 0:
        end = find(b"\n", pos)
        if end < 0:
            end = len(text)
        out.append(prefix + text[rfind(b"\n", 0, pos) + 1 : end].decode("utf-8", "replace"))
        pos = find(needle, end)


class Lexicons:
    """The lexicons of a process, one per index directory (path, inode: a compacted copy is another index)
    however many readers are open on it; the least recently used are dropped beyond `max_bytes`."""

    def __init__(self, max_bytes: int = SHARED_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[Path, int], Lexicon] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, inode: int) -> Lexicon:
        key = (path, inode)
        with self._lock:
            lexicon = self._items.get(key)
            if lexicon is None:
                lexicon = self._items[key] = Lexicon()
            self._items.move_to_end(key)
            while len(self._items) > 1 and sum(lex.size() for lex in self._items.values()) > self.max_bytes:
                self._items.popitem(last=False)
            return lexicon

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
