"""Hostile messages cost only themselves: each trigger of issue 12 (NUL in a charset name, MIME nesting 1,000
deep, 30,000 parts, ...) is indexed and searched on a real Maildir and index; every search of the mailbox
answers, before indexing (every message read from disk) and after, and each message is found by its subject."""

from __future__ import annotations

import pytest

from ftsd import service
from ftsd.cli import main
from ftsd.message import parse_message
from ftsd.query import parse_query
from ftsd.settings import Settings, load_settings
from tests.hostile.generate import TRIGGERS, subject_token
from tests.maildirs import MailDir

USER = "alice@example.org"
# keys the index cannot settle alone (phrases, short strings, punctuation, headers not indexed on their own):
# each makes the search read every candidate message from the Maildir
CHECKED = ["TEXT \"body deep\"", "BODY e", "TEXT x-long:", "HEADER Content-Type mixed", "BODY \"leaf \"",
           "OR TEXT utf BODY \"a.txt\"", "NOT BODY zzzz", "TEXT hostiletok"]


def search(settings, query: str, autoindex: bool = True) -> list[int]:
    return service.search(settings, USER, ["INBOX"], parse_query(query), autoindex=autoindex)[0].uids


@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_parse_message_never_raises_and_keeps_the_subject(name: str):
    settings = Settings()
    token = subject_token(1)
    parsed = parse_message(TRIGGERS[name](token), settings)
    assert token in parsed.subject


@pytest.fixture
def hostile_box(maildir: MailDir, make_config):
    settings = load_settings(make_config(fts={"workers": 2}))
    good = maildir.deliver(subject="ordinary message", body="the body of a deep leaf")
    uids = {name: maildir.deliver(raw=make(subject_token(i))) for i, (name, make) in enumerate(TRIGGERS.items())}
    return settings, good, uids


def test_searches_answer_before_indexing(hostile_box):
    settings, good, uids = hostile_box
    for query in CHECKED:  # nothing indexed: every message of the mailbox is read and parsed for each key
        search(settings, query, autoindex=False)
    assert search(settings, "TEXT hostiletok", autoindex=False) == sorted(uids.values())
    assert search(settings, "BODY \"deep leaf\"", autoindex=False) == [good]


def test_index_then_search_every_trigger(hostile_box, make_config, capsys):
    settings, good, uids = hostile_box
    report = service.index_users(settings, [USER])
    assert report.failed == [] and report.indexed == len(uids) + 1
    assert report.partial >= 3  # deep nesting and the part flood are indexed as raw text
    for i, name in enumerate(TRIGGERS):
        assert search(settings, f"SUBJECT {subject_token(i)}") == [uids[name]], name
    for query in CHECKED:
        search(settings, query)
    assert search(settings, "BODY \"deep leaf\"") == [good]
    # a second run has nothing left to do: no message goes back to disk on every run or search
    assert service.index_users(settings, [USER]).indexed == 0
    cfg = str(make_config(fts={"workers": 2}))
    assert main(["search", "-c", cfg, "-u", USER, "TEXT", "body"]) == 0
    assert main(["search", "-c", cfg, "-u", USER, "BODY", "a.t"]) == 0
    capsys.readouterr()
