"""The HTTP front-end: app (routes), models, errors (status table), middleware (token, body limit), metrics,
watcher (Maildir -> index jobs), server (`ftsd serve`: TCP + Unix socket), client (`ftsd index -q`), solr (fts_solr)."""
