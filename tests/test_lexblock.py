"""Compressed lexicon blocks (store/lexblock.py, schema 6) on real Xapian databases: an index of schema 5 (plain
blocks) is read and written without a rebuild and marked 6 by its first write, damage is a corrupt index, a block
never inflates past MAX_BLOCK_BYTES, and the tails of all fields share one budget."""

import random

import pytest
import xapian
import zstandard

from ftsd.analysis import Terms
from ftsd.errors import CorruptIndexError
from ftsd.store import lexblock, lexicon, schema
from ftsd.store.lexicon import Lexicon
from ftsd.store.schema import META_LEXICON, META_LEXSEG, WORDS, Document, build_document
from ftsd.store.searcher import Searcher
from ftsd.store.writer import IndexWriter


def _document(uid: int, subject: set[str], body: frozenset[str] = frozenset()) -> Document:
    terms = {"subject": Terms(frozenset(subject), frozenset(), frozenset())}
    if body:
        terms["body"] = Terms(body, frozenset(), frozenset())
    return build_document("0" * 32, uid, terms, {"uid": uid})


def _brute(db, needle: str, prefix: str = "S") -> list[str]:
    return sorted(prefix + e for e in lexicon.stored_entries(db, 3)[WORDS + prefix] if needle in e)


def _writer(path):
    return IndexWriter(path, lock_timeout_s=5, commit_limit=1000, batch_bytes=1 << 30)


def _version(path) -> str:
    db = xapian.Database(str(path))
    try:
        return str(db.get_metadata(schema.META_SCHEMA).decode())
    finally:
        db.close()


def _values(path) -> list[bytes]:
    db = xapian.Database(str(path))
    try:
        return [v for k in db.metadata_keys(META_LEXICON) if (v := db.get_metadata(k))]
    finally:
        db.close()


def test_blocks_round_trip_and_old_blocks_read_as_they_are():
    rng = random.Random(1)
    text = "\n".join("".join(rng.choice("abcé東😀-.") for _ in range(rng.randrange(1, 20))) for _ in range(3000))
    raw = text.encode("utf-8", "surrogatepass")
    packed = lexblock.pack(raw)
    assert packed[:1] == lexblock.MARK and len(packed) < len(raw)
    assert lexblock.unpack(packed) == raw and lexblock.stored_size(packed) == len(raw)
    assert lexblock.unpack(raw) == raw and lexblock.stored_size(raw) == len(raw)  # schema 5: the text itself
    assert lexblock.pack(b"") == b"" and lexblock.unpack(b"") == b""
    assert b"\xff" not in raw  # why the mark tells the layouts apart: UTF-8 never holds it


def test_a_damaged_block_is_a_corrupt_index():
    packed = lexblock.pack(b"alpha\nbeta\ngamma\n" * 100)
    damaged = [
        packed[:-4],  # truncated
        packed[:10] + bytes([packed[10] ^ 0x55]) + packed[11:],  # a flipped byte in the frame
        lexblock.MARK + b"\x07" + packed[2:],  # an unknown codec
        lexblock.MARK + lexblock.ZSTD + b"not zstd at all",
        lexblock.MARK,
    ]
    for bad in damaged:
        with pytest.raises(xapian.DatabaseCorruptError):
            lexblock.unpack(bad)


def test_a_block_inflates_to_at_most_max_block_bytes():
    bomb = zstandard.ZstdCompressor(level=3).compress(b"a" * (lexblock.MAX_BLOCK_BYTES + 1))
    assert len(bomb) < 1000
    no_size = zstandard.ZstdCompressor(write_content_size=False).compress(b"abc")  # size unknown until inflated
    lying = bytearray(zstandard.ZstdCompressor().compress(b"abc" * 40))
    for bad in (lexblock.MARK + lexblock.ZSTD + bomb, lexblock.MARK + lexblock.ZSTD + no_size):
        with pytest.raises(xapian.DatabaseCorruptError):
            lexblock.stored_size(bad)
        with pytest.raises(xapian.DatabaseCorruptError):
            lexblock.unpack(bad)
    lying[5] = 255  # the content size byte of a small frame: declares more than it holds
    with pytest.raises(xapian.DatabaseCorruptError):
        lexblock.unpack(lexblock.MARK + lexblock.ZSTD + bytes(lying))
    with pytest.raises(ValueError):
        lexblock.pack(b"a" * (lexblock.MAX_BLOCK_BYTES + 1))


