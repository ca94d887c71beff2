"""fts.store_texts: the texts ftsd's indexer keeps in a document (store/texts.py) give every key exactly what the
message file gives (MaildirText), a search with them reads no message file, an index with and without them
answers like the brute-force reference (tests/reference.py), and a damaged blob is a damaged index (set aside,
the mail answers), never a traceback."""

from __future__ import annotations

import dataclasses
import random
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lz4.block
import pytest
import xapian
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from ftsd import service
from ftsd.analysis import normalise, searchable
from ftsd.errors import CorruptIndexError
from ftsd.maildir import read_message
from ftsd.message import parse_message
from ftsd.query import Key, parse_query
from ftsd.runtime import Runtime
from ftsd.search import KeptText, MaildirText
from ftsd.settings import Settings, load_settings
from ftsd.store import schema, texts
from ftsd.store.index import UserIndex
from tests.maildirs import MailDir
from tests.reference import ReferenceIndex

USER = "alice@example.org"
WORDS = "pangolin quarterly widget harbour saffron lantern orbit velvet cobalt meadow".split()
# checked keys (phrases, punctuation at an edge, > 40 characters, a header of the shared pool) and settled ones
QUERIES = ['BODY "widget harbour"', 'TEXT "saffron lantern orbit"', 'SUBJECT "cobalt meadow"', 'TEXT "harbour,"',
           'NOT BODY "orbit velvet"', 'OR TEXT "meadow pangolin" FROM "sender1@"', 'HEADER x-tag "tag 2"',
           'BODY "' + "pangolin quarterly widget harbour saffron" + '"', 'TEXT "x-tag: tag"', 'BODY widget',
           'HEADER subject "saffron, lantern"', 'TEXT "example.net to:"']
FIELDS = ("text", "body", "headers", "subject", "from", "to", "cc", "bcc")


def _kept_settings(**fts: Any) -> Settings:
    base = Settings()
    return dataclasses.replace(base, fts=dataclasses.replace(base.fts, store_texts=True, **fts))


def _same_fields(path: Path, settings: Settings) -> None:
    """Every key's text from the kept texts equals the message file's."""
    message = read_message(path, settings.fts.max_message_bytes)
    parsed = parse_message(message.data, settings, size=message.size)
    if any(p.decoder == "raw" for p in parsed.parts):  # not kept (pipeline.py)
        return
    blob = texts.encode(parsed.header_items, parsed.body, settings)
    assert blob is not None
    kept = texts.decode(blob, settings)
    assert kept is not None
    file = MaildirText(path, settings)
    mine = KeptText(kept, settings, lambda: MaildirText(path, settings))
    names = {n.lower() for n in file.headers().keys()} | {"subject", "cc", "x-none", "received", "dkim-signature"}
    keys = [Key(f, "x") for f in FIELDS] + [Key("header", "x", header=n) for n in sorted(names)]
    for key in keys:
        assert mine.field(key) == file.field(key), (path.name, key)
    for name in names:
        assert mine.has_header(name) == file.has_header(name), (path.name, name)


def test_kept_fields_equal_the_message_files(corpus_dir: Path) -> None:
    files = sorted(p for p in corpus_dir.rglob("*") if p.is_file() and p.parent.name == "cur")
    settings = _kept_settings(header_excludes=["Received", "DKIM-*"])
    for path in files[::25]:  # ~250 messages of every folder
        _same_fields(path, settings)


HOSTILE = [
    b"", b"\n\nbody only", b"Subject: \n\n", b"Subject:    \n\n   \n", b"X-A: \xc3\xa9t\xc3\xa9\nX-A: 2\n\n\xff\xfe",
    b"Subject: =?utf-8?q?a=0Ab?= =?utf-8?q?_c?=\nFrom: \t x \n\n\t lead and trail \t\n",
    b"Subject: " + b"a" * 80 + b" b\nTo: b " + b"c" * 70 + b"\n\n" + b"d" * 90,
    b"Subject: x\nSubject: \nSubject: y  \nCc:\n\n\xe2\x80\x8b\xcc\x81",  # zero-width space, a lone combining mark
    b"Subject: Fahrl\xc3\xa4nder \xef\xac\x81\nContent-Type: text/html\n\n<p>a&nbsp;b</p><p>\xc2\xa0</p>",
    b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\n one \n--b\n"
    b"Content-Type: text/plain; charset=utf-8\n\n\xf0\x9f\x98\x80 two\n--b--\n",
]


