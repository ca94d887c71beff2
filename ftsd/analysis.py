"""Analysis: text -> normalised text -> runs -> terms (index mode) or pieces (query mode).

IMAP SEARCH is substring matching on normalised text (design §4). Both sides are normalised the same way:
compatibility decomposition, case folding, combining marks removed, white-space runs collapsed.

The normalised text is cut into *runs* with ICU's word segmentation (UAX #29, dictionary based for CJK/Thai):
a run is a maximal sequence of adjacent word-like segments, so "foo.bar@x.com", "don't", "1,000.50" and a whole
"東京都に住んでいます" stay one run each. Merging adjacent segments matters for exactness: ICU splits 東京|都, and a
substring such as 京都 crosses that boundary (fts-xapian#85); inside a run no substring is ever lost.

Index mode stores, per field, the *words* (maximal word-character sequences) of at least `partial` characters,
each *chunk* (the text between spaces, from its first to its last word character) that holds another character
too, and every 1..partial-1 character gram of the words. A query string of `partial` characters or more is looked
up in the field's *lexicon* (the list of stored words, chunks and marks, see store/lexicon.py): every entry that
contains it, as a substring, is OR-ed. A string without a space lies inside one chunk of the text: with word
characters only, inside one word, so it is looked up among the words; with punctuation between word characters
("e-mail", "foo.bar@x.com", "don't"), among the chunks. Punctuation at a string's edges ("e-mail,") is left to the
check: storing whole chunks ("(e-mail),") too was measured at twice the new terms for that (docs/performance.md).
This finds what fts-xapian's all-n-grams scheme finds, and what its 20-character cap loses, with
one term per word instead of O(l^2) (design §5; measured in docs/performance.md). Strings shorter than `partial`
are single gram lookups (the known grams stored as pattern terms: see GRAM_GROUP). ASCII text
is cut into runs by a regex that gives ICU's runs (_ASCII_RUN), other text by ICU. Word-character runs longer
than `max_word_chars` (base64, hex garbage) are blanked out before segmentation, on both the indexing and the
verifying side, as Dovecot skips base64 runs of 50+ characters.
Entries longer than WINDOW characters are stored as overlapping windows (Xapian terms are at most 245 bytes).

A key with no word character at all (`#`, `--`, `" - "`, `@`) can only occur inside one maximal run of non-word
characters (white space included) of the text. Each field also stores these *marks* (its distinct non-word runs,
listed in a lexicon of their own), so such a key is answered exactly, like a word, by the marks that contain it.
TEXT is the header lines followed by the body: its marks are those of the `headers` field (taken from the
header lines with their values, plus the run across the join with the body) and of the body.

A key with a space and a word character (a *phrase*: "hello world", "e-mail address") is looked up piece by
piece (each piece lies inside one chunk) and the candidates that hold every piece are checked against the text.
Adjacency in the index (Xapian positions of the chunks) was measured and left out: it made the index 2.1x larger
(docs/performance.md, "Phrases and punctuation").
"""

from __future__ import annotations

import functools
import operator
import os
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import icu

from ftsd.common_grams import COMMON_GRAMS
from ftsd.settings import FtsSettings

try:  # compiled twins of the ASCII loops below (ftsd/_native.c; setup.py builds it where a C compiler is found)
    from ftsd import _native

    NATIVE = os.environ.get("FTSD_NATIVE", "1") != "0"  # FTSD_NATIVE=0: the pure-Python code (the same terms)
except ImportError:  # no compiler at install time: the Python code alone
    NATIVE = False

_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# Nonspacing and enclosing marks: removed after decomposition so that "Fahrländer" ~ "fahrlander". Invisible format
# characters (Cf: soft hyphen, zero-width space/joiners, bidi controls, BOM) too: a reader never sees them, HTML
# mail is full of &shy;, and ICU's word breaker does not count "0_" + U+00AD as word-like at all.
_DROPPED = ("Mn", "Me", "Cf")


