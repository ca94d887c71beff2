"""Layer 2, store: the only package that imports xapian. index (UserIndex: one user's index, its readers,
writer and repair policy), xerrors (the one Xapian -> ftsd error table), schema (prefixes, slots, version),
lexicon (the words each index holds), writer (one per user index), searcher (read-only), readers (the pool),
locks (in-process write locks), maintenance (compact, check)."""
