"""The lexicon's segments and gram pages (store/lexgrams.py, store/lexicon.py) on real Xapian databases: a needle
in a block is always among the candidates, the compiled pairs equal the Python twin, readers catch up across
commits, folds and a rebuild, the layout before segments is read and folded, and the block cache stays bounded."""

import random
import zlib

import pytest
import xapian
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftsd.analysis import Terms
from ftsd.store import lexgrams, lexicon
from ftsd.store.lexicon import Lexicon, Lexicons
from ftsd.store.schema import META_LEXGRAM, META_LEXICON, META_LEXSEG, WORDS, Document, build_document
from ftsd.store.searcher import Searcher
from ftsd.store.writer import IndexWriter

# entries: no newline; ASCII, accented, CJK and astral characters, as the lexicon holds them (UTF-8)
_ENTRY = st.text(st.sampled_from("abcxyz019-.@éüß東京€😀"), min_size=1, max_size=12)


def _candidates(directory: bytes, pages: list[bytes], needle: bytes) -> int:
    """The block bit set a reader fetches for `needle` (the pages read from the list instead of a database)."""
    segment = lexgrams.decode("x", directory)
    mask = (1 << segment.blocks) - 1
    for lo, hi in lexgrams.ranges(needle) or ():
        has = 0
        for n in lexgrams.pages_of(segment, lo, hi):
            has |= lexgrams.blocks_in(lexgrams.page(pages[n]), lo, hi)
        mask &= has
    return mask


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_ENTRY, min_size=1, max_size=8), min_size=1, max_size=6), _ENTRY, st.data(),
       st.sampled_from([1, 3, 2048]))
def test_a_needle_in_a_block_is_always_a_candidate(blocks, needle, data, page_pairs):
    # put the needle inside some entries at any position (start, middle, end, whole), in some blocks
    for entries in blocks:
        if data.draw(st.booleans()):
            n = data.draw(st.integers(0, len(entries) - 1))
            cut = data.draw(st.integers(0, len(entries[n])))
            entries[n] = entries[n][:cut] + needle + entries[n][cut:]
    stored = [lexgrams.frame(entries) for entries in blocks]
    directory, pages = lexgrams.encode(stored, page_pairs)
    encoded = needle.encode()
    for probe in {encoded, encoded[:3], encoded[1:], encoded[:2], encoded[-4:]}:  # and its pieces, any length
        if not probe or b"\n" in probe:
            continue
        mask = _candidates(directory, pages, probe)
        for b, text in enumerate(stored):
            if probe in text:
                assert mask >> b & 1, (probe, b)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_compiled_pairs_equal_the_python_twin(blocks):
    assert lexgrams.NATIVE, "ftsd._lexgrams is not built: run ./scripts/setup (needs gcc and python3-dev)"
    assert lexgrams.block_pairs(blocks) == lexgrams.py_block_pairs(blocks)


def test_candidates_are_few_on_random_strings():
    """What the pages are for: a needle from random (signature-like) entries is a candidate in few blocks."""
    rng = random.Random(3)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    blocks = [["".join(rng.choice(alphabet) for _ in range(30)) for _ in range(1000)] for _ in range(64)]
    directory, pages = lexgrams.encode([lexgrams.frame(entries) for entries in blocks])
    needle = blocks[17][500][10:16].encode()
    mask = _candidates(directory, pages, needle)
    assert mask >> 17 & 1 and bin(mask).count("1") <= 3


def _document(uid: int, words: set[str]) -> Document:
    return build_document("0" * 32, uid, {"subject": Terms(frozenset(words), frozenset(), frozenset())}, {"uid": uid})


def _brute(db, needle: str) -> list[str]:
    return sorted("S" + e for e in lexicon.stored_entries(db, 3)[WORDS + "S"] if needle in e)


@pytest.fixture
def small(monkeypatch):
    """Tails fold at ~300 bytes into blocks of ~100 bytes: folds and multi-block segments in a few documents."""
    monkeypatch.setattr(lexicon, "TAIL_BYTES", 300)
    monkeypatch.setattr(lexicon, "BLOCK_BYTES", 100)
    monkeypatch.setattr(lexicon, "SEGMENT_BLOCKS", 4)


