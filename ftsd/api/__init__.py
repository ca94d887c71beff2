"""Layer 7, front-end: the HTTP service -- app (routes), models, errors (statuses from errors.OUTCOMES),
middleware (token, body limit), metrics, server (`ftsd serve`: TCP + Unix socket), client (`ftsd index -q`),
solr (the fts_solr routes). Jobs and the watcher are in daemon/."""