def test_a_damaged_block_in_an_index_is_a_corrupt_index_error(tmp_path):
    path = tmp_path / "db"
    with _writer(path) as writer:
        writer.add(_document(1, {"pangolin", "armadillo"}))
    db = xapian.WritableDatabase(str(path), xapian.DB_OPEN)
    (key,) = list(db.metadata_keys(META_LEXICON + WORDS + "S."))
    db.set_metadata(key, db.get_metadata(key)[:-3])
    db.commit()
    db.close()
    searcher = Searcher(path)
    with pytest.raises(CorruptIndexError):
        searcher.piece(["subject"], "angol", 40, 3)
    searcher.close()


def _as_schema_5(monkeypatch) -> None:
    """What the previous ftsd stored: the same keys, the blocks as plain text, schema 5."""
    monkeypatch.setattr(lexblock, "pack", lambda text, level=0: text)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", "5")


def test_an_index_of_schema_5_is_read_written_and_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setattr(lexicon, "TAIL_BYTES", 300)  # tails, folds and segments of plain blocks
    monkeypatch.setattr(lexicon, "BLOCK_BYTES", 100)
    monkeypatch.setattr(lexicon, "SEGMENT_BLOCKS", 4)
    path = tmp_path / "db"
    with monkeypatch.context() as old:
        _as_schema_5(old)
        with _writer(path) as writer:
            for uid in range(1, 80):
                writer.add(_document(uid, {f"oldword{uid}", "shared"}))
                if uid % 10 == 0:
                    writer.commit()
    assert _version(path) == "5"
    assert _values(path) and all(v[:1] != lexblock.MARK for v in _values(path))
    assert list(xapian.Database(str(path)).metadata_keys(META_LEXSEG))  # plain segment blocks too
    searcher = Searcher(path)  # read as it is: no SchemaVersionError, no rebuild
    db = searcher.db
    searcher.lexicon.refresh(db)
    for needle in ("dword3", "hare", "oldword79", "word"):
        assert sorted(searcher.lexicon.expand(db, WORDS, ["S"], needle)) == _brute(db, needle), needle
    searcher.close()
    with _writer(path) as writer:  # the first write marks it 6: a schema-5 ftsd then refuses it
        writer.add(_document(100, {"newword"}))
    assert _version(path) == schema.SCHEMA_VERSION == "6"
    values = _values(path)
    assert any(v[:1] == lexblock.MARK for v in values) and any(v[:1] != lexblock.MARK for v in values)  # both
    db = xapian.Database(str(path))
    reader = Lexicon()
    reader.refresh(db)
    for needle in ("dword3", "ewwor", "shared", "old", "word7"):
        assert sorted(reader.expand(db, WORDS, ["S"], needle)) == _brute(db, needle), needle
    assert lexicon.missing(db, 3)[0] == 0
    db.close()
    writable = xapian.WritableDatabase(str(path), xapian.DB_OPEN)
    lexicon.rebuild(writable, 3)  # optimize: every block compressed
    writable.commit()
    writable.close()
    assert all(v[:1] == lexblock.MARK for v in _values(path))
    db = xapian.Database(str(path))
    reader = Lexicon()
    reader.refresh(db)
    for needle in ("dword3", "ewwor", "shared"):
        assert sorted(reader.expand(db, WORDS, ["S"], needle)) == _brute(db, needle), needle
    db.close()