def test_a_reader_catches_up_across_commits_folds_and_a_rebuild(tmp_path, small):
    rng = random.Random(11)
    path = tmp_path / "db"
    shared = Lexicon()
    needles = ["ab", "abc", "xyz", "kqz", "word", "é東", "0-9"]
    with IndexWriter(path, lock_timeout_s=5, commit_limit=1000, batch_bytes=1 << 30) as writer:
        for uid in range(1, 120):
            words = {"".join(rng.choice("abcxyzkq09é東") for _ in range(rng.randrange(3, 12))) for _ in range(3)}
            writer.add(_document(uid, words | {f"word{uid}"}))
            if uid % 10 == 0:
                writer.commit()
                db = xapian.Database(str(path))
                shared.refresh(db, [WORDS + "S"])
                for needle in needles:
                    assert sorted(shared.expand(db, WORDS, ["S"], needle)) == _brute(db, needle), needle
                db.close()
    db = xapian.Database(str(path))
    assert len(list(db.metadata_keys(META_LEXSEG))) >= 3  # folded several times
    assert sum(1 for _ in lexicon._tail_keys(db, WORDS + "S")) <= 3  # the tail stays short
    assert lexicon.missing(db, 3)[0] == 0
    db.close()
    writable = xapian.WritableDatabase(str(path), xapian.DB_OPEN)
    lexicon.rebuild(writable, 3)  # in place, as optimize does before compacting
    writable.commit()
    writable.close()
    db = xapian.Database(str(path))
    shared.refresh(db, [WORDS + "S"])  # its segments vanished: read afresh
    assert not shared.fields[WORDS + "S"].tail_keys
    for needle in needles:
        assert sorted(shared.expand(db, WORDS, ["S"], needle)) == _brute(db, needle), needle
    db.close()


def test_the_layout_before_segments_is_read_then_folded(tmp_path, small):
    path = tmp_path / "db"
    with IndexWriter(path, lock_timeout_s=5, commit_limit=1000, batch_bytes=1 << 30) as writer:
        for uid in range(1, 40):
            writer.add(_document(uid, {f"oldword{uid}", "shared"}))
    # rewrite its lexicon as the previous ftsd stored it: one value per ~4 M characters, ids of 8 digits
    db = xapian.WritableDatabase(str(path), xapian.DB_OPEN)
    entries = lexicon.stored_entries(db, 3)
    for prefix in (META_LEXICON, META_LEXSEG, META_LEXGRAM):
        for key in list(db.metadata_keys(prefix)):
            db.set_metadata(key, b"")
    for kind_prefix, listed in entries.items():
        db.set_metadata(f"{META_LEXICON}{kind_prefix}.00000000", "\n".join(listed))
    db.commit()
    db.close()
    db = xapian.Database(str(path))
    reader = Lexicon()
    reader.refresh(db)
    assert not reader.fields[WORDS + "S"].segments  # all tail
    assert sorted(reader.expand(db, WORDS, ["S"], "dword3")) == _brute(db, "dword3")
    db.close()
    with IndexWriter(path, lock_timeout_s=5, commit_limit=1000, batch_bytes=1 << 30) as writer:
        writer.add(_document(100, {"newword"}))  # the first write folds the old value into segments
    db = xapian.Database(str(path))
    assert not lexicon._tail_keys(db, WORDS + "S") and list(db.metadata_keys(META_LEXSEG + WORDS + "S."))
    reader.refresh(db)
    for needle in ("dword3", "ewwor", "shared", "old"):
        assert sorted(reader.expand(db, WORDS, ["S"], needle)) == _brute(db, needle), needle
    assert lexicon.missing(db, 3)[0] == 0
    db.close()


