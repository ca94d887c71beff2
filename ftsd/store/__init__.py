"""The Xapian layer: the only package that imports xapian. schema (prefixes, slots, version), lexicon (the
words each index holds), writer (one per user index), searcher (read-only, reopened per search), maintenance
(compact, check)."""
