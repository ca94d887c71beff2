"""Searcher: read-only access to one user's index. Builds Xapian queries for search.py (which stays free of
xapian) and returns UID sets per mailbox. Never opens the writer: a search does not wait for indexing and sees
the last commit (reopened per search). Xapian errors become ftsd errors through store/xerrors.py."""

from __future__ import annotations

import json
import operator
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import xapian

from ftsd.analysis import gram_patterns, is_mark, is_word
from ftsd.errors import NoIndexError, SchemaVersionError, StoreError
from ftsd.settings import Settings
from ftsd.store import lexicon, schema, texts
from ftsd.store.xerrors import store_error, translated

Query = Any  # an opaque xapian.Query
T = TypeVar("T")
COMPLEMENT_MIN = 1000  # mailboxes smaller than this are read directly: the estimate would cost more than it saves
SHARED_KEPT = 16  # whole-index matches kept per reader and revision (the keys of one multi-mailbox search)
MODIFIED_RETRIES = 3  # a writer may commit (and a reader's revision vanish) several times during one match


class Searcher:
    """Query side of one user's index."""

    def __init__(self, path: Path, lexicons: lexicon.Lexicons | None = None) -> None:
        """`lexicons`: the process's shared ones (None: a lexicon of this reader's own)."""
        self.path = path
        where = f"{path.parent.name}/{path.name}"
        try:
            # the inode first: if optimize swaps the directory in between, this reader counts as replaced
            self.inode = path.stat().st_ino
            self.db = xapian.Database(str(path))
            version = self.db.get_metadata(schema.META_SCHEMA).decode()
        except FileNotFoundError as exc:
            raise NoIndexError(f"{where}: no index yet") from exc
        except OSError as exc:
            raise StoreError(f"{where}: {exc.strerror}") from exc
        except xapian.Error as exc:
            raise store_error(exc, path, "opening the index") from exc
        if version and version not in schema.READS:
            self.db.close()
            raise SchemaVersionError(f"{where}: index schema {version}, this ftsd reads {schema.SCHEMA_VERSION}")
        self._indexed: dict[str, tuple[int, set[int]]] = {}
        self._sorted: dict[str, tuple[set[int], list[int]]] = {}  # per mailbox: its indexed_uids set, ascending
        self._docid_maps: dict[str, tuple[int, dict[int, int]]] = {}  # per mailbox: revision, UID -> docid
        # revision, whole-index matches by query description, docids per mailbox GUID (see _shared)
        self._matches: tuple[int, dict[str, list[int]], dict[str, set[int]]] = (-1, {}, {})
        # docid -> UID (0: none read yet). A docid keeps its UID for the life of the index directory: documents are
        # added, replaced and deleted by their id term (mailbox GUID + UID), so only new docids need reading.
        self._uid_of = array("Q", [0])  # 8 bytes a document (a list of ints: ~36)
        self._uids_read = 0  # the table holds the UIDs of docids 1..this
        self.lexicon = lexicons.get(path, self.inode) if lexicons is not None else lexicon.Lexicon()

    def replaced(self) -> bool:
        """True if the index directory was swapped since this reader opened it (optimize compacts into a copy)."""
        try:
            return self.path.stat().st_ino != self.inode
        except OSError:
            return True

    def close(self) -> None:
        self.db.close()

    def cache_bytes(self) -> int:
        """About what this reader's caches hold (the docid -> UID table, the mailboxes' UID and docid sets and sorted
        lists: ~100 bytes a member, ints included), for the pool's bound in bytes. Not the lexicon: shared."""
        members = sum(len(uids) for _, uids in self._indexed.values())
        members += sum(len(uids) for _, uids in self._sorted.values()) // 4  # a list shares the set's ints
        members += sum(len(docids) for docids in self._matches[2].values())
        members += sum(len(docid_of) for _, docid_of in self._docid_maps.values())
        return self._uid_of.itemsize * len(self._uid_of) + 100 * members

    def released(self) -> None:
        """Back in the pool: drop what only the search just ended needs (its whole-index matches; the mailboxes'
        docid sets stay, like their UID sets, until the revision changes)."""
        revision, _, boxes = self._matches
        self._matches = (revision, {}, boxes)

    def _xapian(self, doing: str) -> AbstractContextManager[None]:
        return translated(self.path, doing)

    def reopen(self) -> None:
        """See the latest commit (cheap when nothing changed). Raises: StoreError."""
        with self._xapian("reopening the index"):
            self.db.reopen()

    def guids(self) -> list[str]:
        """GUIDs of the mailboxes that have documents in this index."""
        with self._xapian("listing mailboxes"):
            return [t.term.decode()[len(schema.MAILBOX_PREFIX) :] for t in self.db.allterms(schema.MAILBOX_PREFIX)]

    def mailboxes(self) -> dict[str, dict[str, Any]]:
        with self._xapian("reading mailbox metadata"):
            return schema.mailbox_metadata(self.db)

    # -- query building -------------------------------------------------------------------------------------
    def piece(self, fields: Sequence[str], run: str, exact_chars: int, partial: int) -> Query:
        """Documents where `run` occurs inside a stored word, chunk or mark of any of these fields: an exact
        short-gram term below `partial` word characters, else the OR of the lexicon entries that contain it (cut
        to `exact_chars`: longer strings are settled by checking the message)."""
        mark = is_mark(run)
        if len(run) < partial and is_word(run):
            patterns = gram_patterns(run, partial)
            if patterns is None:
                terms = [schema.FIELD_PREFIXES[name] + run for name in fields]
            else:  # a known gram: the pattern terms of its group with its bit set (analysis.py, GRAM_GROUP)
                terms = self._patterns([schema.FIELD_PREFIXES[name] for name in fields], *patterns)
        else:
            needle = run[:exact_chars]
            kind = schema.MARKS if mark else schema.WORDS if is_word(needle) else schema.CHUNKS
            prefixes = [schema.FIELD_PREFIXES[name] for name in fields]
            terms = self._retried(lambda: self._expand(kind, prefixes, needle))
        if not terms:
            return xapian.Query.MatchNothing
        return xapian.Query(xapian.Query.OP_OR, terms) if len(terms) > 1 else xapian.Query(terms[0])

    def _expand(self, kind: str, prefixes: list[str], needle: str) -> list[str]:
        """The lexicon's terms of `needle` (caught up with this reader's revision first)."""
        self.lexicon.refresh(self.db, [kind + prefix for prefix in prefixes])
        return self.lexicon.expand(self.db, kind, prefixes, needle)

    def _patterns(self, prefixes: list[str], head: str, tails: frozenset[str]) -> list[str]:
        """The pattern terms among `tails` that the index holds (usually a few of the 2^(GRAM_GROUP-1))."""
        out = []
        with self._xapian("reading the gram patterns"):
            for prefix in prefixes:
                start = len(prefix) + len(head)
                out += [term for item in self.db.allterms(prefix + head)
                        if (term := item.term.decode())[start:] in tails]
        return out

    @staticmethod
    def all_() -> Query:
        return xapian.Query.MatchAll

    @staticmethod
    def nothing() -> Query:
        return xapian.Query.MatchNothing

    @staticmethod
    def and_(queries: Sequence[Query]) -> Query:
        return xapian.Query(xapian.Query.OP_AND, list(queries))

    @staticmethod
    def or_(queries: Sequence[Query]) -> Query:
        return xapian.Query(xapian.Query.OP_OR, list(queries))

    @staticmethod
    def not_(query: Query) -> Query:
        return xapian.Query(xapian.Query.OP_AND_NOT, xapian.Query.MatchAll, query)

    # -- evaluation -----------------------------------------------------------------------------------------
    def uids(self, query: Query, guid: str, shared: bool = False) -> set[int]:
        """UIDs of the documents of mailbox `guid` matching `query`. Raises: StoreError.

        Reading a UID costs Python time per match, so when Xapian estimates that most of the mailbox matches,
        the (smaller) complement is read instead and subtracted from the mailbox's UIDs (cached per revision).
        `shared`: the search covers several mailboxes; the query is matched once over the whole index (see
        _shared)."""
        if shared:
            return set(self._shared(query, guid))
        mailbox = xapian.Query(schema.mailbox_term(guid))
        filtered = xapian.Query(xapian.Query.OP_FILTER, query, mailbox)
        indexed = self.indexed_uids(guid)
        if len(indexed) >= COMPLEMENT_MIN and 2 * self._estimate(filtered) > len(indexed):
            return indexed - self._match(xapian.Query(xapian.Query.OP_AND_NOT, mailbox, query))
        return self._match(filtered)

    def sorted_uids(self, query: Query, guid: str, shared: bool = False) -> list[int]:
        """uids(), ascending: the matches come in docid order, which is UID order where the mailbox was indexed in
        UID order (sorting an ascending list is one pass)."""
        if shared:
            found = self._shared(query, guid)
        else:
            mailbox = xapian.Query(schema.mailbox_term(guid))
            filtered = xapian.Query(xapian.Query.OP_FILTER, query, mailbox)
            indexed = self.indexed_uids(guid)
            if len(indexed) >= COMPLEMENT_MIN and 2 * self._estimate(filtered) > len(indexed):
                missing = self.matching(xapian.Query(xapian.Query.OP_AND_NOT, mailbox, query))
                if not missing:  # every message (ALL, Dovecot's last-UID lookup): the cached ascending list
                    return list(self._indexed_sorted(guid, indexed))
                return sorted(indexed.difference(missing))
            found = self.matching(filtered)
        found.sort()
        if any(map(operator.eq, found, islice(found, 1, None))):  # one UID in two documents: listed once
            found = sorted(set(found))
        return found

    def _shared(self, query: Query, guid: str) -> list[int]:
        """UIDs (docid order) of the matches of `query` in mailbox `guid`, from one match over the whole index kept
        for this revision: a search of several mailboxes would otherwise run the same OR of lexicon entries once
        per mailbox. Each mailbox's docids are kept as a set per revision to pick its matches in C."""
        with self._xapian("reading the revision"):
            revision = self.db.get_revision()
        if self._matches[0] != revision:
            self._matches = (revision, {}, {})
        _, whole, boxes = self._matches
        key = str(query)  # its description: equal queries of different mailboxes share one match
        docids = whole.get(key)
        if docids is None:
            if len(whole) >= SHARED_KEPT:
                whole.clear()
            docids = whole[key] = self._docids_matching(query)
        box = boxes.get(guid)
        if box is None:
            box = boxes[guid] = set(self._docids_matching(xapian.Query(schema.mailbox_term(guid))))
        return self._uids_of(list(filter(box.__contains__, docids)))

    def _indexed_sorted(self, guid: str, indexed: set[int]) -> list[int]:
        """The ascending list of `indexed` (indexed_uids(guid)), kept as long as that set is the cached one."""
        cached = self._sorted.get(guid)
        if cached is None or cached[0] is not indexed:
            cached = self._sorted[guid] = (indexed, sorted(indexed))
        return cached[1]

    def indexed_uids(self, guid: str) -> set[int]:
        """Every UID of the mailbox present in the index, cached per index revision."""
        with self._xapian("reading the revision"):
            revision = self.db.get_revision()
        cached = self._indexed.get(guid)
        if cached and cached[0] == revision:
            return cached[1]
        uids = self._match(xapian.Query(schema.mailbox_term(guid)))
        self._indexed[guid] = (self.db.get_revision(), uids)  # _match may have reopened the database
        return uids

    def _enquire(self, query: Query) -> Any:
        enquire = xapian.Enquire(self.db)
        enquire.set_query(query)
        enquire.set_weighting_scheme(xapian.BoolWeight())
        enquire.set_docid_order(xapian.Enquire.ASCENDING)
        return enquire

    def _estimate(self, query: Query) -> int:
        """Xapian's cheap estimate of the number of matches (no full match run)."""
        try:
            return int(self._enquire(query).get_mset(0, 0).get_matches_estimated())
        except xapian.Error:
            return 0  # the exact pass reports the error

    def _match(self, query: Query) -> set[int]:
        """UIDs of every match of a query that is already filtered to one mailbox."""
        return set(self.matching(query))

    def _docids_matching(self, query: Query) -> list[int]:
        """Docids of every match of a query, ascending."""
        return self._retried(lambda: _docids(self._enquire(query).get_mset(0, self.db.get_doccount())))

    def matching(self, query: Query) -> list[int]:
        """UIDs of every match of a query that is already filtered to one mailbox, in docid order (UID order
        where the mailbox was indexed in UID order, as the indexer adds new mail)."""
        # All matches in one MSet, read by position through the raw SWIG call (~0.1 us a match), mapped through the
        # docid -> UID table: ~3x faster than collecting the UID slot in a match spy and parsing its strings.
        return self._uids_of(self._docids_matching(query))

    def _uids_of(self, docids: list[int]) -> list[int]:
        """The UIDs of these docids (the table extended first where they are newer than it)."""
        if docids and max(docids) >= len(self._uid_of):
            self._retried(self._read_uids)
        return list(map(self._uid_of.__getitem__, docids))

    def _retried(self, read: Callable[[], T]) -> T:
        """`read()`, again on the latest revision when commits overwrote the one being read."""
        for attempt in range(MODIFIED_RETRIES + 1):
            with self._xapian("search"):
                try:
                    return read()
                except xapian.DatabaseModifiedError:
                    if attempt == MODIFIED_RETRIES:
                        raise
                    self.db.reopen()  # the revision read was overwritten by commits: read the latest
        raise StoreError(f"{self.path.parent.name}: search failed")  # not reached: the last attempt raises

    def _read_uids(self) -> None:
        """Extend the docid -> UID table to the last document: the UID value stream from the first docid not read."""
        db, table = self.db, self._uid_of
        last = db.get_lastdocid()
        if last >= len(table):
            table.frombytes(bytes(table.itemsize * (last + 1 - len(table))))
        for docid, uid in _uid_stream(db, self._uids_read + 1, last):
            if docid > last:
                break
            table[docid] = uid
        self._uids_read = last

    def kept_blobs(self, guid: str, uids: Sequence[int]) -> dict[int, bytes]:
        """The kept texts (value slot SLOT_TEXTS, fts.store_texts) of those of `uids` (of mailbox `guid`) whose
        documents have them, still packed (decode with kept()): read in docid order from the slot's value stream,
        without a look-up of each UID's id term and document."""
        if not self._retried(lambda: self.db.get_value_freq(schema.SLOT_TEXTS)):  # none kept: no match, no stream
            return {}
        docid_of = self._docid_map(guid)
        docids = sorted(d for uid in uids if (d := docid_of.get(uid)) is not None)
        return self._retried(lambda: self._values(docids, schema.SLOT_TEXTS))

    def _values(self, docids: list[int], slot: int) -> dict[int, bytes]:
        """UID -> the value in `slot` of each of these docids (ascending) that has one."""
        out: dict[int, bytes] = {}
        if not docids:
            return out
        if not _FAST:  # other bindings: one document at a time
            for docid in docids:
                value = self.db.get_document(docid).get_value(slot)
                if value:
                    out[self._uid_of[docid]] = value
            return out
        raw, db = _RAW, self.db
        it, end = raw.Database_valuestream_begin(db, slot), raw.Database_valuestream_end(db, slot)
        at_end, skip_to, docid_at, value = (raw._ValueIterator_equals, raw._ValueIterator_skip_to,
                                            raw._ValueIterator_get_docid, raw._ValueIterator_get_value)
        for docid in docids:
            if at_end(it, end):
                break
            skip_to(it, docid)
            if not at_end(it, end) and docid_at(it) == docid:
                out[self._uid_of[docid]] = value(it)
        return out

    def _docid_map(self, guid: str) -> dict[int, int]:
        """UID -> docid of the mailbox's documents, cached per revision (like indexed_uids)."""
        with self._xapian("reading the revision"):
            revision = self.db.get_revision()
        cached = self._docid_maps.get(guid)
        if cached is None or cached[0] != revision:
            docids = self._docids_matching(xapian.Query(schema.mailbox_term(guid)))
            docid_of = dict(zip(self._uids_of(docids), docids, strict=True))
            cached = self._docid_maps[guid] = (self.db.get_revision(), docid_of)  # the match may have reopened
        return cached[1]

    def kept(self, blob: bytes, settings: Settings, mark: int | None = None) -> texts.KeptTexts | None:
        """A blob of kept_blobs() unpacked (texts.decode). Raises: CorruptIndexError for a damaged one."""
        try:  # the error translation entered only on an error: it costs ~4 us, and this runs once per check
            return texts.decode(blob, settings, mark)
        except xapian.Error:
            with self._xapian("reading kept texts"):
                raise

    def message_texts(self, guid: str, uid: int, settings: Settings, mark: int | None = None,
                      ) -> texts.KeptTexts | dict[str, Any] | None:
        """What a document keeps to check a match against: its kept texts (fts.store_texts), else its data
        (a Solr document's `fields` are in it); None: no such document. `mark`: texts.fingerprint(settings), if
        the caller has it. Raises: CorruptIndexError (a kept blob
        that does not unpack), StoreError."""
        def read() -> texts.KeptTexts | dict[str, Any] | None:
            for item in self.db.postlist(schema.id_term(guid, uid)):
                doc = self.db.get_document(item.docid)
                blob = doc.get_value(schema.SLOT_TEXTS)
                kept = texts.decode(blob, settings, mark) if blob else None
                return kept if kept is not None else _data(doc)
            return None
        return self._retried(read)

    def document_data(self, guid: str, uid: int) -> dict[str, Any] | None:
        with self._xapian("reading a document"):
            for item in self.db.postlist(schema.id_term(guid, uid)):
                return _data(self.db.get_document(item.docid))
        return None