class _MarkTable(dict[int, int | None]):
    """str.translate table dropping Mn/Me/Cf characters, filled per character on first sight (building it for all
    of Unicode up front costs ~0.1 s at every start of the CLI). A memo of a pure function of the Unicode
    database: what it holds never depends on the caller, so one per process is a constant in all but timing."""

    def __missing__(self, cp: int) -> int | None:
        value = None if unicodedata.category(chr(cp)) in _DROPPED else cp
        self[cp] = value
        return value


_MARKS = _MarkTable()
_WORD_CHAR = re.compile(r"\w")
_ALL_WORD = re.compile(r"\w+")
# A maximal run of non-word characters with at least one that is not a space (the look-behind starts it at its
# first character only, which keeps the scan linear on long runs of spaces).
_MARK = re.compile(r"(?<! ) *[^\w ]\W*")
_SPACE_RUN = re.compile(r" {2,}")
_NON_WORD_HEAD = re.compile(r"\W*")
_CORE = re.compile(r"\w(?:.*\w)?", re.DOTALL)  # from the first to the last word character
_SURROGATE = re.compile("[\ud800-\udfff]")
# ICU's word segmentation (root locale, ICU 72) restricted to ASCII text, where it is plain enough for a regex:
# letters, digits, "@" (ICU counts it as a letter) and "_" join; "." and "'" join two letters, "." "'" "," ";" two
# digits (UAX #29 WB6/7, WB11/12). Every match is one word-like segment, except a lone "_"; and no two word-like
# segments touch in ASCII, so the matches are the runs. Checked equal to ICU on every string of up to 4 characters
# of all ASCII word-break classes, every ASCII pair in context, random text and the corpus (test_analysis_fast.py).
_ASCII_RUN = re.compile(r"[\w@]+(?:(?:(?<=[a-z@])[.'](?=[a-z@])|(?<=[0-9])[.',;](?=[0-9]))[\w@]+)*",
                        re.ASCII | re.IGNORECASE)
# ASCII bytes -> themselves for word characters, space for the rest: the word lengths of ASCII text in one C pass.
_ASCII_WORD_BYTES = bytes(c if chr(c).isalnum() or c == 0x5F else 0x20 for c in range(128)) + b" " * 128


def is_word(text: str) -> bool:
    """Word characters only (a lexicon *word*, as opposed to a run with punctuation)."""
    return _ALL_WORD.fullmatch(text) is not None


def is_mark(text: str) -> bool:
    """No word character at all (a lexicon *mark*: punctuation, symbols, spaces)."""
    return _WORD_CHAR.search(text) is None


def normalise(text: str) -> str:
    """NFKD, case fold, marks and invisible format characters removed, white space collapsed: the form both text
    and queries are compared in."""
    if text.isascii():
        return _native.ascii_normalise(text) if NATIVE else _collapse(text.lower())
    text = unicodedata.normalize("NFKD", text).casefold()
    return _collapse(_drop_marks(unicodedata.normalize("NFKD", text)))


def _drop_marks(text: str) -> str:
    """`text` without its Mn/Me/Cf characters: text.translate(_MARKS), which costs a dict look-up per character;
    a text has few distinct ones, each removed by one str.replace (a C scan), up to _DROP_REPLACES of them."""
    drop = [c for c in set(text) if _MARKS[ord(c)] is None]
    if len(drop) > _DROP_REPLACES:  # bounded passes over the text, whatever it holds
        return text.translate(_MARKS)
    for c in drop:
        text = text.replace(c, "")
    return text


_DROP_REPLACES = 8


def _collapse(text: str) -> str:
    """White-space runs as one space (str.split's white space is re's \\s), a leading and a trailing one kept."""
    out = " ".join(text.split())
    if not out:
        return " " if text else ""
    if text[0].isspace():
        out = " " + out
    if text[-1].isspace():
        out += " "
    return out


