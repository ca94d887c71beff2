"""1-2 character keys, the known grams stored as pattern terms (analysis._short_grams, GRAM_GROUP): the terms read
back give exactly the grams of the words, and every answer equals the brute-force reference's, for grams present
and absent, in dense groups, rare groups and outside the known set (non-ASCII), in texts long and short, for each
partial."""

from __future__ import annotations

import re

import pytest

from ftsd import service
from ftsd.analysis import GRAM_GROUP, Analyzer, gram_patterns, normalise, searchable
from ftsd.common_grams import COMMON_GRAMS
from ftsd.query import parse_query
from ftsd.settings import load_settings
from tests.grams import decoded
from tests.maildirs import MailDir
from tests.reference import ReferenceIndex

USER = "alice@example.org"
ALL = " ".join(COMMON_GRAMS)  # every known gram: each group's all-ones pattern
NO_Q = " ".join(g for g in COMMON_GRAMS if "q" not in g and "7" not in g)  # dense groups with a gap
RARE = " ".join(COMMON_GRAMS[-GRAM_GROUP * 2 :: 3])  # a few grams of the rarest groups, alone in the text
BODIES = [ALL, NO_Q + " straße ŉ", " ".join(COMMON_GRAMS[::2]), "just a short one: qz, 7x", "日本語 テキスト ok 道路",
          NO_Q.replace(" ", "") [:60] + " tail_end", "", RARE, "жж ß"]
KEYS = sorted({*"abeqz7_ßsnж日テ道", *COMMON_GRAMS[:12], *COMMON_GRAMS[-12:], *COMMON_GRAMS[700:706], "qu", "q7",
               "7x", "qz", "ss", "日本", "ok", "xq", "_e", "en", "ta", "жж", "道路", "j_", "_5"})


def brute_grams(text: str, partial: int) -> set[str]:
    """Every 1..partial-1 character substring of the words of ASCII text (a lone "_" is no ICU run)."""
    words = set(re.findall(r"\w+", searchable(normalise(text), 64))) - {"_"}
    return {w[i : i + n] for w in words for n in range(1, partial) for i in range(len(w) - n + 1)}


@pytest.mark.parametrize("partial", [2, 3, 4])
def test_pattern_terms_read_back_as_the_grams(partial: int) -> None:
    analyzer = Analyzer(partial=partial)
    for text in [ALL, NO_Q, RARE, " ".join(COMMON_GRAMS[::2]), "just a short one: qz, 7x", "Example", "x", ""]:
        grams = analyzer.terms(text).grams
        assert decoded(grams, partial) == brute_grams(text, partial), text[:40]
        assert len(grams) < len(brute_grams(text, partial)) or len(grams) <= 1  # fewer terms than grams
    # every known gram: one all-ones term per group (the last group may be shorter)
    ones = {t for t in analyzer.terms(ALL).grams if t.startswith("!")}
    groups = {p[0] for g in COMMON_GRAMS if len(g) < partial and (p := gram_patterns(g, partial))}
    assert len(ones) == len(groups)
    full = f"{(1 << GRAM_GROUP) - 1:x}"  # the all-ones pattern
    assert sum(t.endswith(full) for t in ones) >= len(groups) - 1
    # non-ASCII grams outside the known set stay terms of their own; "道" is known
    grams = analyzer.terms("жж 道").grams
    assert "ж" in grams and ("жж" in grams) == (partial > 2) and "道" not in grams
    assert gram_patterns("ж", partial) is None and gram_patterns("道", partial) is not None


@pytest.mark.parametrize("partial", [2, 3, 4])
def test_short_keys_equal_the_reference(maildir: MailDir, make_config, partial: int) -> None:
    settings = load_settings(make_config(fts={"partial": partial}))
    analyzer = Analyzer(partial=partial)
    assert any(g.startswith("!") for g in analyzer.terms(NO_Q).grams)  # the pattern form is in use
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
