"""The lexicon: every word, chunk and mark a user's index stores, per field, so that a query string can be
looked up as a *substring* of stored words (analysis.py). It lives in Xapian metadata, written in the same
transaction as the documents, so a reader never sees a document whose words the lexicon lacks.

Layout: META_LEXICON + kind + field prefix + "." + chunk id -> the entries, one per line. The writer appends one
chunk per commit and (kind, field) with the entries the index did not have yet. Entries of expunged messages stay
until optimize rebuilds the lexicon from Xapian's term list: the lexicon is a superset of the stored entries, and
an entry without documents costs a lookup, never a wrong answer.

The reader loads a (kind, field) when a lookup first needs it, keeps it as one newline-separated UTF-8 byte string
and scans it with bytes.find (memory speed: ~1 ms per MB); each hit's line is an entry containing the query string.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ftsd.analysis import is_gram_form, is_mark, is_word
from ftsd.store import schema

SEEN_LIMIT = 200_000  # entries one writer session remembers exactly (two generations of half each; ~22 MB)
LISTED_BITS = 1 << 25  # a fresh session's filter of every entry it listed, once it forgets some: 4 MB
CHUNK_CHARS = 4_000_000  # a rebuilt lexicon is stored in chunks of about this size
EXPANSIONS_KEPT = 256  # lookups remembered per lexicon (until it changes)
SHARED_MAX_CHARS = 256_000_000  # lexicons kept in memory by a process (least recently used dropped first)


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
        for kind_prefix, entries in self.pending.items():
            if not entries:
                continue
            self.db.set_metadata(f"{schema.META_LEXICON}{kind_prefix}.{uuid.uuid4().hex[:16]}", "\n".join(entries))
        self.pending.clear()

    def cancel(self) -> None:
        """The transaction was cancelled: what was seen in it was never stored."""
        self.pending.clear()
        self.seen.clear()
        self.older = {}
        self.seen_count = 0
        self.listed = None
        self.fresh = False  # what was stored in this session is not remembered any more


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


def missing(db: Any, partial: int) -> tuple[int, int]:
    """(entries the index stores but its lexicon lacks, entries stored): a search would miss the former."""
    lexicon = Lexicon()
    lexicon.refresh(db)
    listed = {kp: set(text.decode("utf-8", "replace").split("\n")) for kp, text in lexicon.text.items()}
    stored = stored_entries(db, partial)
    lacking = sum(len(set(entries) - listed.get(kp, set())) for kp, entries in stored.items())
    return lacking, sum(map(len, stored.values()))


def rebuild(db: Any, partial: int) -> int:
    """Replace the lexicon of a writable `db` by the entries its term list holds now (drops entries of expunged
    messages, merges chunks); returns the number of entries. The caller commits."""
    kinds = stored_entries(db, partial)
    for key in [k for k in db.metadata_keys(schema.META_LEXICON)]:
        db.set_metadata(key, b"")
    for kind_prefix, entries in kinds.items():
        for n, chunk in enumerate(_chunks(entries)):
            db.set_metadata(f"{schema.META_LEXICON}{kind_prefix}.{n:08d}", "\n".join(chunk))
    return sum(map(len, kinds.values()))


def _chunks(entries: list[str]) -> Iterable[list[str]]:
    chunk: list[str] = []
    size = 0
    for entry in entries:
        chunk.append(entry)
        size += len(entry) + 1
        if size >= CHUNK_CHARS:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


class Lexicon:
    """Reader side: the lexicon of one open database. Each (kind, field) is loaded on its first lookup and caught
    up when the database's revision moved: a SUBJECT or BODY search never loads the headers' words, which on real
    mail (signatures, message ids) are most of it. Kept as UTF-8 bytes, as stored: no decoding at load, one byte per
    ASCII character, and a UTF-8 needle found in UTF-8 text is a substring of the text. Shared by the threads that
    search one index: `text` is replaced, never changed in place, so a lookup scans a consistent snapshot outside
    the lock."""

    def __init__(self) -> None:
        self.loaded: dict[str, tuple[int, frozenset[bytes]]] = {}  # kind + field prefix -> (revision, chunk keys)
        self.text: dict[str, bytes] = {}  # kind + field prefix -> b"\n" + entries + b"\n"
        # the same string is often looked up again: per mailbox of one search, or a webmail paging
        self._expanded: dict[tuple[str, tuple[str, ...], str], list[str]] = {}
        self._lock = threading.Lock()

    def refresh(self, db: Any, kind_prefixes: Iterable[str] | None = None) -> None:
        """Catch these (kind + field prefix; None: every one stored) up with `db` (never going back: readers of
        older revisions share it, and a lexicon only grows between rebuilds, which optimize does in a new
        directory)."""
        revision = db.get_revision()
        if kind_prefixes is None:
            start = len(schema.META_LEXICON)
            kind_prefixes = {key[start : start + 2].decode() for key in db.metadata_keys(schema.META_LEXICON)}
        with self._lock:
            stale = [kp for kp in kind_prefixes if self.loaded.get(kp, (-1,))[0] < revision]
            if stale:
                self._refresh(db, revision, stale)

    def _refresh(self, db: Any, revision: int, kind_prefixes: list[str]) -> None:
        text = dict(self.text)
        loaded = dict(self.loaded)
        for kind_prefix in kind_prefixes:
            keys = frozenset(db.metadata_keys(f"{schema.META_LEXICON}{kind_prefix}."))
            had = loaded.get(kind_prefix, (-1, frozenset[bytes]()))[1]
            if not had <= keys:  # rebuilt: start afresh
                had = frozenset()
                text.pop(kind_prefix, None)
            chunks = [value for key in sorted(keys - had) if (value := db.get_metadata(key))]
            if chunks:
                text[kind_prefix] = text.get(kind_prefix, b"\n") + b"\n".join(chunks) + b"\n"
            if keys != had:
                self._expanded = {}
            loaded[kind_prefix] = (revision, keys)
        self.loaded, self.text = loaded, text

    def expand(self, kind: str, prefixes: Sequence[str], needle: str) -> list[str]:
        """Terms (prefix + entry) of the entries of these fields that contain `needle` (no newline); refresh()
        those fields first."""
        key = (kind, tuple(prefixes), needle)
        with self._lock:
            cached = self._expanded.get(key)
            text, expanded = self.text, self._expanded
        if cached is not None:
            return cached
        found = self._scan(text, kind, prefixes, needle.encode("utf-8", "surrogatepass"))
        with self._lock:
            if self._expanded is expanded:  # not refreshed meanwhile: the answer is still current
                if len(expanded) >= EXPANSIONS_KEPT:
                    expanded.clear()
                expanded[key] = found
        return found

    @staticmethod
    def _scan(texts: dict[str, bytes], kind: str, prefixes: Sequence[str], needle: bytes) -> list[str]:
        out: list[str] = []
        for prefix in prefixes:
            text = texts.get(kind + prefix)
            if not text:
                continue
            find, rfind = text.find, text.rfind
            pos = find(needle)
            while pos >= 0:
                end = find(b"\n", pos)
                out.append(prefix + text[rfind(b"\n", 0, pos) + 1 : end].decode("utf-8", "replace"))
                pos = find(needle, end)
        return list(dict.fromkeys(out))  # chunks of different commits may repeat an entry

    def size(self) -> int:
        return sum(map(len, self.text.values()))


class Lexicons:
    """The lexicons of a process, one per index directory (path, inode: a compacted copy is another index)
    however many readers are open on it; the least recently used are dropped beyond `max_chars`."""

    def __init__(self, max_chars: int = SHARED_MAX_CHARS) -> None:
        self.max_chars = max_chars
        self._items: OrderedDict[tuple[Path, int], Lexicon] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, inode: int) -> Lexicon:
        key = (path, inode)
        with self._lock:
            lexicon = self._items.get(key)
            if lexicon is None:
                lexicon = self._items[key] = Lexicon()
            self._items.move_to_end(key)
            while len(self._items) > 1 and sum(lex.size() for lex in self._items.values()) > self.max_chars:
                self._items.popitem(last=False)
            return lexicon

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