def test_the_tails_of_all_fields_share_one_budget(tmp_path, monkeypatch):
    """The writer folds the largest tail once all tails together pass TAIL_BYTES; a rebuild keeps the smallest
    fields as tails within it."""
    monkeypatch.setattr(lexicon, "TAIL_BYTES", 2000)
    monkeypatch.setattr(lexicon, "BLOCK_BYTES", 200)
    path = tmp_path / "db"
    with _writer(path) as writer:
        for uid in range(1, 200):  # the body grows ~10x faster than the subject
            body = frozenset(f"bodyword{uid}x{k}" for k in range(10))
            writer.add(_document(uid, {f"subj{uid}"}, body))
            if uid % 20 == 0:
                writer.commit()
    db = xapian.Database(str(path))
    assert list(db.metadata_keys(META_LEXSEG + WORDS + "X."))  # the largest was folded
    assert not list(db.metadata_keys(META_LEXSEG + WORDS + "S."))  # the small one stayed a tail
    tails = sum(lexblock.stored_size(db.get_metadata(k)) for kp in (WORDS + "S", WORDS + "X")
                for k in lexicon._tail_keys(db, kp))
    assert tails <= 2000
    reader = Lexicon()
    reader.refresh(db)
    assert sorted(reader.expand(db, WORDS, ["X"], "word19x")) == _brute(db, "word19x", "X")
    assert sorted(reader.expand(db, WORDS, ["S"], "ubj19")) == _brute(db, "ubj19")
    db.close()
    writable = xapian.WritableDatabase(str(path), xapian.DB_OPEN)
    lexicon.rebuild(writable, 3)
    writable.commit()
    writable.close()
    db = xapian.Database(str(path))
    assert lexicon._tail_keys(db, WORDS + "S") and not lexicon._tail_keys(db, WORDS + "X")
    reader = Lexicon()
    reader.refresh(db)
    assert sorted(reader.expand(db, WORDS, ["X"], "word19x")) == _brute(db, "word19x", "X")
    assert lexicon.missing(db, 3)[0] == 0
    db.close()


def test_a_reader_keeps_a_tail_in_few_pieces_across_commits(tmp_path):
    """Each commit stores a small tail block; a reader catching up after each joins them instead of holding one
    piece per commit, and finds entries at the edges of its pieces."""
    path = tmp_path / "db"
    reader = Lexicon()
    with _writer(path) as writer:
        for uid in range(1, 41):
            writer.add(_document(uid, {f"edge{uid}word", f"{uid}start"}))
            writer.commit()
            db = xapian.Database(str(path))
            reader.refresh(db, [WORDS + "S"])
            assert len(reader.fields[WORDS + "S"].tail) == 1
            for needle in (f"edge{uid}w", f"{uid}sta", "dge", "word"):
                assert sorted(reader.expand(db, WORDS, ["S"], needle)) == _brute(db, needle), needle
            db.close()
    db = xapian.Database(str(path))
    assert len(lexicon._tail_keys(db, WORDS + "S")) == 40
    db.close()


def test_a_field_whose_pages_are_cheap_beside_the_index_leaves_memory(tmp_path, monkeypatch):
    """Within the budget, a field of at least SEGMENT_MIN_BYTES gets segments when it holds at most
    PAGED_BYTES_PER_DOCUMENT per document (its pages are a small part of the index), by the writer and by a
    rebuild; a field with more bytes per document stays a tail."""
    monkeypatch.setattr(lexicon, "TAIL_BYTES", 1 << 30)
    monkeypatch.setattr(lexicon, "BLOCK_BYTES", 200)
    monkeypatch.setattr(lexicon, "SEGMENT_MIN_BYTES", 1000)
    monkeypatch.setattr(lexicon, "PAGED_BYTES_PER_DOCUMENT", 12)
    path = tmp_path / "db"
    with _writer(path) as writer:
        for uid in range(1, 301):  # subject: ~6 new bytes a document; body: ~50
            body = frozenset(f"bw{uid}x{k}" for k in range(6))
            writer.add(_document(uid, {f"s{uid}"}, body))
            if uid % 50 == 0:
                writer.commit()
    for rebuilt in (False, True):
        if rebuilt:
            writable = xapian.WritableDatabase(str(path), xapian.DB_OPEN)
            lexicon.rebuild(writable, 3)
            writable.commit()
            writable.close()
        db = xapian.Database(str(path))
        assert list(db.metadata_keys(META_LEXSEG + WORDS + "S.")), rebuilt  # cheap pages: segments
        assert not list(db.metadata_keys(META_LEXSEG + WORDS + "X.")), rebuilt  # the body stays a tail
        reader = Lexicon()
        reader.refresh(db)
        assert sorted(reader.expand(db, WORDS, ["S"], "s29")) == _brute(db, "s29")
        assert sorted(reader.expand(db, WORDS, ["X"], "w29x")) == _brute(db, "w29x", "X")
        db.close()
