"""ftsd: full-text search for Dovecot Maildirs.

Data flow, one module per stage:

    userdb.py      users and their Maildir / index locations (static template scan, passwd-file)
    maildir.py     Maildir++ folders, dovecot-uidlist (UIDVALIDITY, UIDs, GUID) -> MessageRef
    message.py     bytes -> fields {subject, from, to, cc, bcc, headers, body}; calls decoders/
    decoders/      charset, HTML, attachments (PDF, office, external command), a registry by MIME type
    analysis.py    text -> normalised runs -> words and grams (index mode) or query pieces (query mode)
    store/         the only package importing xapian: schema, lexicon, writer, searcher, maintenance
    query.py       IMAP SEARCH keys -> a small AST
    search.py      AST -> Xapian (store/searcher) -> UIDs, verified from the Maildir where needed
    indexer/       sync of one mailbox, the worker pool, the job queue
    service.py     the facade both front-ends call
    api/, cli.py   FastAPI (+ Solr-compatible routes) and the `ftsd` command: thin
"""

__version__ = "0.1.0"
