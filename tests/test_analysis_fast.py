"""The analysis fast paths give what the general code gives: runs of ASCII text by a regex = ICU's runs, white
space collapsed by str.split = re's \\s+, the long-word check in C = the regex, one BreakIterator per thread."""

from __future__ import annotations

import itertools
import re
import string
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftsd.analysis import _MARKS, Analyzer, _collapse, _drop_marks, _garbage, normalise, runs, searchable, word_breaker
from ftsd.message import parse_message
from ftsd.settings import Settings

QUICK = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# one character of every ASCII word-break class (letter, "@", digit, "_", MidNumLet, MidNum, MidLetter, other)
CLASSES = "aZ@1_.',;:\"- \x00#/"
ASCII = "".join(chr(c) for c in range(128))


def icu_runs(text: str) -> set[str]:
    return {text[start:end] for start, end in runs(text, word_breaker())}


def test_ascii_runs_equal_icu_on_every_short_string() -> None:
    analyzer = Analyzer()
    for size in (1, 2, 3, 4):
        for chars in itertools.product(CLASSES, repeat=size):
            text = "".join(chars)
            assert analyzer._runs(text) == icu_runs(text), repr(text)
    for a, b in itertools.product(ASCII, repeat=2):  # every pair of ASCII characters, between letters and digits
        for text in (a + b, f"x{a}y", f"1{a}2", f"x{a}{b}y", f"1{a}{b}2"):
            assert analyzer._runs(text) == icu_runs(text), repr(text)


@QUICK
@given(st.text(alphabet=st.sampled_from(CLASSES + string.ascii_lowercase[:4] + "09"), max_size=80)
       | st.text(alphabet=st.characters(max_codepoint=127), max_size=80))
def test_ascii_runs_equal_icu(text: str) -> None:
    assert Analyzer()._runs(text) == icu_runs(text)


@QUICK
@given(st.text(alphabet=st.sampled_from(" \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2003\u3000ab"), max_size=30)
       | st.text(max_size=40))
def test_collapse_is_the_white_space_regex(text: str) -> None:
    assert _collapse(text) == re.sub(r"\s+", " ", text)


@QUICK
@given(st.lists(st.sampled_from(["a" * 63, "b" * 64, "c" * 65, "d" * 200, "_" * 70, " ", "-", "x", "é" * 70]),
                max_size=8))
def test_long_word_check_is_the_regex(parts: list[str]) -> None:
    text = normalise("".join(parts))
    assert searchable(text, 64) == re.sub(r"\w{65,}", " ", text)
    assert _garbage(64).sub(" ", text) == re.sub(r"\w{65,}", " ", text)


# combining marks (Mn, Me), format characters (Cf), letters that decompose into marks, and others
MARKED = ("e\u0301\u0308\u20dd\u00ad\u200b\ufeff\u0903 aé道ﬁ\U000e0041\U0001d167"
          + "".join(map(chr, range(0x300, 0x320))))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(MARKED), max_size=60) | st.text(max_size=60))
def test_drop_marks_is_the_translate_table(text: str) -> None:
    assert _drop_marks(text) == text.translate(_MARKS)  # few distinct marks (replace) or many (translate)


def test_breaker_per_thread_same_terms() -> None:
    analyzer = Analyzer()
    texts = [f"東京都に住んでいます {i} naïve café foo.bar@x{i}.com don't" * (1 + i % 5) for i in range(40)]
    expected = [analyzer.terms(t) for t in texts]
    with ThreadPoolExecutor(8) as pool:
        for _ in range(3):
            assert list(pool.map(analyzer.terms, texts)) == expected


@pytest.mark.slow
def test_ascii_runs_equal_icu_on_the_corpus(corpus_dir: Path) -> None:
    """Every field of every message of the SpamAssassin corpus: the runs of its searchable text."""
    analyzer = Analyzer()
    settings_ = Settings()
    checked = 0
    for path in sorted(p for p in corpus_dir.rglob("*") if p.is_file() and p.parent.name in ("cur", "new")):
        parsed = parse_message(path.read_bytes(), settings_)
        for text in (parsed.subject, parsed.from_, parsed.to, parsed.cc, parsed.headers, parsed.body):
            norm = searchable(normalise(text), 64)
            if norm.isascii():
                assert analyzer._runs(norm) == icu_runs(norm), path.name
                checked += 1
    assert checked > 30_000