def searchable(norm: str, max_word_chars: int) -> str:
    """Normalised text with word-character runs longer than `max_word_chars` (base64, hex) blanked out."""
    if norm.isascii():  # most text: measure the words in C first, the regex runs only if one is too long
        if NATIVE and max_word_chars >= 0:
            return _native.ascii_searchable(norm, max_word_chars)
        words = norm.encode().translate(_ASCII_WORD_BYTES).split()
        if max(map(len, words), default=0) <= max_word_chars:
            return norm
    return _garbage(max_word_chars).sub(" ", norm)


@functools.lru_cache(maxsize=8)
def _garbage(max_word_chars: int) -> re.Pattern[str]:
    # the look-behind tries each run once, from its start (not again from each of its characters)
    return re.compile(rf"(?<!\w)\w{{{max_word_chars + 1},}}")


def _utf16_to_index(text: str) -> list[int] | None:
    """Map UTF-16 offsets (what ICU returns) to str indexes, or None when they coincide (no astral chars)."""
    if not _ASTRAL.search(text):
        return None
    table = []
    for i, ch in enumerate(text):
        table.append(i)
        if ord(ch) > 0xFFFF:
            table.append(i)
    table.append(len(text))
    return table


def word_breaker() -> icu.BreakIterator:
    """A new ICU word BreakIterator (root locale): one per thread, it is not thread-safe."""
    return icu.BreakIterator.createWordInstance(icu.Locale.getRoot())


def runs(text: str, breaker: icu.BreakIterator | None = None) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of adjacent word-like ICU segments in already normalised text. `breaker`: one of
    this thread's to reuse (word_breaker()), else a new one is made."""
    if breaker is None:
        breaker = word_breaker()
    breaker.setText(text)
    table = _utf16_to_index(text)
    start = -1
    prev = 0
    for boundary in breaker:
        word_like = breaker.getRuleStatus() != 0
        if word_like and start < 0:
            start = prev
        elif not word_like and start >= 0:
            yield (table[start], table[prev]) if table else (start, prev)
            start = -1
        prev = boundary
    if start >= 0:
        yield (table[start], table[prev]) if table else (start, prev)


WINDOW = 60  # characters: 60 x 4 UTF-8 bytes + a prefix fits Xapian's 245-byte term limit
EXACT_CHARS = 40  # strings up to this long (or `full`) are settled by the index alone (windows overlap so much)


def _windows(entry: str, step: int) -> list[str]:
    """`entry`, or overlapping WINDOW-character slices of it such that any substring of up to `exact_chars`
    characters (step = WINDOW - exact_chars) lies inside one slice."""
    if len(entry) <= WINDOW:
        return [entry]
    out = []
    for i in range(0, len(entry), step):
        out.append(entry[i : i + WINDOW])
        if i + WINDOW >= len(entry):
            break
    return out


@dataclass(frozen=True, slots=True)
class Terms:
    """What one field of one message stores: `words` (word characters only, >= partial characters), `chunks`
    (entries with a word character and another one), `marks` (no word character) -- listed in the lexicon --
    and the short `grams`."""

    words: frozenset[str]
    chunks: frozenset[str]
    grams: frozenset[str]
    marks: frozenset[str] = frozenset()  # the distinct runs of non-word characters (also listed in the lexicon)

    def all(self) -> frozenset[str]:
        return self.words | self.chunks | self.grams | self.marks


