"""Index schema: term prefixes, value slots, metadata keys and the schema version kept in the index.

One document per message. Terms are the words, chunks, marks and short grams of each field (analysis.py) under a
field prefix; the boolean term G<mailbox guid> restricts to a mailbox, Q<guid>:<uid> identifies a message, value
slot 0 holds the UID.
The lexicon of words, chunks and marks lives in metadata (store/lexicon.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import xapian

from ftsd.analysis import NATIVE, Terms

if NATIVE:
    from ftsd import _native

SCHEMA_VERSION = "6"  # 1: suffix terms; 2: words + lexicon; 3: + marks (runs of non-word characters);
# 4: chunks (text between spaces with punctuation) instead of punctuated ICU runs, common grams stored by absence;
# 5: the known 1-2 character grams as one pattern term per group of 8 (analysis.py, GRAM_GROUP);
# 6: lexicon blocks compressed (store/lexblock.py). An ftsd of schema 5 would scan them as text and miss entries,
# so it must refuse a 6; this one reads a 5 as it is (its blocks are plain text) and marks it 6 at its first write.
READS = frozenset({"5", SCHEMA_VERSION})  # schema versions read and written without a rebuild

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
SLOT_TEXTS = 1  # the message's kept texts (fts.store_texts, store/texts.py); absent: checks read the message file

META_SCHEMA = "ftsd.schema"
META_MAILBOX = "ftsd.mailbox."  # + guid -> JSON {name, uidvalidity, last_uid, messages}
META_LEXICON = "ftsd.lexicon."  # + kind + field prefix + "." + block id -> newline-separated entries
META_LEXSEG = "ftsd.lexseg."  # + kind + field prefix + "." + segment id -> its directory (store/lexgrams.py)
META_LEXGRAM = "ftsd.lexgram."  # + kind + field prefix + "." + segment id + "." + page -> gram pairs
WORDS, CHUNKS, MARKS = "w", "c", "p"  # lexicon kinds: word characters only / with punctuation / no word character


def id_term(guid: str, uid: int) -> str:
    return f"{ID_PREFIX}{guid}:{uid}"


def mailbox_term(guid: str) -> str:
    return MAILBOX_PREFIX + guid


class Document(NamedTuple):
    """One message's document as the writer takes it: `data` is Xapian's serialised form (the writer's one
    Document.unserialise), built here without a Xapian call per term; `lexicon` is (kind + field prefix,
    newline-joined entries) for the writer to list -- a few strings to pickle instead of one per entry."""

    data: bytes
    lexicon: tuple[tuple[str, str], ...]


# Xapian's document serialisation (xapian-core 1.4, api/serialise.cc): the values (count, then slot,
# length, bytes each), the terms (count, then length, term, wdf, number of positions each) and the data, which
# runs to the end. tests/test_store_schema.py holds it equal to what Xapian's own Document.serialise() gives.
_SHORT = [bytes((n,)) for n in range(255)]
_WDF_1 = b"\x01\x00"  # wdf 1, no positions: what add_term(term) stores
_WDF_0 = b"\x00\x00"  # a boolean term


def encode_length(n: int) -> bytes:
    """Xapian's encode_length: one byte below 255, else 0xff and n - 255 in 7-bit groups, low first, the last
    with its high bit set."""
    if n < 255:
        return _SHORT[n]
    out = bytearray(b"\xff")
    n -= 255
    while n > 0x7F:
        out.append(n & 0x7F)
        n >>= 7
    out.append(n | 0x80)
    return bytes(out)


def _heads(prefix: str) -> tuple[bytes, ...]:
    """Length + prefix of a term record, by the term's byte length (below _HEADS_MAX)."""
    raw = prefix.encode()
    return tuple(encode_length(n + len(raw)) + raw for n in range(_HEADS_MAX))


_HEADS_MAX = 1024
_HEADS = MappingProxyType({prefix: _heads(prefix) for prefix in FIELD_PREFIXES.values()})


