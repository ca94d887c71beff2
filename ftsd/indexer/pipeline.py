"""One message -> one serialised Xapian document: read (2) -> parse and decode (2b) -> analyse (3) -> build (4).

Runs inside worker processes; returns an Outcome instead of raising, so one bad message never stops a run, and a
message that cannot be indexed whole is indexed from what could be read (see degraded()).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftsd.analysis import Analyzer, Terms
from ftsd.maildir import HEAD_BYTES, read_message
from ftsd.message import ParsedMessage, parse_message, raw_message
from ftsd.settings import Settings
from ftsd.store import texts
from ftsd.store.schema import Document, build_document

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result for one UID: a document, or `skipped` (file gone: not an error) or `failed` with the reason."""

    uid: int
    document: Document | None = None
    size: int = 0
    skipped: str | None = None
    failed: str | None = None
    note: str | None = None  # indexed, but only partly (the reason)


def analyse_fields(parsed: ParsedMessage, analyzer: Analyzer) -> dict[str, Terms]:
    headers, body = analyzer.header_and_body(parsed.headers, parsed.other_headers, parsed.body)
    return {
        "subject": analyzer.terms(parsed.subject),
        "from": analyzer.terms(parsed.from_),
        "to": analyzer.terms(parsed.to),
        "cc": analyzer.terms(parsed.cc),
        "bcc": analyzer.terms(parsed.bcc),
        "headers": headers,
        "body": body,
    }


def index_message(guid: str, uid: int, path: Path, settings: Settings) -> Outcome:
    """Build the document of one message. Never raises. A file that is not a regular file (a symlink, a FIFO)
    fails; a message that breaks the parser or the analyser is indexed from what could be read (its head as
    text), so that it is not read again from the Maildir by every search."""
    try:
        message = read_message(path, settings.fts.max_message_bytes)
    except FileNotFoundError:
        return Outcome(uid, skipped="file vanished (expunged or moved during the run)")
    except OSError as exc:
        return Outcome(uid, failed=f"cannot read {path.name}: {exc.strerror}")
    except MemoryError:  # over the worker's limit (fts.worker_memory_mb) already while reading
        return degraded(guid, uid, path, settings, "MemoryError: the message needs more than fts.worker_memory_mb")
    try:
        parsed = parse_message(message.data, settings, size=message.size)
        outcome = _outcome(guid, uid, message.size, parsed, settings, keep=True)
        raw = next((p.skipped for p in parsed.parts if p.decoder == "raw"), None)
        return dataclasses.replace(outcome, note=f"indexed as raw text: {raw}") if raw else outcome
    except Exception as exc:  # a parser or analyser bug (or MemoryError under the worker's limit)
        reason = f"{type(exc).__name__}: {exc}"[:200]
        log.debug("uid %d: %s", uid, exc, exc_info=True)
    del message
    return degraded(guid, uid, path, settings, reason)


def degraded(guid: str, uid: int, path: Path, settings: Settings, reason: str) -> Outcome:
    """The document of a message that could not be indexed whole: the headers and the rest of its first
    HEAD_BYTES as raw text. Never raises; `failed` only when not even that could be built."""
    try:
        head = read_message(path, min(HEAD_BYTES, settings.fts.max_message_bytes))
        parsed = raw_message(head.data, settings, reason)
        outcome = _outcome(guid, uid, head.size, parsed, settings)
        return dataclasses.replace(outcome, note=f"indexed as raw text only: {reason}")
    except FileNotFoundError:
        return Outcome(uid, skipped="file vanished (expunged or moved during the run)")
    except Exception as exc:
        return Outcome(uid, failed=f"{reason}; then {type(exc).__name__}: {exc}"[:300])


def _outcome(guid: str, uid: int, size: int, parsed: ParsedMessage, settings: Settings,
             keep: bool = False) -> Outcome:
    """`keep`: keep its texts (fts.store_texts) -- only for the parse a search of the message file would make too
    (not a degraded document, nor one indexed as raw text, whose head a search reads differently)."""
    analyzer = Analyzer.of(settings.fts)
    terms = analyse_fields(parsed, analyzer)
    # The UID is in its value slot, the file and its size are the Maildir's to tell (message_status), and so are
    # the parts of a message that is plain text only (no other decoder, nothing skipped: ~75 % of mail, which then
    # keeps no data at all): not repeated in the index.
    plain = all(p.decoder == "text" and p.skipped is None for p in parsed.parts)
    data = {} if plain else {"parts": [dataclasses.astuple(p) for p in parsed.parts]}
    kept = None
    if keep and settings.fts.store_texts and not any(p.decoder == "raw" for p in parsed.parts):
        kept = texts.encode(parsed.header_items, parsed.body, settings)
    return Outcome(uid, build_document(guid, uid, terms, data, texts=kept), size=size)


def text_document(guid: str, uid: int, fields: Mapping[str, str], data: Mapping[str, Any],
                  analyzer: Analyzer) -> Document:
    """The document of a message given as field texts (index field -> text: the Solr bridge's documents)."""
    return build_document(guid, uid, {name: analyzer.terms(text) for name, text in fields.items() if text}, data)
