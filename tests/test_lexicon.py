"""The lexicon (store/lexicon.py) on a real Xapian index: substring lookups through it, its growth across writer
sessions, and its rebuild by optimize."""

import random

import pytest
import xapian

from ftsd import monitor, service
from ftsd.analysis import Terms
from ftsd.query import parse_query
from ftsd.settings import load_settings
from ftsd.store import lexblock, lexicon
from ftsd.store.index import index_path
from ftsd.store.lexicon import Lexicon, Lexicons
from ftsd.store.schema import META_LEXICON, WORDS, Document, build_document
from ftsd.store.searcher import Searcher
from ftsd.store.writer import IndexWriter
from tests.maildirs import MailDir

USER = "alice@example.org"


def uids(settings, query, mailbox="INBOX"):
    return service.search(settings, USER, [mailbox], parse_query(query), autoindex=False)[0].uids


class Opened:
    """A lexicon read from the user's index, with the database its lookups read blocks from."""

    def __init__(self, settings) -> None:
        self.db = xapian.Database(str(index_path(service.get_user(settings, USER))))
        self.lexicon = Lexicon()
        self.lexicon.refresh(self.db)
        self.blocks = len(list(self.db.metadata_keys(META_LEXICON)))

    def expand(self, kind: str, prefixes: list[str], needle: str) -> list[str]:
        return self.lexicon.expand(self.db, kind, prefixes, needle)


def lexicon_of(settings) -> tuple[Opened, int]:
    opened = Opened(settings)
    return opened, opened.blocks


def test_substrings_found_through_the_lexicon_across_sessions(maildir: MailDir, make_config):
    settings = load_settings(make_config())
    a = maildir.deliver(subject="quarterly report", body="see bob@widgets.example.net today")
    service.index_users(settings, [USER])
    b = maildir.deliver(subject="unreported", body="mail widgets.example.org please")  # a second writer session
    service.index_users(settings, [USER])
    assert uids(settings, "SUBJECT port") == [a, b]
    assert uids(settings, "SUBJECT quarterl") == [a]
    assert uids(settings, "BODY widgets.example") == [a, b]  # a run with punctuation
    assert uids(settings, "BODY gets.example.n") == [a]
    assert uids(settings, "BODY b@widgets") == [a]
    assert uids(settings, "TEXT portly") == []
    lexicon, _ = lexicon_of(settings)
    # each entry is listed once, under its field and kind, and only the ones that contain the string
    assert sorted(lexicon.expand("w", ["S"], "port")) == ["Sreport", "Sunreported"]
    assert sorted(lexicon.expand("c", ["X"], "widgets.")) == ["Xbob@widgets.example.net", "Xwidgets.example.org"]


@pytest.mark.parametrize("tail_bytes", [1 << 22, 10])
def test_optimize_rebuilds_the_lexicon_without_expunged_words(maildir: MailDir, make_config, monkeypatch,
                                                              tail_bytes):
    # small (kept as one tail block) or large (segments)
    monkeypatch.setattr("ftsd.store.lexicon.TAIL_BYTES", tail_bytes)
    settings = load_settings(make_config(fts={"commit_limit": 1}))
    keep = maildir.deliver(subject="kept", body="aardvark")
    gone = maildir.deliver(subject="gone", body="zeppelinesque")
    service.index_users(settings, [USER])
    maildir.expunge("INBOX", gone)
    service.index_users(settings, [USER])
    lexicon, chunks = lexicon_of(settings)
    assert lexicon.expand("w", ["X"], "zeppelin") == ["Xzeppelinesque"]  # a superset until optimize...
    assert uids(settings, "BODY zeppelin") == []  # ...which never changes an answer
    assert chunks > 2
    assert service.optimize_users(settings, [USER])[0].error is None
    lexicon, chunks = lexicon_of(settings)
    assert lexicon.expand("w", ["X"], "zeppelin") == []
    assert lexicon.expand("w", ["X"], "ardva") == ["Xaardvark"]
    fields = lexicon.lexicon.fields.values()
    if tail_bytes > 1000:  # every (kind, field) is one tail block after the rebuild
        assert not any(f.segments for f in fields) and all(len(f.tail_keys) <= 1 for f in fields)
        assert sum(len(f.tail_keys) for f in fields) >= 4
    else:  # segments (but for a (kind, field) of at most 10 bytes)
        assert sum(len(f.segments) for f in fields) >= 4
    assert uids(settings, "BODY ardva") == [keep]


