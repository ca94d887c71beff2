"""Searcher: read-only access to one user's index. Builds Xapian queries for search.py (which stays free of
xapian) and returns UID sets per mailbox. Never opens the writer: a search does not wait for indexing and sees
the last commit (reopened per search). Xapian errors become ftsd errors through store/xerrors.py."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import xapian

from ftsd.analysis import gram_terms, is_mark, is_word
from ftsd.errors import NoIndexError, SchemaVersionError, StoreError
from ftsd.store import lexicon, schema
from ftsd.store.xerrors import store_error, translated

Query = Any  # an opaque xapian.Query
COMPLEMENT_MIN = 1000  # mailboxes smaller than this are read directly: the estimate would cost more than it saves
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
        if version and version != schema.SCHEMA_VERSION:
            self.db.close()
            raise SchemaVersionError(f"{where}: index schema {version}, this ftsd reads {schema.SCHEMA_VERSION}")
        self._indexed: dict[str, tuple[int, set[int]]] = {}
        self.lexicon = lexicons.get(path, self.inode) if lexicons is not None else lexicon.Lexicon()

    def replaced(self) -> bool:
        """True if the index directory was swapped since this reader opened it (optimize compacts into a copy)."""
        try:
            return self.path.stat().st_ino != self.inode
        except OSError:
            return True

    def close(self) -> None:
        self.db.close()

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
            common = gram_terms(run, partial)
            if common is not None:  # also where its group is stored by absence (analysis.py)
                return self.or_([_gram(schema.FIELD_PREFIXES[name], run, *common) for name in fields])
            terms = [schema.FIELD_PREFIXES[name] + run for name in fields]
        else:
            needle = run[:exact_chars]
            kind = schema.MARKS if mark else schema.WORDS if is_word(needle) else schema.CHUNKS
            prefixes = [schema.FIELD_PREFIXES[name] for name in fields]
            with self._xapian("reading the lexicon"):
                self.lexicon.refresh(self.db, [kind + prefix for prefix in prefixes])
            terms = self.lexicon.expand(kind, prefixes, needle)
        if not terms:
            return xapian.Query.MatchNothing
        return xapian.Query(xapian.Query.OP_OR, terms) if len(terms) > 1 else xapian.Query(terms[0])

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
    def uids(self, query: Query, guid: str) -> set[int]:
        """UIDs of the documents of mailbox `guid` matching `query`. Raises: StoreError.

        Reading a UID costs Python time per match, so when Xapian estimates that most of the mailbox matches,
        the (smaller) complement is read instead and subtracted from the mailbox's UIDs (cached per revision)."""
        mailbox = xapian.Query(schema.mailbox_term(guid))
        filtered = xapian.Query(xapian.Query.OP_FILTER, query, mailbox)
        indexed = self.indexed_uids(guid)
        if len(indexed) >= COMPLEMENT_MIN and 2 * self._estimate(filtered) > len(indexed):
            return indexed - self._match(xapian.Query(xapian.Query.OP_AND_NOT, mailbox, query))
        return self._match(filtered)

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
        """UIDs (value slot) of every match of a query that is already filtered to one mailbox."""
        # The match spy collects the UID slot of every match in C++; reading it back through the raw SWIG
        # iterator costs ~0.5 us per UID instead of ~1.4 us through the Python wrapper.
        for attempt in range(MODIFIED_RETRIES + 1):
            spy = xapian.ValueCountMatchSpy(schema.SLOT_UID)
            with self._xapian("search"):
                enquire = self._enquire(query)
                enquire.add_matchspy(spy)
                try:
                    enquire.get_mset(0, 0, self.db.get_doccount())
                except xapian.DatabaseModifiedError:
                    if attempt == MODIFIED_RETRIES:
                        raise
                    self.db.reopen()  # the revision read was overwritten by commits: read the latest
                    continue
            return _spy_uids(spy)
        raise StoreError(f"{self.path.parent.name}: search failed")  # not reached: the last attempt raises

    def document_data(self, guid: str, uid: int) -> dict[str, Any] | None:
        with self._xapian("reading a document"):
            for item in self.db.postlist(schema.id_term(guid, uid)):
                return dict(json.loads(self.db.get_document(item.docid).get_data()))
        return None


def _gram(prefix: str, gram: str, marker: str, absent: str) -> Query:
    """A field has a common gram: its term, or the marker of its group stored by absence and not its absence term."""
    by_absence = xapian.Query(xapian.Query.OP_AND_NOT, xapian.Query(prefix + marker), xapian.Query(prefix + absent))
    return xapian.Query(xapian.Query.OP_OR, xapian.Query(prefix + gram), by_absence)


def _spy_uids(spy: Any) -> set[int]:
    raw = getattr(xapian, "_xapian", None)
    if raw is None or not hasattr(raw, "ValueCountMatchSpy_values_begin"):  # other bindings: the wrapper
        return {int(item.term) for item in spy.values()}
    it, end = raw.ValueCountMatchSpy_values_begin(spy), raw.ValueCountMatchSpy_values_end(spy)
    get, step, at_end = raw._TermIterator_get_term, raw._TermIterator___next__, raw._TermIterator_equals
    out = set()
    while not at_end(it, end):
        out.add(int(get(it)))
        step(it)
    return out
