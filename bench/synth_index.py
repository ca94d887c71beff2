#!/usr/bin/env python3
"""A 39k-document INBOX index in minutes, for route latency on a loaded machine (bench/bench_routes.py): one
document per UID of ftsd's uidlist of the bench/realmail.py Maildir, each with 300 body words drawn with the
document frequencies of the openbmc corpus's own ftsd index, plus that index's lexicon. Paths are the ones of
bench/results/search-routes-40k.md; edit them to reuse. Not a lexicon or index-size measurement."""
import itertools
import json
import random
import sys
import time
from pathlib import Path

import xapian

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ftsd.store import schema  # noqa: E402

src = xapian.Database('/tmp/psearch/src-openbmc.db')
terms, weights = [], []
for t in src.allterms('X'):
    w = t.term.decode('utf-8', 'replace')
    if len(w) >= 4 and w[1:].isalpha():
        terms.append(t.term)
        weights.append(t.termfreq)
cum = list(itertools.accumulate(weights))
lines = open('/tmp/psearch/index/bench/xapian-indexes/ftsd-uidlists/INBOX.uidlist').read().splitlines()
hdr = dict((f[0], f[1:]) for f in lines[0].split()[1:])
guid, uidv = hdr['G'], int(hdr['V'])
out = xapian.WritableDatabase('/tmp/psearch/index/bench/xapian-indexes/ftsd.db', xapian.DB_CREATE)
out.set_metadata(schema.META_SCHEMA, schema.SCHEMA_VERSION)
for key in src.metadata_keys(schema.META_LEXICON):
    out.set_metadata(key, src.get_metadata(key))
rng = random.Random(1)
uids = []
t0 = time.time()
for line in lines[1:]:
    uid = int(line.split()[0])
    doc = xapian.Document()
    for term in set(rng.choices(terms, cum_weights=cum, k=300)):
        doc.add_term(term)
    doc.add_boolean_term(schema.mailbox_term(guid))
    doc.add_boolean_term(schema.id_term(guid, uid))
    doc.add_value(schema.SLOT_UID, str(uid))
    doc.set_data(json.dumps({"uid": uid, "file": line.partition(' :')[2]}))
    out.add_document(doc)
    uids.append(uid)
    if len(uids) % 10000 == 0:
        out.commit()
        print(len(uids), round(time.time() - t0), flush=True)
meta = {"last_uid": max(uids), "messages": len(uids), "name": "INBOX", "uidvalidity": uidv}
out.set_metadata(schema.META_MAILBOX + guid, json.dumps(meta))
out.commit()
out.close()
print('done', len(uids), len(terms), round(time.time() - t0))