def test_readers_of_one_index_share_its_lexicon(maildir: MailDir, make_config):
    settings = load_settings(make_config())
    maildir.deliver(subject="shared words", body="pangolin")
    service.index_users(settings, [USER])
    path = index_path(service.get_user(settings, USER))
    lexicons = Lexicons()
    first, second = Searcher(path, lexicons), Searcher(path, lexicons)
    assert first.lexicon is second.lexicon  # one copy in memory however many readers are open
    service.optimize_users(settings, [USER])  # a compacted copy in a new directory: a lexicon of its own
    third = Searcher(path, lexicons)
    assert third.lexicon is not first.lexicon
    third.lexicon.refresh(third.db)
    assert third.lexicon.expand(third.db, "w", ["X"], "angoli") == ["Xpangolin"]
    for searcher in (first, second, third):
        searcher.close()


def test_a_search_loads_only_the_lexicon_of_its_fields_and_catches_up(maildir: MailDir, make_config):
    settings = load_settings(make_config())
    maildir.deliver(subject="ocelot sighting", body="the ocelot was seen", headers={"X-Token": "ocelotquux"})
    service.index_users(settings, [USER])
    searcher = Searcher(index_path(service.get_user(settings, USER)), Lexicons())
    terms = searcher.piece(["subject"], "celo", 40, 3)
    assert set(searcher.lexicon.fields) == {"wS"}  # neither the body's nor the headers' words were read
    assert "Socelot" in str(terms)
    maildir.deliver(subject="ocelots again", body="none")  # a later commit: the loaded field catches up
    service.index_users(settings, [USER])
    searcher.reopen()
    expand = searcher.lexicon.expand
    assert sorted(expand(searcher.db, "w", ["S"], "celo")) == ["Socelot"]  # the snapshot it was asked for
    searcher.piece(["subject", "headers"], "celo", 40, 3)
    assert sorted(expand(searcher.db, "w", ["S", "H"], "celo")) == ["Hocelotquux", "Socelot", "Socelots"]
    assert set(searcher.lexicon.fields) == {"wS", "wH"}
    searcher.close()


def _deep_check(settings) -> str:
    """`ftsd check --deep`'s finding for the user ("" = sound)."""
    return monitor.user_health(settings, service.get_user(settings, USER), deep=True).damaged


def test_check_reports_a_damaged_lexicon_and_optimize_repairs_it(maildir: MailDir, make_config):
    settings = load_settings(make_config())
    uid = maildir.deliver(subject="damaged", body="wombat burrow")
    service.index_users(settings, [USER])
    assert not _deep_check(settings)
    path = index_path(service.get_user(settings, USER))
    db = xapian.WritableDatabase(str(path), xapian.DB_OPEN)
    for key in [k for k in db.metadata_keys(META_LEXICON + "wX")]:
        db.set_metadata(key, b"")  # the body words' chunks are lost
    db.commit()
    db.close()
    problem = _deep_check(settings)
    assert "lexicon lacks 2 of" in problem
    assert uids(settings, "BODY omba") == []  # what a damaged lexicon costs
    assert service.optimize_users(settings, [USER])[0].error is None
    assert not _deep_check(settings)
    assert uids(settings, "BODY omba") == [uid] and uids(settings, "BODY urro") == [uid]


def test_long_words_and_runs_are_found_across_window_edges(maildir: MailDir, make_config):
    word = "".join(chr(ord("a") + (i * 7) % 26) for i in range(64))  # the longest indexed word (max_word_chars)
    run = ".".join(f"part{chr(97 + i)}" for i in range(26))  # one 129-character ICU run with inner punctuation
    settings = load_settings(make_config())
    uid = maildir.deliver(subject="long", body=f"{word} and {run}")
    other = maildir.deliver(subject="other", body="nothing long")
    service.index_users(settings, [USER])
    for text in (word, run):
        for start in range(len(text) - 39):  # every 40-character slice (from and to a letter): the index alone
            if not (text[start].isalpha() and text[start + 39].isalpha()):
                continue
            result = service.search(settings, USER, ["INBOX"], parse_query(f"BODY {text[start:start + 40]}"),
                                    autoindex=False)[0]
            assert (result.uids, result.verified) == ([uid], 0), text[start:start + 40]
    assert uids(settings, f"BODY {run[10:100]}") == [uid]  # longer: looked up by its head, then checked
    assert other not in uids(settings, "BODY part")


def test_marks_listed_rebuilt_and_checked(maildir: MailDir, make_config):
    """Runs of non-word characters (marks) are listed whatever their length, survive optimize's rebuild (which
    tells them from grams and words by content) and are what `check` expects."""
    settings = load_settings(make_config())
    a = maildir.deliver(subject="issue #12!", body="a -- b\nc => d")
    b = maildir.deliver(subject="plain", body="x - y")
    service.index_users(settings, [USER])
    expected = {'SUBJECT "#"': [a], 'BODY " - "': [b], 'BODY "-"': [a, b], 'BODY "=>"': [a], 'BODY "->"': [],
                'TEXT "! "': [a], 'NOT BODY "--"': [b]}
    assert {q: uids(settings, q) for q in expected} == expected
    lexicon, _ = lexicon_of(settings)
    assert sorted(lexicon.expand("p", ["X"], "-")) == ["X - ", "X -- "]
    assert service.optimize_users(settings, [USER])[0].error is None
    assert not _deep_check(settings)
    lexicon, _ = lexicon_of(settings)
    assert sorted(lexicon.expand("p", ["X"], "-")) == ["X - ", "X -- "] and lexicon.expand("p", ["S"], "#") == ["S #"]
    assert {q: uids(settings, q) for q in expected} == expected


