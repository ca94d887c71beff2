"""Evaluating a parsed Solr query over one user's index: candidate UIDs from the index, then whatever the
index alone cannot settle checked against the stored field texts (or the Maildir, for documents written by
ftsd's own indexer), so the hits are exact.

Shared by `select` (reply.py) and delete by query (update.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce

from ftsd.analysis import Analyzer, QueryPieces, normalise, searchable
from ftsd.errors import FtsdError
from ftsd.maildir import Mailbox, list_mailboxes, read_uidlist, scan_mailbox
from ftsd.message import parse_message
from ftsd.service import open_searcher, uidlist_dir
from ftsd.settings import Settings
from ftsd.solr.lucene import (
    _GUID,
    KEY_FIELDS,
    TEXT_FIELDS,
    AndQ,
    MatchAll,
    OrQ,
    SolrNode,
    Term,
    _scope_user,
    _values_of,
)
from ftsd.store.searcher import Query, Searcher
from ftsd.userdb import User, lookup_user

log = logging.getLogger(__name__)

# `hdr` candidates also come from the header fields: ftsd's own indexer keeps their values out of `headers`.
_HDR_CANDIDATES = ("headers", "subject", "from", "to", "cc", "bcc")


# == evaluation =================================================================================================

Fields = dict[str, str]


class _BoxSearch:
    """One query over one mailbox: (sure, maybe) UID sets from the index, maybe - sure checked on stored text."""

    def __init__(self, searcher: Searcher, analyzer: Analyzer, user: str, guid: str,
                 maildir: Callable[[int], Fields | None]) -> None:
        self.searcher, self.analyzer, self.user, self.guid = searcher, analyzer, user, guid
        self.maildir = maildir
        self.universe = searcher.indexed_uids(guid)
        self.pieces: dict[str, QueryPieces] = {}

    def _pieces(self, value: str) -> QueryPieces:
        if value not in self.pieces:
            self.pieces[value] = self.analyzer.pieces(value)
        return self.pieces[value]

    def run(self, node: SolrNode) -> set[int]:
        if not self.universe:
            return set()
        sure, maybe = self._sets(node)
        return sure | {uid for uid in maybe - sure if self._verify(uid, node)}

    def _key_matches(self, term: Term, uid: int | None) -> bool:
        if term.field == "user":
            return term.value == self.user
        if term.field == "box":
            return term.value == self.guid
        if term.field == "uid":
            return term.value.isdigit() and (uid is None or int(term.value) == uid)
        uid_s, _, rest = term.value.partition("/")
        box, _, user = rest.partition("/")
        return box == self.guid and user == self.user and uid_s.isdigit() and (uid is None or int(uid_s) == uid)

    def _sets(self, node: SolrNode) -> tuple[set[int], set[int]]:
        u = self.universe
        if isinstance(node, MatchAll):
            return u, u
        if isinstance(node, Term) and node.field in KEY_FIELDS:
            if not self._key_matches(node, None):
                return set(), set()
            if node.field in ("uid", "id"):
                found = {int(node.value.partition("/")[0])} & u
                return found, found
            return u, u
        if isinstance(node, Term):
            pieces = self._pieces(node.value)
            if pieces.runs is None:
                return set(), set()
            if not pieces.text or not pieces.runs:  # `field:""` or only punctuation: read every document
                return set(), u
            found = self._lookup((TEXT_FIELDS[node.field],), pieces.runs)
            maybe = found | self._lookup(_HDR_CANDIDATES, pieces.runs) if node.field == "hdr" else found
            return (found if pieces.exact else set()), maybe
        if isinstance(node, AndQ):
            pairs = [self._sets(n) for n in node.items]
            return reduce(set.__and__, (p[0] for p in pairs)), reduce(set.__and__, (p[1] for p in pairs))
        if isinstance(node, OrQ):
            pairs = [self._sets(n) for n in node.items]
            return reduce(set.__or__, (p[0] for p in pairs)), reduce(set.__or__, (p[1] for p in pairs))
        sure, maybe = self._sets(node.item)
        return u - maybe, u - sure

    def _lookup(self, fields: Sequence[str], runs: Sequence[str]) -> set[int]:
        exact_chars, partial = self.analyzer.exact_chars, self.analyzer.partial
        query: Query = Searcher.and_([self.searcher.piece(fields, run, exact_chars, partial) for run in runs])
        return self.searcher.uids(query, self.guid) & self.universe

    def _verify(self, uid: int, node: SolrNode) -> bool:
        data = self.searcher.document_data(self.guid, uid)
        fields = data.get("fields") if data else None
        if not isinstance(fields, dict):  # written by ftsd's Maildir indexer, which keeps no text
            fields = self.maildir(uid)
        if fields is None:  # and the message is not readable here: the index answer stands (a superset)
            log.warning("%s %s UID %d: no text to check the match against, kept", self.user, self.guid, uid)
            return True
        cache: dict[str, str] = {}
        return self._eval(node, uid, fields, cache)

    def _eval(self, node: SolrNode, uid: int, fields: Fields, cache: dict[str, str]) -> bool:
        if isinstance(node, MatchAll):
            return True
        if isinstance(node, Term) and node.field in KEY_FIELDS:
            return self._key_matches(node, uid)
        if isinstance(node, Term):
            pieces = self._pieces(node.value)
            raw = fields.get(node.field, "")
            if pieces.runs is None:
                return False
            if not pieces.text:
                return bool(raw)  # IMAP `SUBJECT ""`: the header is there
            if node.field not in cache:
                cache[node.field] = searchable(normalise(raw), self.analyzer.max_word_chars)
            return pieces.text in cache[node.field]
        if isinstance(node, AndQ):
            return all(self._eval(n, uid, fields, cache) for n in node.items)
        if isinstance(node, OrQ):
            return any(self._eval(n, uid, fields, cache) for n in node.items)
        return not self._eval(node.item, uid, fields, cache)


class _MaildirTexts:
    """Field texts of messages indexed by ftsd's own Maildir indexer, read from the Maildir (found lazily by GUID)
    when this host has it: such documents keep no text, and a match that needs checking must still be exact."""

    def __init__(self, settings: Settings, user: User, guid: str) -> None:
        self.settings, self.user, self.guid = settings, user, guid
        self._box: Mailbox | None | bool = False  # False: not looked for yet

    def _mailbox(self) -> Mailbox | None:
        if self._box is False:
            self._box = None
            try:
                for name, path in list_mailboxes(self.user.maildir):
                    listed = read_uidlist(path / "dovecot-uidlist")
                    if listed is None or listed.guid == self.guid:
                        box = scan_mailbox(self.user.maildir, name, uidlist_dir(self.user))
                        if box.guid == self.guid:
                            self._box = box
                            break
            except FtsdError as exc:
                log.info("%s: Maildir not readable for checking matches: %s", self.user.name, exc)
        return self._box if isinstance(self._box, Mailbox) else None

    def __call__(self, uid: int) -> Fields | None:
        box = self._mailbox()
        path = box.messages.get(uid) if box else None
        try:
            raw = path.read_bytes() if path else None
        except OSError:
            raw = None
        if raw is None:
            return None
        p = parse_message(raw, self.settings)
        return {"body": p.body, "hdr": p.headers, "subject": p.subject, "from": p.from_, "to": p.to, "cc": p.cc,
                "bcc": p.bcc}


@dataclass(frozen=True, slots=True)
class Hit:
    box: str
    uid: int
    user: str


def search(settings: Settings, node: SolrNode) -> list[Hit]:
    """Every document of the query's user (and mailboxes) matching node, unsorted. Raises: QueryError, StoreError."""
    name = _scope_user(node)
    user = lookup_user(settings, name)
    searcher = open_searcher(user)
    if searcher is None:  # nothing indexed yet for this user: no hits (the last-UID lookup then means 0)
        return []
    try:
        analyzer = Analyzer.of(settings.fts)
        boxes = _values_of(node, "box")
        guids = sorted(boxes) if boxes is not None else searcher.guids()
        hits: list[Hit] = []
        for guid in guids:
            if _GUID.fullmatch(guid):
                box = _BoxSearch(searcher, analyzer, name, guid, _MaildirTexts(settings, user, guid))
                hits += [Hit(guid, uid, name) for uid in box.run(node)]
        return hits
    finally:
        searcher.close()

