"""The `update` request: a streamed XML body of `<add><doc>`, `<delete><id>` and `<delete><query>` read
chunk by chunk (expat), turned into pending per-user operations and written in bounded batches, one writer
and one in-process lock per user index.

The only module here that writes to an index, through the facade (service.write_documents under
service.write_lock); it reuses the parser (deletes by query) and the evaluation (which documents such a query
matches).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from xml.parsers import expat

from ftsd import service
from ftsd.analysis import Analyzer
from ftsd.digits import parse_uid
from ftsd.errors import QueryError, TooLargeError, UnknownUserError
from ftsd.indexer.pipeline import text_document
from ftsd.query import MAILBOX_GUID, Node, check_cost
from ftsd.runtime import Runtime
from ftsd.service import Document
from ftsd.settings import Settings
from ftsd.solr.attachments import AttachmentTexts
from ftsd.solr.lucene import KEY_FIELDS, TEXT_FIELDS, Scope, parse_lucene
from ftsd.solr.reply import search
from ftsd.userdb import User

log = logging.getLogger(__name__)


# == update =====================================================================================================

@dataclass(slots=True)
class _Doc:
    """One `<doc>` being read: key fields, text fields, and the atomic-update operation of each text field."""

    keys: dict[str, str] = field(default_factory=dict)
    texts: dict[str, list[str]] = field(default_factory=dict)
    chars: dict[str, int] = field(default_factory=dict)
    updates: dict[str, str] = field(default_factory=dict)  # field -> set | add (Solr atomic update)


@dataclass(frozen=True, slots=True)
class UpdateOp:
    """A pending change of one user's index: add (document ready, or fields to merge), delete, delete by query."""

    kind: str  # "add" | "merge" | "delete" | "query"
    user: str
    guid: str = ""
    uid: int = 0
    document: Document | None = None
    fields: dict[str, str] = field(default_factory=dict)
    updates: dict[str, str] = field(default_factory=dict)
    query: Node | None = None


_KEY_CHARS = 1024  # uid, box, user, id: longer is never valid


