"""The compiled path (ftsd/_native.c) gives exactly what the pure-Python fallback gives: the same Terms of any ASCII
text (every word-break class, runs beyond WINDOW and max_word_chars, punctuation at the edges, runs of spaces), the
same short grams of any words (ASCII or not) and the same document bytes; and it is memory-safe on hostile input.
Both paths run in every test run (the rest of the suite runs the compiled one); FTSD_NATIVE=0 turns it off, and
these tests skip."""

from __future__ import annotations

import os
import random
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftsd import analysis
from ftsd.analysis import GRAM_GROUP, WINDOW, Analyzer, Terms, normalise, searchable
from ftsd.common_grams import COMMON_GRAMS
from ftsd.settings import FtsSettings
from ftsd.store.schema import build_document

OFF = os.environ.get("FTSD_NATIVE") == "0"
QUICK = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# every ASCII word-break class (letter, "@", digit, "_", MidNumLet, MidNum, MidLetter, other), both cases, spaces
CLASSES = "aZ@1_.',;:\"- \x00#/\t"
ASCII = "".join(chr(c) for c in range(128))
# pieces that make long runs: words around WINDOW and max_word_chars, long punctuation and space runs
LONG = ["a" * 59, "b" * 60, "c" * 61, "d" * 64, "e" * 65, "f" * 130, "_" * 70, "9" * 62, "-" * 61, "." * 130,
        " " * 61, " " * 3, "x.y" * 30, "1,2" * 25, "a-" * 40, "@" * 70]


def native() -> None:
    if OFF:
        pytest.skip("FTSD_NATIVE=0: the compiled path is off")
    assert analysis.NATIVE, "ftsd._native is not built: run ./scripts/setup (needs gcc and python3-dev)"


def pair(**kwargs: int) -> tuple[Analyzer, Analyzer]:
    return Analyzer(native=True, **kwargs), Analyzer(native=False, **kwargs)


def assert_same(text: str, **kwargs: int) -> None:
    fast, slow = pair(**kwargs)
    for norm in {text, searchable(normalise(text), fast.max_word_chars)}:  # raw ASCII too: any text is safe
        assert fast._field(norm) == slow._field(norm), repr(norm)
        assert fast._marks(norm) == slow._marks(norm), repr(norm)
    assert fast.terms(text) == slow.terms(text)
    assert fast.header_and_body(text, text[::-1], text) == slow.header_and_body(text, text[::-1], text)


def test_the_extension_is_built_and_used() -> None:
    native()
    assert Analyzer().native and Analyzer.of(FtsSettings()).native
    assert not Analyzer(native=False).native


@QUICK
@given(st.text(alphabet=st.sampled_from(CLASSES + "bcy09"), max_size=120)
       | st.text(alphabet=st.characters(max_codepoint=127), max_size=120)
       | st.lists(st.sampled_from(LONG) | st.text(alphabet=st.sampled_from(CLASSES), max_size=4), max_size=12)
       .map("".join),
       st.sampled_from([(3, 20, 64), (1, 1, 64), (2, 40, 32), (4, 20, 200), (3, 50, 64)]))
def test_same_terms_as_python(text: str, params: tuple[int, int, int]) -> None:
    native()
    partial, full, max_word_chars = params
    assert_same(text, partial=partial, full=full, max_word_chars=max_word_chars)


def test_same_terms_on_every_short_string_of_the_classes() -> None:
    native()
    fast, slow = pair()
    classes = "a@1_.,:- "
    texts = [""] + list(classes)
    texts += [a + b for a in classes for b in classes]
    texts += [a + b + c for a in classes for b in classes for c in classes]
    for text in texts:
        assert fast._field(text) == slow._field(text), repr(text)
        assert fast._marks(text) == slow._marks(text), repr(text)