def test_chunks_settled_by_the_lexicon_phrases_checked(maildir: MailDir, make_config):
    settings = load_settings(make_config())
    a = maildir.deliver(subject="Re: the plan", body="Please e-mail me, or (e-mail) the team -- ok?\nof the")
    b = maildir.deliver(subject="plan B", body="mail me e-mails; the team of them")
    c = maildir.deliver(subject="x", body="team the\n\n  me, or")
    service.index_users(settings, [USER])
    chunks = {'BODY "e-mail"': [a, b], 'BODY "e-ma"': [a, b], 'BODY "l-m"': [], 'TEXT "e-mails"': [b],
              'NOT BODY "e-mails"': [a, c]}
    for query, want in chunks.items():  # no space, word characters at both ends: settled by the lexicon alone
        result = service.search(settings, USER, ["INBOX"], parse_query(query), autoindex=False)[0]
        assert (query, result.uids, result.verified) == (query, want, 0)
    checked = {'BODY "-mail)"': [a], 'BODY "me,"': [a, c], 'TEXT "re:"': [a], 'BODY "ok?"': [a], 'BODY "s;"': [b],
               'NOT BODY "(e-"': [b, c], 'BODY "e-mail,"': [],
               'BODY "e-mail me,"': [a], 'BODY "mail me"': [a, b], 'TEXT "mail me e-"': [b], 'BODY "me, or"': [a, c],
               'BODY "(e-mail) the team --"': [a], 'BODY "the team"': [a, b], 'BODY "team the"': [c],
               'TEXT "re: the plan"': [a], 'TEXT "plan please"': [], 'BODY "? of th"': [a], 'BODY " the team"': [a, b]}
    for query, want in checked.items():  # candidates that hold every piece, checked against the message
        result = service.search(settings, USER, ["INBOX"], parse_query(query), autoindex=False)[0]
        assert (query, result.uids) == (query, want)
    # "(e-mail) the" narrows to the messages with a chunk "e-mail" and a word "the": a and b are read
    result = service.search(settings, USER, ["INBOX"], parse_query('BODY "(e-mail) the"'), autoindex=False)[0]
    assert (result.uids, result.verified) == ([a], 2)


@pytest.mark.parametrize("start_empty", [True, False])
def test_a_writer_that_forgets_lists_each_stored_entry_exactly_once(tmp_path, monkeypatch, start_empty):
    """The writer remembers only SEEN_LIMIT entries (and a fresh one a lossy filter of the rest): whatever it
    forgot, the lexicon lists every stored entry, once. A tiny limit and filter force forgetting and collisions."""
    monkeypatch.setattr(lexicon, "SEEN_LIMIT", 40)
    monkeypatch.setattr(lexicon, "LISTED_BITS", 256)
    rng = random.Random(7)
    hot = [f"common{n}" for n in range(30)]
    path = tmp_path / "db"
    if not start_empty:  # a second session: the index stores entries this writer never saw
        with IndexWriter(path, lock_timeout_s=5, commit_limit=100, batch_bytes=1 << 30) as writer:
            writer.add(_document(0, {*hot[:10], "oldword"}))
    with IndexWriter(path, lock_timeout_s=5, commit_limit=100, batch_bytes=1 << 30) as writer:
        assert writer.lexicon.fresh is start_empty
        for uid in range(1, 400):
            words = {*rng.sample(hot, 8), f"rare{uid}", f"rare{rng.randrange(uid)}", "oldword"}
            writer.add(_document(uid, words))
            if uid % 37 == 0:
                writer.commit()
        assert writer.lexicon.listed is not None if start_empty else writer.lexicon.listed is None
    db = xapian.Database(str(path))
    listed: list[str] = []
    for key in db.metadata_keys(META_LEXICON):
        listed += lexblock.unpack(db.get_metadata(key)).decode().split("\n")
    stored = lexicon.stored_entries(db, 3)[WORDS + "S"]
    assert sorted(listed) == sorted(stored)  # each once: none missing, none twice
    assert len(stored) == 30 + 400 + 1  # common*, rare0..rare399, oldword


def _document(uid: int, words: set[str]) -> Document:
    return build_document("0" * 32, uid, {"subject": Terms(frozenset(words), frozenset(), frozenset())}, {"uid": uid})