@dataclass(frozen=True, slots=True)
class Analyzer:
    """Turns text into terms with the fts settings: `partial` (shorter strings are grams), `full` (longer strings
    than max(full, EXACT_CHARS) are also checked against the message) and `max_word_chars`."""

    partial: int = 3
    full: int = 20
    max_word_chars: int = 64
    native: bool = field(default=NATIVE, compare=False)  # ASCII text through ftsd._native where built and on
    # per thread: a BreakIterator reused across calls (the Analyzer is shared by a service's threads)
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False, compare=False)

    @classmethod
    def of(cls, fts: FtsSettings) -> Analyzer:
        return cls(partial=fts.partial, full=fts.full, max_word_chars=fts.max_word_chars)

    @property
    def exact_chars(self) -> int:
        """Longest query string the index settles alone: any such substring lies inside one stored entry."""
        return max(self.full, EXACT_CHARS)

    @property
    def _step(self) -> int:
        return max(1, WINDOW - self.exact_chars)

    def terms(self, text: str) -> Terms:
        """Index mode: the words, chunks, marks and short grams of the normalised text."""
        return self._field(searchable(normalise(text), self.max_word_chars))

    def header_and_body(self, headers: str, other_headers: str, body: str) -> tuple[Terms, Terms]:
        """Index mode for the `headers` field (words and chunks of `other_headers`; the marks of TEXT's header part)
        and the body. TEXT = header lines + "\n" + body; normalised, the two join at one space, so TEXT's marks
        are those of each side, plus the run across the join (stored with the headers)."""
        body_norm = normalise(body)
        body_text = searchable(body_norm, self.max_word_chars)
        head_text = searchable(normalise(headers).removesuffix(" "), self.max_word_chars)
        after = body_text[1:] if body_norm.startswith(" ") else body_text  # one space at the join
        lead = _NON_WORD_HEAD.match(after)
        join = _trailing_non_word(head_text) + " " + (lead.group() if lead else "")
        marks = self._marks(head_text) | self._marks(join)
        return self._field(searchable(normalise(other_headers), self.max_word_chars), marks), self._field(body_text)

    def _field(self, norm: str, marks: frozenset[str] | None = None) -> Terms:
        """The terms of searchable text, with `marks` (None: the text's own)."""
        if self.native and NATIVE and norm.isascii():  # the same sets as below, in one C pass
            table = _native_grams(self.partial) if self.partial >= 2 else None  # the short grams made there too
            grams, long_words, chunks, own = _native.ascii_terms(norm, self.partial, self._step, WINDOW, marks is None,
                                                                 table)
            return Terms(long_words, chunks, grams if isinstance(grams, frozenset) else frozenset(),  # set: no table
                         own if marks is None else marks)
        if self.native and NATIVE:  # other text: the words from ICU here, the chunks and marks in C
            chunks, own = _native.text_chunks(norm, self._step, WINDOW, marks is None)
            return self._terms(norm, own if marks is None else marks, chunks)
        return self._terms(norm, self._marks(norm) if marks is None else marks, chunks_of(norm, self._step))

    def _marks(self, norm: str) -> frozenset[str]:
        """The distinct maximal runs of non-word characters of searchable text (windows beyond WINDOW)."""
        if self.native and NATIVE:
            if norm.isascii():
                return _native.ascii_marks(norm, self._step, WINDOW)
            return _native.text_marks(norm, self._step, WINDOW)
        found = set(_MARK.findall(norm))
        if " " in norm:  # runs of spaces only: the longest stands for all
            longest = max((len(m) for m in _SPACE_RUN.findall(norm)), default=1) if "  " in norm else 1
            found.add(" " * min(longest, WINDOW))
        out = {mark for mark in found if len(mark) <= WINDOW and mark.isascii()}
        for mark in found - out:
            if not mark.isascii():  # a lone surrogate cannot be stored (UTF-8)
                mark = _SURROGATE.sub("\ufffd", mark)
            out.update(_windows(mark, self._step))
        return frozenset(out)

    def _breaker(self) -> icu.BreakIterator:
        """This thread's BreakIterator (made on first use; an ICU BreakIterator must not be shared by threads)."""
        breaker: icu.BreakIterator | None = getattr(self._local, "breaker", None)
        if breaker is None:
            breaker = self._local.breaker = word_breaker()
        return breaker

    def _runs(self, norm: str) -> set[str]:
        """The distinct runs of searchable text: a regex for ASCII text (the same runs as ICU), else ICU."""
        if norm.isascii():
            found = set(_ASCII_RUN.findall(norm))
            found.discard("_")
            return found
        return {norm[start:end] for start, end in runs(norm, self._breaker())}

    def _terms(self, norm: str, marks: frozenset[str], chunks: frozenset[str]) -> Terms:
        partial = self.partial
        step = self._step
        found = self._runs(norm)
        words = {run for run in found if run.isalnum()}  # most runs, without a regex (isalnum: \w without "_")
        for run in found - words:
            if _ALL_WORD.fullmatch(run):
                words.add(run)
            else:  # punctuated runs are found through the chunks that hold them (chunks_of)
                words.update(_ALL_WORD.findall(run))
        long_words = {w for w in words if len(w) >= partial}
        if max(map(len, long_words), default=0) > WINDOW:
            long_words = {piece for w in long_words for piece in _windows(w, step)}
        return Terms(frozenset(long_words), chunks, _short_grams(words, partial, self.native), marks)

    def pieces(self, query: str) -> QueryPieces:
        """Query mode: the normalised query string, its lookup keys, and whether the index can settle it alone."""
        norm = normalise(query)
        if norm and is_mark(norm):  # no word character: one lookup among the marks
            return QueryPieces(norm, (norm,), len(norm) <= self.exact_chars, marks=True)
        # A string with a longer word-character run than max_word_chars can never match (such runs are blanked).
        if _garbage(self.max_word_chars).search(norm):
            return QueryPieces(norm, None, False)
        parts = norm.split(" ")
        # Every piece between spaces lies inside one chunk; from its first to its last word character, inside the
        # stored chunk (or word) of that chunk. Pieces without a word character are left to the check (marks are
        # stored with their spaces), and so is punctuation at a piece's edges. Words are what ICU finds: a piece
        # of word characters that ICU does not see as one word ("_") is looked up by its ICU runs.
        keys: list[str] = []
        whole = True
        for part in parts:
            core = _CORE.search(part)
            if core is None:
                continue
            key = core.group()
            spans = list(runs(key, self._breaker())) if _ALL_WORD.fullmatch(key) else [(0, len(key))]
            whole = whole and key == part and spans == [(0, len(key))]
            keys += [key[start:end] for start, end in spans]
        return QueryPieces(norm, tuple(keys), len(parts) == 1 and whole and len(norm) <= self.exact_chars)