def mail_like(rng: random.Random) -> str:
    """Text shaped like mail: words, addresses, URLs, numbers, quoting, base64 and hex runs, ASCII art."""
    pieces = ["the", "Re:", "bob@example.org", "http://x.example.com/a?b=c&d=e", "1,000.50", "don't", "e-mail",
              "(e-mail),", "> quoted", "--", " -- ", "==", "#42", "_init_", "foo_bar", "A.B.C.", "3.14159",
              "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo" * 3, "0123456789abcdef" * 5, "\t", "  ", "|___|", "...",
              "x" * 65, "y" * 61, "a.b" * 25]
    words = [rng.choice(pieces) if rng.random() < 0.4
             else "".join(rng.choices(string.ascii_letters, k=rng.randint(1, 12))) for _ in range(rng.randint(0, 300))]
    return "".join(w + rng.choice([" ", " ", " ", ", ", ".\n", "\n\n", ""]) for w in words)


def test_same_terms_on_mail_like_text() -> None:
    native()
    rng = random.Random(17)
    for _ in range(150):
        assert_same(mail_like(rng))


def test_non_ascii_text_words_from_icu_chunks_and_marks_in_c() -> None:
    native()
    fast, slow = pair()
    for text in ("Grüße aus Köln, e-mail", "東京都に住んでいます", "a\u00adb", "x" * 70 + "é", "é—" * 50 + " a-b",
                 "\ud800-\udc00 x", "ж " * 100 + "—" * 70, "a\u0903b c\u0903 \u0903", "٣.٤ ١,٢"):
        assert fast.terms(text) == slow.terms(text)
        assert_same_field(text)


def assert_same_field(text: str) -> None:
    fast, slow = pair()
    for norm in {text, searchable(normalise(text), 64)}:  # raw text too: any str is safe
        assert fast._field(norm) == slow._field(norm), repr(norm)
        assert fast._marks(norm) == slow._marks(norm), repr(norm)


# non-ASCII text of every kind: letters, digits, spacing marks (not \w, though ICU joins them), punctuation, CJK,
# astral, lone surrogates, spaces
UNICODE = "aé_ж道😀\u0903\u2014\u00a0 .-@٣\ud800\udfff"


@QUICK
@given(st.text(alphabet=st.sampled_from(UNICODE), max_size=80) | st.text(max_size=80)
       | st.lists(st.sampled_from(LONG + ["é" * 61, "—" * 61, "\ud800" * 3]) | st.text(max_size=4), max_size=8)
       .map("".join))
def test_same_terms_of_any_text(text: str) -> None:
    native()
    assert_same_field(text)


def test_word_characters_are_res_for_every_code_point() -> None:
    """text_chunks classifies \\w as re does, for every code point: "a<c>a" is a chunk exactly when c is no word
    character (and a mark too)."""
    native()
    from ftsd import _native
    for start in range(0, 0x110000, 0x10000):
        chars = "".join(chr(c) for c in range(start, start + 0x10000)).replace(" ", "")
        other = set(re.findall(r"\W", chars))
        chunks, marks = _native.text_chunks(" ".join(f"a{c}a" for c in chars), 1, 1000, True)
        assert chunks == {f"a{c}a" for c in other}, hex(start)
        assert marks == {"\ufffd" if "\ud800" <= c <= "\udfff" else c for c in other} | {" "}, hex(start)


def test_hostile_input() -> None:
    native()
    from ftsd import _native
    for text in ("a" * 200_000, "-" * 200_000, " " * 200_000, "a-" * 100_000, "_ " * 100_000,
                 ("x" * 60 + "." + "y" * 60 + " ") * 500, "".join(chr(c) for c in range(128)) * 500):
        assert_same(text)
    terms = _native.ascii_terms("a-b " * 10, 3, 1, 1, True)  # the smallest window and step
    assert terms[2] == frozenset({"a", "-", "b"}) and terms[3] == frozenset({"-", " "})
    with pytest.raises(ValueError):
        _native.ascii_terms("é", 3, 20, WINDOW, True)
    with pytest.raises(ValueError):
        _native.ascii_marks("abc", 0, WINDOW)
    with pytest.raises(ValueError):
        _native.ascii_terms("abc", 3, 20, -1, False)
    with pytest.raises(TypeError):
        _native.ascii_terms(b"abc", 3, 20, WINDOW, True)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _native.text_chunks(b"abc", 20, WINDOW, True)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        _native.text_marks("é", 0, WINDOW)
    assert _native.text_chunks("é-b " * 10, 1, 1, True) == (frozenset({"é", "-", "b"}), frozenset({"-", " "}))
    with pytest.raises(OverflowError):
        _native.ascii_marks("abc", 2**70, WINDOW)
    huge = _native.ascii_terms("abc-def " * 3, 3, 2**62, 2**62, True)  # steps that would overflow
    assert huge[2] == frozenset({"abc-def"})


