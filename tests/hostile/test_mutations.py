"""Seeded damage over real mail: 300 SpamAssassin messages, a third of them with byte flips, truncations, NULs
and NULs inside charset names. Indexed and searched: no crash, no hang, every search of the mailbox answers
(before indexing, when every message is read from disk, and after), exact for the clean messages against
tests/reference.py, and each damaged message still found by the token of its untouched Subject line."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from ftsd import service
from ftsd.query import format_query, parse_query
from ftsd.settings import load_settings
from tests.hostile.generate import corpus_sample, mutate, subject_token, with_subject_first
from tests.maildirs import MailDir
from tests.querygen import generate_queries
from tests.reference import ReferenceIndex, decode_message, matches

ALICE = "alice@example.org"
SEED, COUNT, DAMAGED_EVERY = 12, 300, 3


@pytest.fixture(scope="module")
def damaged(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """(clean-only reference Maildir, [(raw, damaged token or None)]) for SEED."""
    rng = random.Random(SEED)
    ref_md = MailDir(tmp_path_factory.mktemp("clean") / "ref")
    messages: list[tuple[bytes, str | None]] = []
    for i, raw in enumerate(corpus_sample(corpus_dir, COUNT, SEED)):
        if i % DAMAGED_EVERY:
            ref_md.deliver(raw=raw)
            messages.append((raw, None))
        else:
            moved, protected = with_subject_first(raw, subject_token(i))
            messages.append((mutate(moved, protected, rng)[0], subject_token(i)))
    return ref_md.root, messages


def run(target, timeout: float = 120.0):
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(target()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "hung"
    return out[0]


@pytest.mark.slow
def test_damaged_corpus_messages_cost_only_themselves(damaged, maildir: MailDir, make_config):
    ref_root, messages = damaged
    settings = load_settings(make_config(fts={"workers": 2}))
    uid_of = [maildir.deliver(raw=raw) for raw, _ in messages]
    clean = {uid: decode_message(raw).lookup() for uid, (raw, token) in zip(uid_of, messages, strict=True)
             if token is None}
    queries = [q for _, q in generate_queries(ReferenceIndex(ref_root), seed=SEED, n=48)]

    def search(node, autoindex: bool) -> list[int]:
        return service.search(settings, ALICE, ["INBOX"], node, autoindex=autoindex)[0].uids

    def check(node, autoindex: bool) -> None:
        got = set(run(lambda: search(node, autoindex))) & clean.keys()
        want = {uid for uid, fields in clean.items() if matches(fields, node)}
        assert got == want, format_query(node)

    for node in queries[:12]:  # nothing indexed: every message of the mailbox is read for each
        check(node, autoindex=False)
    report = run(lambda: service.index_users(settings, [ALICE]))
    assert report.failed == [] and report.indexed == len(messages)
    for node in queries:
        check(node, autoindex=True)
    for uid, (_, token) in zip(uid_of, messages, strict=True):
        if token:
            assert search(parse_query(f"SUBJECT {token}"), True) == [uid], token
            assert uid in search(parse_query(f"TEXT {token}"), True)
