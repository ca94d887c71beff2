"""The Xapian layer: the only package that imports xapian. schema (prefixes, slots, version), writer (one per
user index), searcher (read-only, reopened per search), maintenance (compact, check)."""