def test_same_document_bytes() -> None:
    native()
    rng = random.Random(5)
    analyzer = Analyzer()
    for _ in range(40):
        text = mail_like(rng)
        terms = {"subject": analyzer.terms(text[:80]), "from": analyzer.terms("Grüße <bob@x.org>"),
                 "headers": analyzer.terms(text[::-1]), "body": analyzer.terms(text + " 東京都 e-mail"),
                 "cc": Terms(frozenset(), frozenset(), frozenset())}
        assert build_document("g", 7, terms, {"uid": 7}) == build_document("g", 7, terms, {"uid": 7}, native=False)
    # overlapping sets (one term), lengths beyond one and two length bytes, prefixes of each other, bytes >= 0x80
    odd = Terms(frozenset({"a", "ab", "x" * 254, "y" * 255, "z" * 20_000, "é" * 200, "\x7f", "\uffff"}),
                frozenset({"a", "a.b", "ab."}), frozenset({"a", "é"}), frozenset({"--", "a"}))
    assert build_document("g", 1, {"to": odd}, {}) == build_document("g", 1, {"to": odd}, {}, native=False)
    from ftsd import _native
    assert _native.term_records(b"S") == (0, b"")
    assert _native.term_records(b"", frozenset({"b", "a"}), {"a"}) == (2, b"\x01a\x01\x00\x01b\x01\x00")
    for bad in ((), (b"S", ["a"]), (b"S", frozenset({1})), ("S", frozenset({"a"}))):
        with pytest.raises(TypeError):
            _native.term_records(*bad)
    with pytest.raises(UnicodeEncodeError):  # as str.encode does
        _native.term_records(b"S", frozenset({"a\ud800"}))
    with pytest.raises(UnicodeEncodeError):
        build_document("g", 1, {"to": Terms(frozenset({"a\ud800"}), frozenset(), frozenset())}, {}, native=False)


@QUICK
@given(st.text(alphabet=st.sampled_from(CLASSES + "AbZ\n\r\x0b\x0c\x1c\x1f\x1b\x7f"), max_size=120)
       | st.text(alphabet=st.characters(max_codepoint=127), max_size=120)
       | st.lists(st.sampled_from(LONG) | st.text(alphabet=st.sampled_from(CLASSES + "X\n"), max_size=4),
                  max_size=12).map("".join),
       st.sampled_from([0, 1, 3, 32, 59, 60, 64, 200]))
def test_same_normalised_and_searchable_text(text: str, max_word_chars: int) -> None:
    native()
    from ftsd import _native
    norm = _native.ascii_normalise(text)
    assert norm == analysis._collapse(text.lower())
    assert _native.ascii_searchable(text, max_word_chars) == analysis._garbage(max_word_chars).sub(" ", text)
    assert _native.ascii_searchable(norm, max_word_chars) == analysis._garbage(max_word_chars).sub(" ", norm)


def test_normalised_and_searchable_edges() -> None:
    native()
    from ftsd import _native
    for text in ("", " ", "\t\n", "A", " A\x1c\x1fB\x0b", "x" * 65 + " " + "y" * 64, "_" * 65 + "-" + "9" * 100):
        assert _native.ascii_normalise(text) == analysis._collapse(text.lower()), repr(text)
        assert _native.ascii_searchable(text, 64) == analysis._garbage(64).sub(" ", text), repr(text)
    text = "short words only"
    assert _native.ascii_searchable(text, 64) is text  # nothing blanked: no copy
    with pytest.raises(ValueError):
        _native.ascii_searchable("abc", -1)
    with pytest.raises(ValueError):
        _native.ascii_normalise("é")
    with pytest.raises(TypeError):
        _native.ascii_normalise(b"abc")  # type: ignore[arg-type]


