"""Layer 6 (above the facade), Solr bridge: Dovecot's stock `fts_solr` plugin -> ftsd's per-user index, and
its searches -> exact UIDs.

In: the requests Dovecot 2.3 sends to `<url>select` (query-string parameters) and `<url>update` (a streamed XML
body); out: the XML (or JSON) replies it parses (docs/dovecot-solr-protocol.md). No web framework here: the
routes in api/solr.py hand over parameters and body chunks and send back a SolrReply.

Indexing: each `<doc>` (uid, box = mailbox GUID, user, and the field texts body/hdr/subject/from/to/cc/bcc)
becomes one document of that user's index, analysed exactly as the Maildir indexer does (hdr goes to the
`headers` field), with the raw field texts kept in the document data. Re-adding an id replaces the document, as
Solr does; Solr atomic updates (`<field update="set|add">`) merge into the stored texts instead.

Searching: Lucene-classic queries (`field:value`, `\\`-escapes, `""`, `~`, `( )`, `+ - NOT AND OR`) are taken
as logic, IMAP-style: `-a OR -b` is (not a) or (not b), and parsed into ftsd's one query AST (ftsd/query.py)
plus a Scope (user, mailbox GUIDs, UIDs). Values match as case-insensitive substrings of the normalised field
text (design §4), never by word or stem. The evaluation is search.py's, as for IMAP SEARCH (through
service.search_index): Dovecot trusts the answer as definite, so whatever the index alone cannot settle is checked
against the stored field texts before a UID is returned (documents written by ftsd's own Maildir indexer keep no
text: for them the message is read from the Maildir when this host has it).

The package, in import order (each module imports only those above it); it keeps only what is Solr's:

    lucene.py    the Lucene-classic parser -> ftsd's query AST, and which user and mailboxes a query names
    reply.py     the `select` request (rows, start, sort, fl) and the XML/JSON replies
    attachments.py  `[solr] attachments`: the attachment text of a message Dovecot sends, from the Maildir
    update.py    the streamed `update` request: documents, deletes, atomic updates, per-user write locks

Callers use the names re-exported here (`from ftsd import solr`; `solr.select`, `solr.UpdateSession`, ...).
"""

from ftsd.solr.lucene import KEY_FIELDS, TEXT_FIELDS, Scope, parse_lucene
from ftsd.solr.reply import MAX_ROWS, Hit, SolrReply, error_reply, select, update_reply
from ftsd.solr.update import UpdateSession

__all__ = [
    "KEY_FIELDS",
    "MAX_ROWS",
    "TEXT_FIELDS",
    "Hit",
    "Scope",
    "SolrReply",
    "UpdateSession",
    "error_reply",
    "parse_lucene",
    "select",
    "update_reply",
]