def _data(doc: Any) -> dict[str, Any]:
    """A document's data (JSON, written by ftsd). Raises xapian.DatabaseCorruptError for anything else: a
    damaged record table is a damaged index (set aside and rebuilt), not a message that silently never matches."""
    raw = doc.get_data()
    if not raw:  # a message whose parts were all plain text keeps no data (indexer/pipeline.py)
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, bytes that are not UTF-8, JSON nested thousands deep
        data = None
    if not isinstance(data, dict):
        raise xapian.DatabaseCorruptError("document data is not ftsd's JSON")
    return data


_RAW: Any = getattr(xapian, "_xapian", None)
_FAST = _RAW is not None and hasattr(_RAW, "MSet_get_docid") and hasattr(_RAW, "_ValueIterator_get_docid")


def _docids(mset: Any) -> list[int]:
    if not _FAST:  # other bindings: the wrapper
        return [item.docid for item in mset]
    return list(map(partial(_RAW.MSet_get_docid, mset), range(mset.size())))


def _uid_stream(db: Any, first: int, last: int) -> Iterator[tuple[int, int]]:
    """(docid, UID) of the documents from docid `first` on, ascending (perhaps beyond `last`)."""
    if not _FAST:  # other bindings: one document at a time
        for docid in range(first, last + 1):
            try:
                yield docid, int(db.get_document(docid).get_value(schema.SLOT_UID) or 0)
            except xapian.DocNotFoundError:
                continue
        return
    raw = _RAW
    it, end = raw.Database_valuestream_begin(db, schema.SLOT_UID), raw.Database_valuestream_end(db, schema.SLOT_UID)
    docid, value, step, at_end = (raw._ValueIterator_get_docid, raw._ValueIterator_get_value,
                                  raw._ValueIterator___next__, raw._ValueIterator_equals)
    if first > 1 and not at_end(it, end):
        raw._ValueIterator_skip_to(it, first)
    while not at_end(it, end):
        yield docid(it), int(value(it))
        step(it)
