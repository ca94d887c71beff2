"""1-2 character keys where the common grams are stored by absence (analysis._short_grams): every answer equals the
brute-force reference's, for grams present, absent, common and not, in texts long and short, for each partial."""

from __future__ import annotations

import pytest

from ftsd import service
from ftsd.analysis import Analyzer
from ftsd.common_grams import COMMON_GRAMS
from ftsd.query import parse_query
from ftsd.settings import load_settings
from tests.maildirs import MailDir
from tests.reference import ReferenceIndex

USER = "alice@example.org"
ALL = " ".join(COMMON_GRAMS)  # every common gram: each group by absence, no absence term
NO_Q = " ".join(g for g in COMMON_GRAMS if "q" not in g and "7" not in g)  # by absence, with absence terms
BODIES = [ALL, NO_Q + " straße ŉ", " ".join(COMMON_GRAMS[::2]), "just a short one: qz, 7x", "日本語 テキスト ok",
          NO_Q.replace(" ", "") [:60] + " tail_end", ""]
KEYS = sorted({*"abeqz7_ßsnж日テ", *COMMON_GRAMS[:12], *COMMON_GRAMS[-12:], "qu", "q7", "7x", "qz", "ss", "日本",
               "ok", "xq", "_e", "en", "ta"})


@pytest.mark.parametrize("partial", [2, 3, 4])
def test_short_keys_equal_the_reference(maildir: MailDir, make_config, partial: int) -> None:
    settings = load_settings(make_config(fts={"partial": partial}))
    analyzer = Analyzer(partial=partial)
    assert any(g.startswith("!!") for g in analyzer.terms(NO_Q).grams)  # the absence form is in use
    assert not any(g.startswith("!") for g in analyzer.terms(BODIES[3]).grams)  # a short text: grams as such
    for n, body in enumerate(BODIES):
        maildir.deliver(subject=BODIES[(n + 1) % len(BODIES)][:200], body=body)
    service.index_users(settings, [USER])
    reference = ReferenceIndex(maildir.root)
    for key in KEYS:
        for field in ("BODY", "SUBJECT", "TEXT", "NOT BODY"):
            node = parse_query(f'{field} "{key}"')
            got = service.search(settings, USER, ["INBOX"], node, autoindex=False)[0]
            assert got.uids == reference.search("INBOX", node), (field, key)
            if len(key) < partial and key.isalnum():  # ("_" alone is no ICU run: checked in the message)
                assert got.verified == 0, (field, key)  # settled by the index alone
