from hypothesis import given, settings
from hypothesis import strategies as st

from ftsd.analysis import Analyzer, is_mark, is_word, normalise
from tests.grams import decoded, has_gram

A = Analyzer(full=20, max_word_chars=64)


def test_normalise():
    assert normalise("Fahrländer  GRÖSSE\n\tStraße") == "fahrlander grosse strasse"
    assert normalise("ﬁle Ⅻ") == "file xii"


def test_words_and_short_grams():
    # the word itself (>= partial chars) in the lexicon, plus every 1- and 2-char gram
    terms = A.terms("Example")
    assert terms.words == {"example"} and terms.chunks == set()
    assert "/".join(sorted(decoded(terms.grams, 3))) == "a/am/e/ex/l/le/m/mp/p/pl/x/xa"
    assert len(terms.grams) < 12  # as pattern terms: one per group of known grams touched


def test_chunks_keep_punctuation_and_cjk():
    terms = A.terms("<bob@example.com> 東京都 Don't e-mail, -- x")
    assert {"bob", "example", "com", "東京都", "don", "mail"} <= terms.words
    # from the first to the last word character; "--" is a mark, "x" a word: no chunk of their own
    assert terms.chunks == {"bob@example.com", "don't", "e-mail"}


def test_long_entries_windowed_and_garbage_skipped():
    long_run = ".".join(["abcdefghij"] * 12)  # 131 characters with punctuation
    terms = A.terms("x" * 30 + " " + "Q" * 80 + " " + long_run)
    assert "x" * 30 in terms.words and not any(t.startswith("q") for t in terms.all())
    assert max(map(len, terms.chunks)) == 60
    # every substring of up to 40 characters (the longest the index settles alone) lies inside one window
    for i in range(len(long_run) - 40):
        assert any(long_run[i : i + 40] in w for w in terms.chunks), i


def test_query_pieces():
    p = A.pieces("Fahrländer")
    assert (p.text, p.runs, p.exact) == ("fahrlander", ("fahrlander",), True)
    p = A.pieces("lo wor")
    assert (p.runs, p.exact) == (("lo", "wor"), False)
    p = A.pieces("E-Mail")
    assert (p.runs, p.exact) == (("e-mail",), True)
    assert A.pieces(" to - be ").runs == ("to", "be") and A.pieces("(e-mail) x").runs == ("e-mail", "x")
    p = A.pieces("(e-mail),")  # punctuation at the edges: inside a chunk "e-mail", but not settled by it
    assert (p.runs, p.exact) == (("e-mail",), False)
    assert A.pieces("a" * 40).exact and not A.pieces("a" * 41).exact
    assert A.pieces("a" * 70).runs is None
    p = A.pieces(" -- ")
    assert (p.text, p.runs, p.exact, p.marks) == (" -- ", (" -- ",), True, True)
    assert not A.pieces("a-").marks and not A.pieces("-" * 41).exact


def test_marks():
    terms = A.terms("foo -- bar, baz... #1 a.b@c\n\n x")
    assert terms.marks == {" ", " -- ", ", ", "... #", ".", "@"}
    assert A.terms("word").marks == set() and A.terms("a" * 70 + " x").marks == {"  "}  # the blanked run is a space
    long_line = "=" * 130
    assert max(map(len, A.terms(f"x {long_line} y").marks)) == 60
    headers, body = A.header_and_body("Subject: hi!\nFrom: <a@b>", "Subject:\nFrom: <a@b>", "\n-- sig\nbody ( x )")
    assert headers.marks == {" ", ": ", "! ", ": <", "@", ">", "> -- "}  # "> -- " spans headers and body
    assert body.marks == {" ", " -- ", " ( ", " )"} and "hi" not in headers.words


_TEXTS = st.text(alphabet=st.sampled_from("ab -.#\n\t<>!é\u00b4\u00bd"), max_size=40)


@settings(max_examples=150, deadline=None)
@given(_TEXTS, _TEXTS)
def test_text_marks_exact(head, body):
    # TEXT as the verifier sees it; every string without a word character is in it iff inside a stored mark
    text = A.pieces(head + "\n" + body).text
    headers, body_terms = A.header_and_body(head, "", body)
    marks = headers.marks | body_terms.marks
    assert all(m in text for m in marks)
    for i in range(len(text)):
        for j in range(i + 1, len(text) + 1):
            sub = text[i:j]
            if is_mark(sub):
                assert any(sub in m for m in marks), (text, sub)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_analysis_total_and_every_substring_findable(text):
    terms = A.terms(text)
    for word in set(normalise(text).split()):
        # the word and every substring of it the index alone settles: a short gram, or inside a lexicon entry
        for sub in {word[i:j] for i in range(len(word)) for j in range(i + 1, min(len(word), i + 8) + 1)}:
            # (a word here is text between spaces: a chunk, so every substring without a space is settled alone)
            pieces = A.pieces(sub)
            if pieces.exact and pieces.runs:
                key = pieces.runs[0]
                if pieces.marks:
                    assert any(key in entry for entry in terms.marks), (word, key)
                elif len(key) < 3 and is_word(key):
                    assert has_gram(terms.grams, key, 3), (word, key)
                else:
                    pool = terms.words if is_word(key) else terms.chunks
                    assert any(key in entry for entry in pool), (word, key)