# words for the short grams: known and unknown ASCII grams, spaces (a gram never holds one), non-ASCII known ("道")
# and unknown characters of every str kind (latin-1, UCS-2, astral, a lone surrogate)
GRAM_CHARS = "ab_z09 Q\t-@\x00\x7féж道😀\ud800"
WORDS = (st.text(alphabet=st.sampled_from(GRAM_CHARS), max_size=12) | st.sampled_from(COMMON_GRAMS)
         | st.sampled_from(["", " ", "  ", "a  b", "x" * 300, "道路" * 50, "é" * 70]))


def grams_both(words: set[str] | frozenset[str], partial: int) -> frozenset[str]:
    fast = analysis._short_grams(words, partial, True)
    assert fast == analysis._short_grams(words, partial, False), (sorted(words), partial)
    return fast


@QUICK
@given(st.sets(WORDS, max_size=30), st.integers(min_value=0, max_value=6))
def test_same_short_grams_as_python(words: set[str], partial: int) -> None:
    native()
    grams_both(words, partial)
    grams_both(frozenset(words), partial)


def test_short_grams_of_every_known_gram_and_edges() -> None:
    native()
    for partial in (2, 3, 4, 5):
        assert len(grams_both(set(COMMON_GRAMS), partial)) <= len(COMMON_GRAMS) // GRAM_GROUP + 2
        for words in ({""}, {" "}, {"", "a", "b"}, {"a b", "ab"}, {"道"}, {"\ud800\udc00"}, set(), {"A", "Ab"},
                      {"x" * 200_000}, {"é" * 100_000}, {"道" * 50_000 + "z"}, {"😀a" * 20_000},
                      {str(n) for n in range(5000)}):
            grams_both(words, partial)


def test_ascii_terms_makes_the_grams_of_its_words() -> None:
    native()
    from ftsd import _native
    rng = random.Random(3)
    for partial in (2, 3, 4):
        table = analysis._native_grams(partial)
        for _ in range(30):
            text = searchable(normalise(mail_like(rng)), 64)
            words = _native.ascii_terms(text, partial, 20, WINDOW, True)[0]
            grams, *rest = _native.ascii_terms(text, partial, 20, WINDOW, True, table)
            assert grams == analysis._short_grams(set(words), partial, False)
            assert rest == list(_native.ascii_terms(text, partial, 20, WINDOW, True)[1:])


def test_gram_table_and_short_grams_refuse_bad_arguments() -> None:
    native()
    from ftsd import _native
    tails = tuple(f"{n:02x}" for n in range(256))
    good = (("a", "b"), 8, ("!0",), tails, 3)
    assert _native.short_grams(_native.gram_table(*good), ["ab", "c"]) == {"!003", "ab", "c"}  # a, b: bits 1, 2
    for bad, error in ((("a", 1), TypeError), (("a", "bcd"), ValueError), (("",), ValueError)):
        with pytest.raises(error):
            _native.gram_table(bad, 8, ("!0",), tails, 3)  # type: ignore[arg-type]
    for group, heads, tails_, partial in ((0, ("!0",), tails, 3), (17, ("!0",), tails, 3), (8, (), tails, 3),
                                           (8, ("!0",), tails[:-1], 3), (8, ("!0",), tails, 1)):
        with pytest.raises(ValueError):
            _native.gram_table(("a",), group, heads, tails_, partial)
    with pytest.raises(TypeError):
        _native.gram_table(["a"], 8, ("!0",), tails, 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _native.gram_table(("a",), 8, (b"!0",), tails, 3)  # type: ignore[arg-type]
    with pytest.raises(OverflowError):
        _native.gram_table(("a",), 2**70, ("!0",), tails, 3)
    table = analysis._native_grams(3)
    for table_, words in ((None, ["a"]), ("table", ["a"]), (table, 5), (table, ["a", 5]), (table, [b"a"])):
        with pytest.raises(TypeError):
            _native.short_grams(table_, words)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _native.ascii_terms("abc", 3, 20, WINDOW, True, "table")
    with pytest.raises(ValueError):
        _native.ascii_terms("abc", 4, 20, WINDOW, True, table)  # a table made for another partial
    assert _native.short_grams(table, iter(["ab"])) == analysis._short_grams({"ab"}, 3, False)
