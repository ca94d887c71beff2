"""Indexing: pipeline (one message -> one document), pool (worker processes), sync (one mailbox up to date)."""
