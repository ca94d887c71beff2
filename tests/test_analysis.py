from hypothesis import given, settings
from hypothesis import strategies as st

from ftsd.analysis import Analyzer, normalise

A = Analyzer(full=20, max_word_chars=64)


def test_normalise():
    assert normalise("Fahrländer  GRÖSSE\n\tStraße") == "fahrlander grosse strasse"
    assert normalise("ﬁle Ⅻ") == "file xii"


def test_suffix_terms_of_a_word():
    # suffixes of >= partial (3) chars, plus every 1- and 2-char gram
    assert "/".join(sorted(A.terms("Example"))) == "a/am/ample/e/ex/example/l/le/m/mp/mple/p/pl/ple/x/xa/xample"


def test_runs_keep_inner_punctuation_and_cjk():
    terms = A.terms("bob@example.com 東京都")
    assert {"bob@example.com", "example.com", "com", "東京都", "京都", "都"} <= terms
    assert ".com" not in terms and "@example.com" not in terms


def test_long_terms_cut_and_garbage_skipped():
    terms = A.terms("x" * 30 + " " + "Q" * 80)
    assert max(map(len, terms)) == 20 and not any(t.startswith("q") for t in terms)


def test_query_pieces():
    p = A.pieces("Fahrländer")
    assert (p.text, p.runs, p.exact) == ("fahrlander", ("fahrlander",), True)
    p = A.pieces("lo wor")
    assert (p.runs, p.exact) == (("lo", "wor"), False)
    assert not A.pieces("a" * 21).exact
    assert A.pieces("a" * 70).runs is None
    assert A.pieces("-").runs == ()


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_analysis_total_and_every_substring_findable(text):
    terms = A.terms(text)
    for word in set(normalise(text).split()):
        pieces = A.pieces(word)
        if pieces.exact and pieces.runs:
            # the whole word, and its inner substrings, are prefixes of some stored suffix
            assert any(t.startswith(pieces.runs[0][: 20]) for t in terms), word
