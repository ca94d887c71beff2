"""Reading the short-gram terms of analysis.Terms back, as store/searcher.py does (pattern terms of known grams)."""

from __future__ import annotations

from ftsd.analysis import gram_patterns
from ftsd.common_grams import COMMON_GRAMS


def has_gram(grams: frozenset[str], gram: str, partial: int) -> bool:
    """Whether a text with these short-gram terms has `gram` (shorter than `partial`)."""
    patterns = gram_patterns(gram, partial)
    if patterns is None:
        return gram in grams
    head, tails = patterns
    return any(head + tail in grams for tail in tails)


def decoded(grams: frozenset[str], partial: int) -> set[str]:
    """Every gram the terms say the text has: the known ones decoded, the others as stored."""
    known = {g for g in COMMON_GRAMS if len(g) < partial}
    return {g for g in known if has_gram(grams, g, partial)} | {g for g in grams if not g.startswith("!")}
