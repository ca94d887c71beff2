"""Analysis: text -> normalised text -> runs -> terms (index mode) or pieces (query mode).

IMAP SEARCH is substring matching on normalised text (design §4). Both sides are normalised the same way:
compatibility decomposition, case folding, combining marks removed, white-space runs collapsed.

The normalised text is cut into *runs* with ICU's word segmentation (UAX #29, dictionary based for CJK/Thai):
a run is a maximal sequence of adjacent word-like segments, so "foo.bar@x.com", "don't", "1,000.50" and a whole
"東京都に住んでいます" stay one run each. Merging adjacent segments matters for exactness: ICU splits 東京|都, and a
substring such as 京都 crosses that boundary (fts-xapian#85); inside a run no substring is ever lost.

Index mode stores every *suffix* of a run that is at least `partial` characters long, cut to `full` characters
("example" -> example, xample, ample, mple, ple). Any substring of a run of length >= `partial` is then a prefix of
one stored suffix, so such a query string is a prefix (wildcard) lookup: the same matches as fts-xapian's
all-n-grams scheme with O(l) instead of O(l^2) terms per word. Strings shorter than `partial` are not dropped (as
fts-xapian does): every distinct 1..partial-1 character gram of the text is stored too, so they are a single
exact term lookup. Word-character runs longer than `max_word_chars` (base64, hex garbage) are blanked out before
segmentation, on both the indexing and the verifying side, as Dovecot skips base64 runs of 50+ characters.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass

import icu

from ftsd.settings import FtsSettings

_SPACES = re.compile(r"\s+")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# Nonspacing and enclosing marks: removed after decomposition so that "Fahrländer" ~ "fahrlander".
class _MarkTable(dict[int, int | None]):
    """str.translate table dropping Mn/Me characters, filled per character on first sight (building it for all
    of Unicode up front costs ~0.1 s at every start of the CLI)."""

    def __missing__(self, cp: int) -> int | None:
        value = None if unicodedata.category(chr(cp)) in ("Mn", "Me") else cp
        self[cp] = value
        return value


_MARKS = _MarkTable()
_WORD_CHAR = re.compile(r"\w")
_ALL_WORD = re.compile(r"\w+")


def normalise(text: str) -> str:
    """NFKD, case fold, marks removed, white space collapsed: the form both text and queries are compared in."""
    if text.isascii():
        return _SPACES.sub(" ", text.lower())
    text = unicodedata.normalize("NFKD", text).casefold()
    text = unicodedata.normalize("NFKD", text).translate(_MARKS)
    return _SPACES.sub(" ", text)


def searchable(norm: str, max_word_chars: int) -> str:
    """Normalised text with word-character runs longer than `max_word_chars` (base64, hex) blanked out."""
    return _garbage(max_word_chars).sub(" ", norm)


_GARBAGE: dict[int, re.Pattern[str]] = {}


def _garbage(max_word_chars: int) -> re.Pattern[str]:
    pattern = _GARBAGE.get(max_word_chars)
    if pattern is None:
        pattern = _GARBAGE[max_word_chars] = re.compile(rf"\w{{{max_word_chars + 1},}}")
    return pattern


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


def runs(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of adjacent word-like ICU segments in already normalised text."""
    breaker = icu.BreakIterator.createWordInstance(icu.Locale.getRoot())
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


@dataclass(frozen=True, slots=True)
class Analyzer:
    """Turns text into terms with the fts settings: `partial`, `full` (longest term) and `max_word_chars`."""

    partial: int = 3
    full: int = 20
    max_word_chars: int = 64

    @classmethod
    def of(cls, fts: FtsSettings) -> Analyzer:
        return cls(partial=fts.partial, full=fts.full, max_word_chars=fts.max_word_chars)

    def terms(self, text: str) -> set[str]:
        """Index mode: the set of suffix terms of every run of the normalised text."""
        norm = searchable(normalise(text), self.max_word_chars)
        full = self.full
        partial = self.partial
        distinct = {norm[start:end] for start, end in runs(norm)}
        out: set[str] = set()
        words: list[str] = []
        for run in distinct:
            if _ALL_WORD.fullmatch(run):
                out.update([run[i : i + full] for i in range(len(run) - partial + 1)])
                words.append(run)
            else:
                # A suffix starting with punctuation can never be the start of a query piece (pieces start
                # with a word-like segment), so it is not stored.
                starts = [m.start() for m in _WORD_CHAR.finditer(run)]
                out.update([run[i : i + full] for i in starts if len(run) - i >= partial])
                words += _ALL_WORD.findall(run)
        # Short grams, over all words at once (a string shorter than `partial` never spans punctuation).
        joined = " ".join(words)
        for size in range(1, partial):
            out.update({g for i in range(len(joined) - size + 1) if " " not in (g := joined[i : i + size])})
        return out

    def pieces(self, query: str) -> QueryPieces:
        """Query mode: the normalised query string and its runs, and whether the index can settle it alone."""
        norm = normalise(query)
        spans = list(runs(norm))
        keys = []
        for start, end in spans:
            run = norm[start:end]
            first = _WORD_CHAR.search(run)
            if first is None:  # no word character: nothing stored can stand for it
                continue
            key = run[first.start() :]  # stored suffixes start at a word character
            if len(key) < self.partial and not _ALL_WORD.fullmatch(key):
                key = _ALL_WORD.match(key).group()  # type: ignore[union-attr]  # short grams are word characters
            keys.append(key)
        single = len(spans) == 1 and spans[0] == (0, len(norm)) and keys == [norm]
        findable = len(norm) >= self.partial or bool(_ALL_WORD.fullmatch(norm))
        # A string with a longer word-character run than max_word_chars can never match (such runs are blanked).
        possible = not _garbage(self.max_word_chars).search(norm)
        exact = single and findable and len(norm) <= self.full
        return QueryPieces(norm, tuple(keys) if possible else None, exact and possible)


@dataclass(frozen=True, slots=True)
class QueryPieces:
    """A normalised search string. Each of `runs` is a lookup key (a prefix of a stored suffix, or a short gram)
    that every matching text contains; `exact`: the single key alone decides.
    `runs` is None when the string can never match (it contains an unindexable over-long word)."""

    text: str
    runs: tuple[str, ...] | None
    exact: bool