def _term_records(prefix: str, terms: frozenset[str]) -> bytes:
    """The serialised records of a field's terms (length, prefix + term, wdf 1, no positions) in Xapian's order
    (sorted: it unserialises and inverts ~10 % faster than set order), built by C-level maps and a join: no
    Python step per term (this runs ~1,000 times per message)."""
    encoded = sorted(map(str.encode, terms))
    if not encoded:
        return b""
    lengths = list(map(len, encoded))
    if max(lengths) < _HEADS_MAX:
        heads: Iterable[bytes] = map(_HEADS[prefix].__getitem__, lengths)
    else:
        raw = prefix.encode()
        heads = [encode_length(n + len(raw)) + raw for n in lengths]
    return _WDF_1.join(map(bytes.__add__, heads, encoded)) + _WDF_1


def build_document(guid: str, uid: int, terms: Mapping[str, Terms], data: Mapping[str, Any], *,
                   native: bool = NATIVE, texts: bytes | None = None) -> Document:
    """The document of one message; `native`: the term records by ftsd._native (the same bytes, tests compare);
    `texts`: its kept texts (store/texts.py) for value slot SLOT_TEXTS."""
    booleans = (mailbox_term(guid).encode(), id_term(guid, uid).encode())
    records = [(b[:1], encode_length(len(b)) + b + _WDF_0) for b in booleans]
    count = len(booleans)
    lexicon: list[tuple[str, str]] = []
    for fieldname, field_terms in terms.items():
        prefix = FIELD_PREFIXES[fieldname]
        if native and NATIVE:  # the union, sort and records in C
            n, field_records = _native.term_records(prefix.encode(), field_terms.words, field_terms.chunks,
                                                     field_terms.grams, field_terms.marks)
        else:
            every = field_terms.all()
            n, field_records = len(every), _term_records(prefix, every)
        count += n
        records.append((prefix.encode(), field_records))
        for kind, entries in ((WORDS, field_terms.words), (CHUNKS, field_terms.chunks), (MARKS, field_terms.marks)):
            if entries:
                lexicon.append((kind + prefix, "\n".join(entries)))
    records.sort()  # by prefix: the whole term list in Xapian's order
    value = str(uid).encode()
    out = [_SHORT[2 if texts else 1], encode_length(SLOT_UID), encode_length(len(value)), value]
    if texts:  # values in slot order
        out += [encode_length(SLOT_TEXTS), encode_length(len(texts)), texts]
    out.append(encode_length(count))
    out += [record for _, record in records]
    out.append(json.dumps(data, separators=(",", ":")).encode() if data else b"")  # none: no record at all
    return Document(b"".join(out), tuple(lexicon))


def serialisation_works() -> bool:
    """True if this Xapian reads build_document's bytes as the document its own API builds (checked by each
    writer: a Xapian with another serialisation must not index nonsense)."""
    terms = {"subject": Terms(frozenset({"word", "w\u00f6rd" * 40}), frozenset({"a.b"}), frozenset({"w"}))}
    ours = xapian.Document.unserialise(build_document("g", 1, terms, {"uid": 1}, texts=b"\x00t" * 200).data)
    theirs = xapian.Document()
    for term in terms["subject"].all():
        theirs.add_term("S" + term)
    theirs.add_boolean_term(mailbox_term("g"))
    theirs.add_boolean_term(id_term("g", 1))
    theirs.add_value(SLOT_UID, "1")
    theirs.add_value(SLOT_TEXTS, b"\x00t" * 200)
    theirs.set_data('{"uid":1}')
    return bytes(ours.serialise()) == bytes(theirs.serialise())


def mailbox_metadata(db: Any) -> dict[str, dict[str, Any]]:
    """guid -> metadata {name, uidvalidity, last_uid, messages} of every mailbox an index knows."""
    out = {}
    for key in db.metadata_keys(META_MAILBOX):
        raw = db.get_metadata(key)
        if raw:
            out[key.decode()[len(META_MAILBOX) :]] = json.loads(raw)
    return out