def test_kept_fields_of_hostile_messages(tmp_path: Path) -> None:
    settings = _kept_settings(max_word_chars=8)
    for n, raw in enumerate(HOSTILE):
        path = tmp_path / f"m{n}"
        path.write_bytes(raw)
        _same_fields(path, settings)


_TEXT = st.lists(st.sampled_from(["a", "B", "é", "\u0301", " ", "\n", "\t", "\xa0", ":", "x" * 9, "ǅ", "\u200b"]),
                 max_size=12).map("".join)


@examples(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["Subject", "X-a", "x-A", "To"]), _TEXT), max_size=4), _TEXT)
def test_kept_fields_are_the_normalised_joins(items: list[tuple[str, str]], body: str) -> None:
    """The algebra of store/texts.py: a field's text from the cores is searchable(normalise(...)) of its join."""
    settings = _kept_settings(max_word_chars=8)
    kept = texts.decode(texts.encode(items, body, settings) or b"", settings)
    assert kept is not None

    def norm(text: str) -> str:
        return searchable(normalise(text), 8)

    headers = "\n".join(f"{name}: {value}" for name, value in items)
    assert kept.field("headers") == norm(headers)
    assert kept.field("body") == norm(body)
    assert kept.field("text") == norm(headers + "\n" + body)
    for name in ("subject", "x-a", "to", "cc"):
        assert kept.header(name) == norm("\n".join(v for n, v in items if n.lower() == name))
        assert kept.has_header(name) == any(n.lower() == name for n, _ in items)


def _fill(md: MailDir, count: int, seed: int) -> None:
    rnd = random.Random(seed)
    for n in range(count):
        words = rnd.choices(WORDS, k=30)
        body = " ".join(w + ("," if rnd.random() < 0.2 else "") for w in words)
        md.deliver("INBOX", subject=", ".join(rnd.sample(WORDS, 3)), body=body,
                   sender=f"sender{rnd.randint(0, 3)}@example.net", headers={"X-Tag": f"tag {n % 5} {words[0]}"})


def _answers(settings: Settings, runtime: Runtime | None = None) -> dict[str, tuple[list[int], int]]:
    """Per query: (UIDs, messages checked against kept texts: checked - read from the Maildir)."""
    out = {}
    for text in QUERIES:
        (result,) = service.search(settings, USER, ["INBOX"], parse_query(text), autoindex=False, runtime=runtime)
        out[text] = (result.uids, result.verified - result.read)
    return out


def _expected(maildir: MailDir) -> dict[str, list[int]]:
    reference = ReferenceIndex(maildir.root)
    return {text: reference.search("INBOX", parse_query(text)) for text in QUERIES}


def _index(settings: Settings) -> UserIndex:
    return service.user_index(settings, service.get_user(settings, USER), Runtime(settings))


def _kept_count(settings: Settings) -> tuple[int, int]:
    db = xapian.Database(str(_index(settings).path))
    kept = sum(1 for item in db.postlist("") if db.get_document(item.docid).get_value(schema.SLOT_TEXTS))
    return kept, db.get_doccount()


def test_kept_texts_answer_without_reading_the_mail(maildir: MailDir, make_config: Callable[..., Path],
                                                    tmp_path: Path) -> None:
    kept = load_settings(make_config(fts={"workers": 1, "store_texts": True}))
    plain = load_settings(make_config(
        mail_location=f"maildir:{tmp_path}/vmail/%d/%n:INDEX={tmp_path}/index-plain/%d/%n", fts={"workers": 1}))
    _fill(maildir, 40, seed=5)
    expected = _expected(maildir)
    for config in (kept, plain):
        assert not service.index_users(config, [USER]).failed
    assert _kept_count(kept) == (40, 40) and _kept_count(plain) == (0, 40)
    assert {text: uids for text, (uids, _) in _answers(plain).items()} == expected
    for path in (maildir.root / "cur").iterdir():  # every message file now says something else
        path.write_bytes(b"Subject: gone\n\nnothing here\n")
    answers = _answers(kept)
    assert {text: uids for text, (uids, _) in answers.items()} == expected
    assert sum(kept for _, kept in answers.values()) > 100  # checked, against the kept texts
    assert all(kept == 0 for _, kept in _answers(plain).values())  # against the files
    assert {text: uids for text, (uids, _) in _answers(plain).items()} != expected  # the file is read without