def chunks_of(norm: str, step: int) -> frozenset[str]:
    """The distinct chunks of searchable text: the text between spaces, from its first to its last word character
    ("e-mail" of "(e-mail),"), when that holds another character; windowed beyond WINDOW. Any string without a
    space that starts and ends with a word character and is not all word characters lies inside one of them."""
    out: set[str] = set()
    for chunk in set(norm.split(" ")):
        core = _CORE.search(chunk)
        if core and not _ALL_WORD.fullmatch(core.group()):
            entry = core.group()
            out.update(_windows(entry, step) if len(entry) > WINDOW else (entry,))
    return frozenset(out)


def _short_grams(words: Iterable[str], partial: int, native: bool = True) -> frozenset[str]:
    """The short-gram terms of the words: every 1..partial-1 character substring without a space (a string shorter
    than `partial` never spans punctuation), the known grams as one pattern term per group the text touches
    (GRAM_GROUP). `native`: through ftsd._native where built (the same terms)."""
    if partial < 2:
        return frozenset()
    if native and NATIVE:
        return _native.short_grams(_native_grams(partial), words)
    joined = " ".join(words)  # all words at once: the grams that contain a space are dropped
    chars = set(joined)
    chars.discard(" ")
    grams = set(chars)
    if partial > 2:  # pairs of neighbours in C: map over the text and the text shifted by one
        grams.update(map(operator.add, joined, joined[1:]))
        grams.difference_update([" " + c for c in chars], [c + " " for c in chars], ["  "])
    for size in range(3, min(partial, len(joined) + 1)):
        grams.update({g for i in range(len(joined) - size + 1) if " " not in (g := joined[i : i + size])})
    table = _gram_table(partial)
    known = table.keys() & grams
    if not known:
        return frozenset(grams)
    grams -= known
    patterns: dict[str, int] = {}
    for gram in known:
        head, bit = table[gram]
        patterns[head] = patterns.get(head, 0) | bit
    grams.update(map(operator.add, patterns, map(_PATTERN_TAILS.__getitem__, patterns.values())))
    return frozenset(grams)


