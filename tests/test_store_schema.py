"""The write path's document bytes and lexicon check (store/schema.py, store/lexicon.py) against Xapian itself: the
bytes build_document writes without Xapian must be the document Xapian's own API builds, and the lexicon writer
must list each entry that is new to the index exactly once."""

import xapian

from ftsd.analysis import Analyzer, Terms
from ftsd.store import lexblock, schema
from ftsd.store.lexicon import LexiconWriter
from ftsd.store.writer import IndexWriter

GUID = "0123456789abcdef0123456789abcdef"


def xapian_built(guid: str, uid: int, terms: dict[str, Terms], data: str) -> bytes:
    """The document as Xapian's API builds it, one add_term per term."""
    doc = xapian.Document()
    for fieldname, field_terms in terms.items():
        for term in field_terms.all():
            doc.add_term(schema.FIELD_PREFIXES[fieldname] + term)
    doc.add_boolean_term(schema.mailbox_term(guid))
    doc.add_boolean_term(schema.id_term(guid, uid))
    doc.add_value(schema.SLOT_UID, str(uid))
    doc.set_data(data)
    return bytes(doc.serialise())


def test_document_bytes_are_what_xapian_builds():
    analyzer = Analyzer()
    text = ("Grüße aus Köln, see bob@widgets.example.net -- 東京 e-mail ... " + " ".join(f"w{n}x" for n in range(400)))
    terms = {"subject": analyzer.terms("Re: Fahrländer [ticket #42]"), "from": analyzer.terms("bob@example.org"),
             "body": analyzer.terms(text), "cc": Terms(frozenset(), frozenset(), frozenset())}
    # beyond one length byte: a term of 300 bytes (Xapian's encode_length continues in 7-bit groups), > 255 terms
    terms["to"] = Terms(frozenset({"ö" * 150, "x" * 253, "y" * 254, "z" * 1000}), frozenset(), frozenset())
    assert sum(len(t.all()) for t in terms.values()) > 255
    for uid in (1, 254, 255, 4_000_000_000):
        ours = schema.build_document(GUID, uid, terms, {"uid": uid, "file": "1.M2P3.host:2,S"})
        theirs = xapian_built(GUID, uid, terms, f'{{"uid":{uid},"file":"1.M2P3.host:2,S"}}')
        assert bytes(xapian.Document.unserialise(ours.data).serialise()) == theirs
    empty = schema.build_document(GUID, 7, {}, {})
    assert bytes(xapian.Document.unserialise(empty.data).serialise()) == xapian_built(GUID, 7, {}, "")  # no data
    assert schema.serialisation_works()


def test_encode_length_matches_xapian():
    for n in (0, 1, 254, 255, 256, 382, 383, 384, 16_638, 16_639, 10**6, 2**32 - 1):
        doc = xapian.Document()
        doc.add_value(n, "v")  # the slot number is written with encode_length
        assert bytes(doc.serialise())[1:-3] == schema.encode_length(n), n  # count, slot, len, v, 0 terms


def test_document_lexicon_lists_entries_by_kind_and_field():
    terms = {"subject": Terms(frozenset({"hello", "world"}), frozenset({"a.b"}), frozenset({"h", "he"}),
                              frozenset({"--"})),
             "body": Terms(frozenset({"hello"}), frozenset(), frozenset({"x"}))}
    lexicon = dict(schema.build_document(GUID, 1, terms, {}).lexicon)
    assert {k: set(v.split("\n")) for k, v in lexicon.items()} == {
        "wS": {"hello", "world"}, "cS": {"a.b"}, "pS": {"--"}, "wX": {"hello"}}


def _pending(lexicon: LexiconWriter) -> dict[str, list[str]]:
    return {k: sorted(v) for k, v in lexicon.pending.items() if v}


def test_lexicon_lists_what_the_index_lacks_once(tmp_path):
    path = tmp_path / "ftsd.db"
    words = {"subject": Terms(frozenset({"alpha", "beta"}), frozenset({"a.b"}), frozenset())}
    with IndexWriter(path, lock_timeout_s=1, commit_limit=100, batch_bytes=10**9) as writer:
        assert writer.lexicon.fresh  # an empty index: term_exists is never asked
        writer.add(schema.build_document(GUID, 1, words, {}))
        writer.add(schema.build_document(GUID, 2, words, {}))
        assert _pending(writer.lexicon) == {"wS": ["alpha", "beta"], "cS": ["a.b"]}
    more = {"subject": Terms(frozenset({"alpha", "gamma"}), frozenset({"a.b", "c.d"}), frozenset())}
    with IndexWriter(path, lock_timeout_s=1, commit_limit=100, batch_bytes=10**9) as writer:
        assert not writer.lexicon.fresh  # the index stores entries this writer has not seen: it asks
        writer.add(schema.build_document(GUID, 3, more, {}))
        assert _pending(writer.lexicon) == {"wS": ["gamma"], "cS": ["c.d"]}
        writer.lexicon._rotate()  # the seen-set limit, twice: forgotten, stored entries are found through the index
        writer.lexicon._rotate()
        writer.add(schema.build_document(GUID, 4, more, {}))
        assert _pending(writer.lexicon) == {"wS": ["gamma"], "cS": ["c.d"]}
    db = xapian.Database(str(path))
    listed = [e for k in db.metadata_keys(schema.META_LEXICON)
              for e in lexblock.unpack(db.get_metadata(k)).decode().split("\n")]
    assert sorted(listed) == ["a.b", "alpha", "beta", "c.d", "gamma"]  # each once
    assert db.get_doccount() == 4
