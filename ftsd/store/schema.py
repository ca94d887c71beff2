"""Index schema: term prefixes, value slots, metadata keys and the schema version kept in the index.

One document per message. Terms are the words, chunks, marks and short grams of each field (analysis.py) under a
field prefix; the boolean term G<mailbox guid> restricts to a mailbox, Q<guid>:<uid> identifies a message, value
slot 0 holds the UID.
The lexicon of words, chunks and marks lives in metadata (store/lexicon.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

import xapian

from ftsd.analysis import Terms

SCHEMA_VERSION = "4"  # 1: suffix terms; 2: words + lexicon; 3: + marks (runs of non-word characters);
# 4: chunks (text between spaces with punctuation) instead of punctuated ICU runs

FIELD_PREFIXES = {
    "subject": "S",
    "from": "F",
    "to": "T",
    "cc": "C",
    "bcc": "B",
    "headers": "H",  # header names, and "Name: value" of every header without a field of its own
    "body": "X",
}
MAILBOX_PREFIX = "G"
ID_PREFIX = "Q"
SLOT_UID = 0

META_SCHEMA = "ftsd.schema"
META_MAILBOX = "ftsd.mailbox."  # + guid -> JSON {name, uidvalidity, last_uid, messages}
META_LEXICON = "ftsd.lexicon."  # + kind + field prefix + "." + chunk id -> newline-separated entries
WORDS, CHUNKS, MARKS = "w", "c", "p"  # lexicon kinds: word characters only / with punctuation / no word character


def id_term(guid: str, uid: int) -> str:
    return f"{ID_PREFIX}{guid}:{uid}"


def mailbox_term(guid: str) -> str:
    return MAILBOX_PREFIX + guid


class Document(NamedTuple):
    """A serialised Xapian document (built in a worker process, unserialised by the writer) and its lexicon
    entries (kind + field prefix + entry) for the writer to list."""

    data: bytes
    lexicon: tuple[str, ...]


def build_document(guid: str, uid: int, terms: Mapping[str, Terms], data: Mapping[str, Any]) -> Document:
    doc = xapian.Document()
    lexicon: list[str] = []
    for fieldname, field_terms in terms.items():
        prefix = FIELD_PREFIXES[fieldname]
        for term in field_terms.all():
            doc.add_term(prefix + term)
        lexicon += [WORDS + prefix + w for w in field_terms.words]
        lexicon += [CHUNKS + prefix + c for c in field_terms.chunks]
        lexicon += [MARKS + prefix + m for m in field_terms.marks]
    doc.add_boolean_term(mailbox_term(guid))
    doc.add_boolean_term(id_term(guid, uid))
    doc.add_value(SLOT_UID, str(uid))
    doc.set_data(json.dumps(data, separators=(",", ":")))
    return Document(bytes(doc.serialise()), tuple(lexicon))


def mailbox_metadata(db: Any) -> dict[str, dict[str, Any]]:
    """guid -> metadata {name, uidvalidity, last_uid, messages} of every mailbox an index knows."""
    out = {}
    for key in db.metadata_keys(META_MAILBOX):
        raw = db.get_metadata(key)
        if raw:
            out[key.decode()[len(META_MAILBOX) :]] = json.loads(raw)
    return out