# Short grams as pattern terms. Most texts of some length hold most common grams ("e", "th", "in"): one term per gram
# made the grams half of a document's terms, and the writer's cost grows with the terms per document. The known grams
# (common_grams.py, most frequent first) form groups of GRAM_GROUP neighbours, so a group holds grams of similar
# frequency; per text and group, ONE term names the group and, as GRAM_GROUP bits, which of its grams the text has
# (none: no term). A text has the known gram g (group G, bit b) exactly when it has a pattern term of G with bit b
# set (store/searcher.py ORs those the index holds); other grams stay terms of their own. A dense group collapses
# to its all-ones term, a rare one costs nothing. The term is "!" + the group + the pattern in hexadecimal digits of
# fixed width: never a word, chunk or gram (these start with a word character) nor a mark (it has word characters).
# GRAM_GROUP 8 measured best (docs/performance.md): 4 or 6 leave more terms, 12 or 16 make up to 2^15 patterns
# per group and field for a search to OR.
GRAM_GROUP = 8
PATTERN = "!"
_PATTERN_TAILS = tuple(f"{n:0{(GRAM_GROUP + 3) // 4}x}" for n in range(1 << GRAM_GROUP))


@functools.lru_cache(maxsize=4)
def _gram_groups(partial: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the known grams shorter than `partial`, the head of each group's pattern terms): gram n is bit
    n % GRAM_GROUP of the group n // GRAM_GROUP."""
    known = tuple(g for g in COMMON_GRAMS if len(g) < partial)
    groups = max(len(known) - 1, 0) // GRAM_GROUP + 1
    width = len(f"{groups - 1:x}")
    return known, tuple(f"{PATTERN}{n:0{width}x}" for n in range(groups))


@functools.lru_cache(maxsize=4)
def _gram_table(partial: int) -> dict[str, tuple[str, int]]:
    """gram -> (head of its group's pattern terms, its bit) for the known grams shorter than `partial`."""
    known, heads = _gram_groups(partial)
    return {g: (heads[n // GRAM_GROUP], 1 << n % GRAM_GROUP) for n, g in enumerate(known)}


@functools.lru_cache(maxsize=4)
def _native_grams(partial: int) -> object:
    """_gram_table for ftsd._native (partial >= 2; a table made once, read-only)."""
    known, heads = _gram_groups(partial)
    return _native.gram_table(known, GRAM_GROUP, heads, _PATTERN_TAILS, partial)


def is_gram_form(text: str) -> bool:
    """A pattern term of the known grams (not a word, run or mark: no lexicon entry)."""
    return text[:1] == PATTERN and not is_mark(text)


def gram_patterns(gram: str, partial: int) -> tuple[str, frozenset[str]] | None:
    """(head, tails) of a known gram shorter than `partial`: a text has it exactly when it has one of the pattern
    terms head + tail (the patterns with its bit set); None for a gram stored as itself."""
    found = _gram_table(partial).get(gram)
    return None if found is None else (found[0], _tails_with(found[1]))


@functools.lru_cache(maxsize=GRAM_GROUP)
def _tails_with(bit: int) -> frozenset[str]:
    return frozenset(tail for n, tail in enumerate(_PATTERN_TAILS) if n & bit)


@dataclass(frozen=True, slots=True)
class QueryPieces:
    """A normalised search string. Each of `runs` is a lookup key (a substring of a lexicon entry, or a short
    gram, or a mark) that every matching text contains; `exact`: the single key alone decides.
    `runs` is None when the string can never match (it contains an unindexable over-long word)."""

    text: str
    runs: tuple[str, ...] | None
    exact: bool
    marks: bool = False  # no word character: `runs` is the whole string, looked up among the marks


def _trailing_non_word(text: str) -> str:
    """The run of non-word characters `text` ends with (a loop from the end: a regex would rescan the text)."""
    end = len(text)
    start = end
    while start and not _WORD_CHAR.match(text, start - 1):
        start -= 1
    return text[start:end]