def test_an_index_with_and_without_kept_texts(maildir: MailDir, make_config: Callable[..., Path]) -> None:
    """Turned on after some mail was indexed (and with a header left out of the index): exact either way."""
    plain = load_settings(make_config(fts={"workers": 1, "header_excludes": ["X-Tag"]}))
    _fill(maildir, 20, seed=6)
    assert not service.index_users(plain, [USER]).failed
    kept = load_settings(make_config(fts={"workers": 1, "store_texts": True, "header_excludes": ["X-Tag"]}))
    _fill(maildir, 20, seed=7)
    assert not service.index_users(kept, [USER]).failed
    assert _kept_count(kept) == (20, 40)
    expected = _expected(maildir)
    del expected['TEXT "x-tag: tag"']  # an excluded header is not in TEXT (docs/search-differences.md)
    for config in (kept, plain):
        answers = {text: uids for text, (uids, _) in _answers(config).items() if text in expected}
        assert answers == expected  # HEADER x-tag: from the message file


def _damage(blob: bytes, how: str, settings: Settings) -> bytes:
    head = blob[: texts.HEAD_SIZE]
    if how == "garbage":
        return head + random.Random(1).randbytes(200)
    if how == "cut short":
        return blob[:-8]
    if how == "unknown codec":  # 1 was zlib in development
        return head[:1] + bytes([1]) + head[2:] + zlib.compress(b"a" * 100, 1)
    if how == "holds more than it declares":
        packed: bytes = lz4.block.compress(b"a" * 5000, store_size=False)
        return head + (100).to_bytes(4, "little") + packed
    if how == "inflates beyond the bound (lz4)":  # its size prefix says so: refused before it allocates
        return head[:1] + bytes([texts.LZ4]) + head[2:] + (texts.limit(settings) + 1).to_bytes(4, "little") + b"a"
    if how == "header table cut short":  # inflates well
        kept = texts.decode(blob, settings)
        assert kept is not None
        payload = kept.t.encode("utf-8", "surrogatepass") + b"\n" + kept.table[: len(kept.table) // 2]
        return head + bytes(lz4.block.compress(payload))
    return blob[:5]  # no header


@pytest.mark.parametrize("how", ["garbage", "cut short", "unknown codec", "holds more than it declares",
                                 "inflates beyond the bound (lz4)", "no header", "header table cut short"])
def test_a_damaged_kept_text_is_a_damaged_index(how: str, maildir: MailDir,
                                                make_config: Callable[..., Path]) -> None:
    settings = load_settings(make_config(fts={"workers": 1, "store_texts": True}))
    _fill(maildir, 12, seed=8)
    expected = _expected(maildir)
    assert not service.index_users(settings, [USER]).failed
    index = _index(settings)
    db = xapian.WritableDatabase(str(index.path), xapian.DB_OPEN)
    for item in db.postlist(""):
        doc = db.get_document(item.docid)
        bad = _damage(doc.get_value(schema.SLOT_TEXTS), how, settings)
        with pytest.raises(xapian.DatabaseCorruptError):
            texts.decode(bad, settings)
        doc.add_value(schema.SLOT_TEXTS, bad)
        db.replace_document(item.docid, doc)
    db.commit()
    db.close()
    assert {text: uids for text, (uids, _) in _answers(settings).items()} == expected  # the mail answers
    assert len(index.broken_copies()) == 1  # set aside, rebuilt by the next run
    assert not service.index_users(settings, [USER]).failed
    assert {text: uids for text, (uids, _) in _answers(settings).items()} == expected


def _with_table(kept: texts.KeptTexts, table: bytes) -> texts.KeptTexts:
    """`kept` with another header table."""
    t = kept.t.encode("utf-8", "surrogatepass")
    return texts.KeptTexts(t + b"\n" + table, len(t), None if t.isascii() else kept.t, kept._head)


def test_a_damaged_header_row_is_found_when_read() -> None:
    """The header table's rows are parsed when a HEADER key needs them (outside the store's error translation):
    a row out of bounds, or that is not one, is a CorruptIndexError (the search sets the index aside)."""
    settings = _kept_settings()
    kept = texts.decode(texts.encode([("X-Tag", "a b"), ("Subject", "c")], "body", settings) or b"", settings)
    assert kept is not None and kept.header("x-tag") == "a b" and kept.header("subject") == "c"
    nested = b"[" * 100_000 + b"]" * 100_000  # parsing it recurses past Python's limit
    with pytest.raises(CorruptIndexError):
        _with_table(kept, nested).values()
    for table in (b'[["x-tag", 2, false, true, 0, 99999999]]', b'[["x-tag", 2, false]]', b'[["x-tag", 2]]]',
                  b'[["x-tag", ' + nested + b"]]"):
        damaged = _with_table(kept, table)
        with pytest.raises(CorruptIndexError):
            damaged.header("x-tag")
        with pytest.raises(CorruptIndexError):
            damaged.values()



# Keys a check finds in place (KeptTexts.holds: bytes.find within a field's range while T is ASCII, else str.find
# with character bounds): T with and without non-ASCII text before a field's start (character offsets are not
# byte offsets then), keys that a byte test over all of T would find outside their field (BODY on a header's
# words, the join of two values of one header; HEADERS, which has no IMAP key: the property test below), case
# and white space the key normalises away, spaces at a key's edges, and NOT / OR shapes.
IN_PLACE_MAIL = [
    b"Subject: Caf\xc3\xa9 cobalt meadow\nX-Tag: alpha\nX-Tag: beta gamma\n\nwidget harbour, saffron\n",
    b"Subject: cobalt meadow\nX-Tag: alpha beta\n\nWidget  Harbour\tsaffron lantern caf\xc3\xa9\n",
    b"Subject: plain\nX-Tag: beta\n\ntrailing cobalt meadow \n",
    b"Subject: \xe2\x80\x94 orbit velvet\n\nsaffron\n",
    b"X-Tag: widget harbour\n\nnothing\n",
    b"Subject: cobalt meadow, widget harbour\n\nmeadow and cobalt; harbour and widget\n",  # candidates of BODY
    b"Subject: " + "жи".encode() * 6 + b" x\n\ncobalt meadow at the start, then widget\n",
    b"Subject: orbit velvet\nX-Tag: velvet\nX-Tag: orbit\n\nvelvet orbit\n",
]
IN_PLACE_QUERIES = [
    'BODY "widget harbour"', 'BODY "cobalt meadow"', 'HEADER x-tag "widget harbour"', 'TEXT "widget harbour"',
    'TEXT "WIDGET   harbour"', 'SUBJECT "cobalt meadow"', 'HEADER x-tag "alpha beta"', 'HEADER x-tag "beta gamma"',
    'BODY " cobalt"', 'BODY "meadow "', 'TEXT "café widget"', 'TEXT "café cobalt"', 'BODY "café"',
    'SUBJECT "café"', 'BODY "— orbit"', 'TEXT "— orbit velvet"', 'NOT BODY "widget harbour"',
    'OR BODY "cobalt meadow" SUBJECT "widget harbour"', 'NOT OR BODY "saffron lantern" TEXT "orbit velvet"',
    'TEXT "harbour,"', 'BODY "meadow x-tag"', 'HEADER x-tag "orbit velvet"', 'BODY "orbit velvet"',
    'NOT BODY "cobalt meadow"', 'BODY "then widget"', 'TEXT "meadow x-tag"', 'TEXT "gamma widget"',
    'BODY "gamma widget"', 'HEADER x-tag ""', 'NOT HEADER x-tag ""', 'OR HEADER x-tag "" BODY "then widget"',
]


def test_keys_found_in_place_answer_like_the_reference(maildir: MailDir, make_config: Callable[..., Path]) -> None:
    settings = load_settings(make_config(fts={"workers": 1, "store_texts": True}))
    for raw in IN_PLACE_MAIL:
        maildir.deliver("INBOX", raw=raw)
    assert not service.index_users(settings, [USER]).failed
    assert _kept_count(settings) == (len(IN_PLACE_MAIL), len(IN_PLACE_MAIL))
    reference = ReferenceIndex(maildir.root)
    for path in (maildir.root / "cur").iterdir():  # checked against the kept texts only
        path.write_bytes(b"Subject: gone\n\nnothing here\n")
    for query in IN_PLACE_QUERIES:
        node = parse_query(query)
        (result,) = service.search(settings, USER, ["INBOX"], node, autoindex=False)
        assert result.uids == reference.search("INBOX", node), query
        assert result.read == 0, query


_NEEDLE = st.lists(st.sampled_from(["a", "b", "é", " ", ":", "x", "ǅ", "\u200b", "\ud800"]), min_size=1,
                   max_size=4).map("".join)


@examples(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["Subject", "X-a"]), _TEXT), max_size=3), _TEXT, _NEEDLE)
def test_a_field_holds_what_its_text_contains(items: list[tuple[str, str]], body: str, needle: str) -> None:
    """holds() (in place, in bytes or with character bounds) is `needle in field()` for any needle."""
    settings = _kept_settings(max_word_chars=8)
    kept = texts.decode(texts.encode(items, body, settings) or b"", settings)
    assert kept is not None
    for name in ("text", "body", "headers"):
        assert kept.holds(name, needle) == (needle in kept.field(name)), (name, needle)