class UpdateSession:
    """One `update` request: `feed()` body chunks as they arrive, then `close()`. Documents are analysed as soon as
    their `</doc>` is read and written in batches (by count and by size), so memory stays bounded whatever the
    size of the POST. Everything is committed -- searchable -- before close() returns: Dovecot may search right
    after an add, and with `soft_commit=no` it never sends a commit. Raises: QueryError, UnknownUserError,
    IndexLockedError, StoreError."""

    def __init__(self, settings: Settings, runtime: Runtime | None = None) -> None:
        self.settings = settings
        # concurrent update requests for a user queue on the runtime's lock of its index, not on Xapian's lock
        self.runtime = runtime if runtime is not None else Runtime(settings)
        self.analyzer = Analyzer.of(settings.fts)
        # written in batches of fts.commit_limit documents or fts.batch_bytes of document data, what comes first
        self.flush_docs, self.flush_bytes = settings.fts.commit_limit, settings.fts.batch_bytes
        self.pending: list[UpdateOp] = []
        self.pending_bytes = 0
        self.added = self.deleted = 0
        self._users: dict[str, User] = {}
        # [solr] attachments: the text of each added message's attachments, from the Maildir
        self.attachments = AttachmentTexts(settings, self.runtime) if settings.solr.attachments else None
        self._parser = expat.ParserCreate("UTF-8")
        self._parser.buffer_text = True
        self._parser.buffer_size = 1 << 16
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end
        self._parser.CharacterDataHandler = self._text
        self._parser.StartDoctypeDeclHandler = self._no_dtd
        self._parser.EntityDeclHandler = self._no_dtd
        self._stack: list[str] = []
        self._doc: _Doc | None = None
        self._field: tuple[str, str] | None = None  # (name, update op) of the open <field>
        self._chars: list[str] | None = None  # text of the open <field>, <id> or <query>
        self._room = 0  # characters the open <field>, <id> or <query> may still add
        self._fed = 0  # body bytes fed so far
        self._doc_start = 0  # byte offset of the open <doc>
        self._started = False

    # -- XML events ---------------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self._started = self._started or bool(data.strip())
        self._fed += len(data)
        try:
            self._parser.Parse(data, False)
        except expat.ExpatError as exc:
            raise QueryError(f"malformed update XML: {exc}") from None
        limit = self.settings.limits.update_doc_bytes
        if self._doc is not None and self._fed - self._doc_start > limit:
            raise TooLargeError(f"a <doc> of the Solr update is larger than limits.update_doc_bytes = {limit} bytes")
        self._maybe_flush()

    def close(self) -> None:
        if not self._started:  # no body at all: `update?commit=true` and the like
            return
        try:
            self._parser.Parse(b"", True)
        except expat.ExpatError as exc:
            raise QueryError(f"malformed update XML: {exc}") from None
        self.flush()

    def _no_dtd(self, *args: Any) -> None:
        raise QueryError("DTDs and entity declarations are not accepted in update XML")

    def _start(self, name: str, attrs: dict[str, str]) -> None:
        parent = self._stack[-1] if self._stack else ""
        self._stack.append(name)
        if name == "doc" and parent == "add":
            self._doc = _Doc()
            self._doc_start = self._parser.CurrentByteIndex
        elif name == "field" and parent == "doc" and self._doc is not None:
            update = attrs.get("update", "")
            if update not in ("", "set", "add"):
                raise QueryError(f"atomic update {update!r} is not supported (set, add)")
            if attrs.get("null") == "true":
                update = "set"
            self._field, self._chars = (attrs.get("name", ""), update), []
            self._room = self._field_room(self._doc, self._field[0])
        elif name in ("id", "query") and parent == "delete":
            self._chars = []
            self._room = self.settings.limits.solr_query_chars

    def _field_room(self, doc: _Doc, name: str) -> int:
        """Characters a field may keep: text fields share fts.max_text_chars per document (one document costs at
        most that), key fields are short, other fields are ignored and keep nothing."""
        if name in TEXT_FIELDS:
            return max(0, self.settings.fts.max_text_chars - sum(doc.chars.values()))
        return _KEY_CHARS if name in KEY_FIELDS else 0

    def _text(self, data: str) -> None:
        if self._chars is None:
            return
        if self._field is not None:  # one huge field must not fill the memory: keep what will be indexed
            data = data[: self._room]
            self._room -= len(data)
        elif len(data) > self._room:  # <id> or <query>: refused rather than cut (a cut query deletes other mail)
            limit = self.settings.limits.solr_query_chars
            raise TooLargeError(f"a <delete> <id> or <query> is longer than limits.solr_query_chars = {limit}")
        else:
            self._room -= len(data)
        if data:
            self._chars.append(data)

    def _end(self, name: str) -> None:
        self._stack.pop()
        if name == "field" and self._field is not None and self._doc is not None:
            self._end_field(self._doc, *self._field, "".join(self._chars or ()))
            self._field, self._chars = None, None
        elif name == "doc" and self._doc is not None and self._stack[-1:] == ["add"]:
            self._queue(self._end_doc(self._doc))
            self._doc = None
        elif name in ("id", "query") and self._chars is not None:
            text, self._chars = "".join(self._chars).strip(), None
            self._queue(self._delete_id(text) if name == "id" else self._delete_query(text))

    # -- documents ----------------------------------------------------------------------------------------------
    def _end_field(self, doc: _Doc, name: str, update: str, text: str) -> None:
        if name in KEY_FIELDS:
            doc.keys[name] = text.strip() if name != "user" else text
        elif name in TEXT_FIELDS:
            room = self.settings.fts.max_text_chars - sum(doc.chars.values())
            parts = doc.texts.setdefault(name, [])
            if room > 0 and text:
                parts.append(text[:room])
                doc.chars[name] = doc.chars.get(name, 0) + min(len(text), room)
            if update:
                doc.updates[name] = update
        else:
            log.debug("Solr update: field %r ignored", name)

    def _identity(self, keys: dict[str, str]) -> tuple[str, str, int]:
        uid_s, _, rest = keys.get("id", "").partition("/")
        box_s, _, user_s = rest.partition("/")
        uid_text, box, user = keys.get("uid", uid_s), keys.get("box", box_s), keys.get("user", user_s)
        uid = parse_uid(uid_text)
        if uid is None:
            raise QueryError(f"document without a valid uid: {keys}")
        if not MAILBOX_GUID.fullmatch(box):
            raise QueryError(f"document without a valid box (mailbox GUID): {keys}")
        if not user:
            raise QueryError("public namespaces (empty user) are not supported by ftsd's Solr endpoint")
        self._user(user)
        return user, box, uid

    def _end_doc(self, doc: _Doc) -> UpdateOp:
        user, guid, uid = self._identity(doc.keys)
        texts = {name: text for name, parts in doc.texts.items() if (text := "".join(parts))}
        if doc.updates:
            return UpdateOp("merge", user, guid, uid, fields=texts, updates=doc.updates)
        if self.attachments is not None:
            self._add_attachments(texts, self.attachments.text(self._user(user), guid, uid))
        return UpdateOp("add", user, guid, uid, self._document(guid, uid, texts))

    def _add_attachments(self, texts: dict[str, str], extra: str) -> None:
        """Attachment text goes to the body, within what one document may keep (fts.max_text_chars)."""
        room = self.settings.fts.max_text_chars - sum(len(t) for t in texts.values())
        if extra and room > 1:
            body = texts.get("body", "")
            texts["body"] = f"{body}\n{extra[: room - 1]}" if body else extra[:room]

    def _document(self, guid: str, uid: int, texts: dict[str, str]) -> Document:
        fields = {TEXT_FIELDS[name]: text for name, text in texts.items()}
        return text_document(guid, uid, fields, {"uid": uid, "source": "solr", "fields": texts}, self.analyzer)

    def _delete_id(self, text: str) -> UpdateOp | None:
        uid_s, _, rest = text.partition("/")
        guid, _, user = rest.partition("/")
        if not user:  # public namespace: never indexed here, nothing to delete
            log.info("Solr delete of %r ignored: no user", text)
            return None
        uid = parse_uid(uid_s)
        if uid is None or not MAILBOX_GUID.fullmatch(guid):
            raise QueryError(f"cannot delete id {text!r}: expected uid/box/user")
        self._user(user)
        return UpdateOp("delete", user, guid, uid)

    def _delete_query(self, text: str) -> UpdateOp:
        node = check_cost(parse_lucene(text), self.settings.limits)
        user = Scope.of(node).user
        self._user(user)
        return UpdateOp("query", user, query=node)

    def _user(self, name: str) -> User:
        """The user, who must be known (listed in the passwd-file; userdb static: has a Maildir): a forged name
        never gets index directories made for it."""
        if name not in self._users:
            user = self.runtime.userdb.lookup(name)  # the userdb refuses names it does not list
            if self.settings.userdb.driver == "static" and not user.maildir.is_dir():
                raise UnknownUserError(f"{name}: no such user (userdb static: no Maildir at {user.maildir})")
            self._users[name] = user
        return self._users[name]

    # -- writing ------------------------------------------------------------------------------------------------
    def _queue(self, op: UpdateOp | None) -> None:
        if op is not None:
            self.pending.append(op)
            size = len(op.document.data) if op.document else 0
            self.pending_bytes += size + sum(len(t) for t in op.fields.values())

    def _maybe_flush(self) -> None:
        if len(self.pending) >= self.flush_docs or self.pending_bytes >= self.flush_bytes:
            self.flush()

    def flush(self) -> None:
        """Write and commit everything read so far, one writer per user."""
        ops, self.pending, self.pending_bytes = self.pending, [], 0
        for name in dict.fromkeys(op.user for op in ops):
            self._apply(self._users[name], [op for op in ops if op.user == name])

    def _apply(self, user: User, ops: list[UpdateOp]) -> None:
        with service.write_lock(self.settings, user, runtime=self.runtime):
            batch: list[UpdateOp] = []
            for op in ops:
                if op.kind in ("add", "delete"):
                    batch.append(op)
                    continue
                self._write_batch(user, batch)  # a merge or a delete by query reads the committed index
                batch = []
                self._read_write(user, op)
            self._write_batch(user, batch)

    def _write_batch(self, user: User, ops: list[UpdateOp]) -> None:
        service.write_documents(self.settings, user, [(op.guid, op.uid, op.document) for op in ops],
                                runtime=self.runtime)
        self.added += sum(op.document is not None for op in ops)
        self.deleted += sum(op.document is None for op in ops)

    def _read_write(self, user: User, op: UpdateOp) -> None:
        if op.kind == "query":
            assert op.query is not None
            hits = search(self.settings, op.query, self.runtime)
            self._write_batch(user, [UpdateOp("delete", user.name, h.box, h.uid) for h in hits])
            return
        data = service.document_data(self.settings, user, op.guid, op.uid, runtime=self.runtime)
        texts = dict(data["fields"]) if data and isinstance(data.get("fields"), dict) else {}
        for name, text in op.fields.items():
            texts[name] = texts.get(name, "") + text if op.updates.get(name) == "add" and texts.get(name) else text
        texts.update({name: "" for name, how in op.updates.items() if how == "set" and name not in op.fields})
        self._write_batch(user, [UpdateOp("add", user.name, op.guid, op.uid, self._document(op.guid, op.uid, texts))])