def test_a_reader_behind_a_fold_reopens(tmp_path, small):
    path = tmp_path / "db"
    with IndexWriter(path, lock_timeout_s=5, commit_limit=1000, batch_bytes=1 << 30) as writer:
        writer.add(_document(1, {"pangolin"}))
    lexicons = Lexicons()
    behind = Searcher(path, lexicons)
    behind.lexicon.refresh(behind.db)
    with IndexWriter(path, lock_timeout_s=5, commit_limit=1000, batch_bytes=1 << 30) as writer:
        for uid in range(2, 60):
            writer.add(_document(uid, {f"filler{uid}x"}))  # folds the tail that held "pangolin"
    ahead = Searcher(path, lexicons)
    assert ahead.lexicon is behind.lexicon
    ahead.lexicon.refresh(ahead.db)  # the shared lexicon moves past `behind`'s revision
    assert ahead.lexicon.fields[WORDS + "S"].segments  # folded
    with pytest.raises(xapian.DatabaseModifiedError):
        behind.lexicon.expand(behind.db, WORDS, ["S"], "angol")
    assert "Spangolin" in str(behind.piece(["subject"], "angol", 40, 3))  # the searcher reopens and retries
    for searcher in (behind, ahead):
        searcher.close()


def test_the_block_cache_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(lexicon, "BLOCK_BYTES", 2000)
    monkeypatch.setattr(lexicon, "TAIL_BYTES", 1000)  # rebuilt as a segment, not as one tail block
    rng = random.Random(5)
    path = tmp_path / "db"
    with IndexWriter(path, lock_timeout_s=5, commit_limit=1000, batch_bytes=1 << 30) as writer:
        for uid in range(1, 300):
            writer.add(_document(uid, {"".join(rng.choice("abcdefgh") for _ in range(20)) for _ in range(10)}))
    writable = xapian.WritableDatabase(str(path), xapian.DB_OPEN)
    lexicon.rebuild(writable, 3)
    writable.commit()
    writable.close()
    db = xapian.Database(str(path))
    reader = Lexicon(cache_bytes=10_000)
    reader.refresh(db)
    assert len(reader.fields[WORDS + "S"].segments) == 1
    for needle in ("ab", "abc", "hgf", "ddd", "abcd", "a", "bag", "cafe"):
        assert sorted(reader.expand(db, WORDS, ["S"], needle)) == _brute(db, needle), needle
        assert reader.cache.bytes <= 10_000
    assert reader.size() < 10_000 + 2_000
    db.close()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_ENTRY, min_size=1, max_size=60, unique=True), _ENTRY)
def test_lookups_through_a_real_database_match_brute_force(tmp_path_factory, entries, needle):
    path = tmp_path_factory.mktemp("lexdb") / "db"
    db = xapian.WritableDatabase(str(path), xapian.DB_CREATE)
    lexicon.store_segments(db, WORDS + "S", lexicon._cut(lexgrams.frame(entries[: len(entries) // 2])))
    db.set_metadata(f"{META_LEXICON}{WORDS}S.0123abcd", lexgrams.frame(entries[len(entries) // 2 :]))  # a tail
    db.commit()
    reader = Lexicon()
    reader.refresh(db)
    for probe in (needle, entries[0], entries[-1][1:]):
        if probe:
            assert sorted(reader.expand(db, WORDS, ["S"], probe)) == sorted({"S" + e for e in entries if probe in e})
    db.close()


def test_a_damaged_page_or_directory_is_a_corrupt_index_not_a_crash():
    """Damage is a DatabaseCorruptError (the searcher's translation makes it CorruptIndexError: the index is set
    aside and rebuilt), and a page never inflates past a page's size."""
    directory, pages = lexgrams.encode([lexgrams.frame(["alpha", "beta"])])
    assert len(lexgrams.page(pages[0]))
    bomb = zlib.compress(b"\0" * 50_000_000)
    for bad in (b"not zlib", bomb, zlib.compress(b"1234")):
        with pytest.raises(xapian.DatabaseCorruptError):
            lexgrams.page(bad)
    for bad in (b"", b"\1\0", directory + b"\0"):
        with pytest.raises(xapian.DatabaseCorruptError):
            lexgrams.decode("s1", bad)
