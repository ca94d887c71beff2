#!/usr/bin/env python3
"""A large index without indexing: the documents of a source corpus's index copied once per replicated message
of a mailbox (bench/realmail.py's output), with the replica's UIDs, so that search latency can be measured at
40k messages on a loaded machine in a minute instead of an hour. Each copy gets the terms of its source message
(as `make-maildir.py replicate` would: the lexicon does not grow); the Maildir and its uidlist are the real ones,
so the JSON API's autoindex finds the mailbox up to date. For latency, not for lexicon sizes. A document is
copied whole: its values too, so the texts a source indexed with fts.store_texts keeps (slot 1) come along.

    .venv/bin/python bench/replica_index.py SRC_INDEX SRC_MAILDIR UIDLIST OUT_INDEX --src-uidlist SRC_UIDLIST \\
        [--first-serial 1]

SRC_INDEX: ftsd's index of SRC_MAILDIR (one mailbox); UIDLIST: ftsd's uidlist of the replicated mailbox
(`<index dir>/ftsd-uidlists/INBOX.uidlist`); OUT_INDEX is replaced. realmail.py names copy c of the i-th source
message (sorted) `<mtime>.M<serial>P<c>.realmail...` with serial = first + c * n + i.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

import xapian

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ftsd.maildir import read_uidlist  # noqa: E402
from ftsd.store import schema  # noqa: E402

_NAME = re.compile(r"^\d+\.M(\d+)P(\d+)\.realmail")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src_index", type=Path)
    ap.add_argument("src_maildir", type=Path)
    ap.add_argument("uidlist", type=Path)
    ap.add_argument("out_index", type=Path)
    ap.add_argument("--src-uidlist", type=Path, required=True,
                    help="ftsd's uidlist of SRC_MAILDIR (<its index dir>/ftsd-uidlists/INBOX.uidlist)")
    ap.add_argument("--first-serial", type=int, default=1)
    ap.add_argument("--commit-every", type=int, default=200,
                    help="documents per commit (Xapian's add cost grows with the terms buffered since the last)")
    args = ap.parse_args()
    src = xapian.Database(str(args.src_index))
    names = sorted(p.name for sub in ("cur", "new") for p in (args.src_maildir / sub).iterdir())
    # a source document's file, through its UID: ftsd's uidlist of the source mailbox (documents keep no file name)
    src_uids = read_uidlist(args.src_uidlist)
    if src_uids is None:
        raise SystemExit(f"{args.src_uidlist}: not a uidlist")
    docid_by_uid = {int(src.get_document(item.docid).get_value(schema.SLOT_UID)): item.docid
                    for item in src.postlist("")}
    docid_of = {name: docid_by_uid[uid] for name in names
                if (uid := src_uids.uids.get(name.split(":2,", 1)[0])) in docid_by_uid}
    lines = args.uidlist.read_text().splitlines()
    header = dict((f[0], f[1:]) for f in lines[0].split()[1:])
    guid, uidvalidity = header["G"], int(header["V"])
    if args.out_index.exists():
        shutil.rmtree(args.out_index)
    out = xapian.WritableDatabase(str(args.out_index), xapian.DB_CREATE)
    out.set_metadata(schema.META_SCHEMA, schema.SCHEMA_VERSION)
    for key in src.metadata_keys("ftsd.lex"):  # the lexicon, whatever its layout (blocks, segments, pages)
        out.set_metadata(key, src.get_metadata(key))
    uids = []
    guid_of: dict[int, str] = {}  # source docid -> its mailbox GUID (one mailbox: read once)
    for line in lines[1:]:
        uid_text, _, name = line.partition(" :")
        m = _NAME.match(name)
        if not m:
            continue
        serial = int(m.group(1))
        source = names[(serial - args.first_serial) % len(names)]
        doc = src.get_document(docid_of[source])
        if docid_of[source] not in guid_of:
            guid_of[docid_of[source]] = next(t.term.decode()[1:] for t in doc.termlist() if t.term.startswith(b"G"))
        old_guid = guid_of[docid_of[source]]
        old_uid = int(doc.get_value(schema.SLOT_UID))
        doc.remove_term(schema.mailbox_term(old_guid))
        doc.remove_term(schema.id_term(old_guid, old_uid))
        uid = int(uid_text)
        doc.add_boolean_term(schema.mailbox_term(guid))
        doc.add_boolean_term(schema.id_term(guid, uid))
        doc.add_value(schema.SLOT_UID, str(uid))
        out.add_document(doc)
        uids.append(uid)
        if len(uids) % args.commit_every == 0:
            out.commit()
        if len(uids) % 5000 == 0:
            print(f"{len(uids)} documents", file=sys.stderr)
    out.set_metadata(f"{schema.META_MAILBOX}{guid}", json.dumps(
        {"last_uid": max(uids), "messages": len(uids), "name": "INBOX", "uidvalidity": uidvalidity}))
    out.commit()
    out.close()
    print(f"{len(uids)} documents in {args.out_index}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
