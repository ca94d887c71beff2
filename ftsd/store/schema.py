"""Index schema: term prefixes, value slots, metadata keys and the schema version kept in the index.

One document per message. Terms are suffixes of normalised runs (see analysis.py) under a field prefix; the
boolean term G<mailbox guid> restricts to a mailbox, Q<guid>:<uid> identifies a message, value slot 0 holds the UID.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Set
from typing import Any

import xapian

SCHEMA_VERSION = "1"

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


def id_term(guid: str, uid: int) -> str:
    return f"{ID_PREFIX}{guid}:{uid}"


def mailbox_term(guid: str) -> str:
    return MAILBOX_PREFIX + guid


def build_document(guid: str, uid: int, terms: Mapping[str, Set[str]], data: Mapping[str, Any]) -> bytes:
    """A serialised Xapian document (built in a worker process, unserialised by the writer)."""
    doc = xapian.Document()
    for fieldname, field_terms in terms.items():
        prefix = FIELD_PREFIXES[fieldname]
        for term in field_terms:
            doc.add_term(prefix + term)
    doc.add_boolean_term(mailbox_term(guid))
    doc.add_boolean_term(id_term(guid, uid))
    doc.add_value(SLOT_UID, str(uid))
    doc.set_data(json.dumps(data, separators=(",", ":")))
    return bytes(doc.serialise())


def mailbox_metadata(db: Any) -> dict[str, dict[str, Any]]:
    """guid -> metadata {name, uidvalidity, last_uid, messages} of every mailbox an index knows."""
    out = {}
    for key in db.metadata_keys(META_MAILBOX):
        raw = db.get_metadata(key)
        if raw:
            out[key.decode()[len(META_MAILBOX) :]] = json.loads(raw)
    return out
