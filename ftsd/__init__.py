"""ftsd: full-text search for Dovecot Maildirs.

Layers, bottom to top: a module imports only from its own layer or the ones below it (tests/test_layers.py).

    7 front-ends  api/ (FastAPI: routes, models, errors, middleware, metrics, server, solr routes),
                  cli.py (the `ftsd` command): thin, parse -> call -> print / answer, cli_client.py (the CLI's
                  client of the running service: `-q` jobs, /healthz), monitor.py (`ftsd check`, the Nagios/Icinga
                  plugin), logs.py (plain or JSON log lines)
    6 daemon      daemon/ (job queue and runner, Maildir watcher)   solr/ (Dovecot's fts_solr: Lucene parser,
                  replies, updates)   cluster/ (several nodes: PostgreSQL queue, writer leases)
                  runner.py (bulk CLI runs: users grouped by mail uid/gid, each group as its mail user)
    5 facade      service.py: index, search, optimize, rescan, status, check -- what both front-ends call;
                  lifecycle.py (indexes of users gone from the userdb)
    4 runtime     runtime.py: the caches, reader pool and locks one process shares, passed down like Settings;
                  privileges.py (mail uid/gid, dropping root, index modes, EACCES explained)
    3 work        search.py (the one evaluator: query AST -> exact UIDs), indexer/ (pipeline of one message,
                  worker pool, sync of one mailbox)
    2 store       store/: the only package importing xapian -- UserIndex (index_path, readers, writer, repair),
                  schema, lexicon (+ lexgrams: its gram pages, _lexgrams.c their pairs; lexblock: its blocks), writer,
                  searcher, texts (kept normalised texts, fts.store_texts), reader pool, maintenance, the Xapian
                  error table
    1 mail        userdb/ (users from static, passwd-file, dovecot, ldap), maildir.py (folders, uidlists and
                  ftsd's own, UIDs), message.py (bytes -> fields), mimeparse.py (the MIME tree from slices of
                  the text), decoders/ (charset, HTML, attachments, sandbox), doveconf.py (Dovecot's special-use
                  folders)
    0 base        errors.py (the error tree and its exit/status table), settings.py, query.py (IMAP SEARCH ->
                  the query AST), analysis.py (text -> normalised words and chunks; common_grams.py its data),
                  _native.c (optional compiled twins of analysis's and store/schema's per-token loops)

Data flow: maildir -> message/decoders -> analysis -> store (indexer) ; query -> search -> store -> service ->
api/cli.
"""

__version__ = "0.1.0"
