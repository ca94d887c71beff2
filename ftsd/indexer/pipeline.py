"""One message -> one serialised Xapian document: read (2) -> parse and decode (2b) -> analyse (3) -> build (4).

Runs inside worker processes; returns an Outcome instead of raising, so one bad message never stops a run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ftsd.analysis import Analyzer, Terms
from ftsd.message import ParsedMessage, parse_message
from ftsd.settings import Settings
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
    """Build the document of one message. Never raises."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Outcome(uid, skipped="file vanished (expunged or moved during the run)")
    except OSError as exc:
        return Outcome(uid, failed=f"cannot read {path}: {exc.strerror}")
    try:
        parsed = parse_message(raw, settings)
        analyzer = Analyzer.of(settings.fts)
        terms = analyse_fields(parsed, analyzer)
        parts = [dataclasses.astuple(p) for p in parsed.parts]
        data = {"uid": uid, "file": path.name, "size": len(raw), "parts": parts}
        return Outcome(uid, build_document(guid, uid, terms, data), size=len(raw))
    except Exception as exc:  # a parser or analyser bug must cost one message, not the run
        log.debug("uid %d: %s", uid, exc, exc_info=True)
        return Outcome(uid, failed=f"{type(exc).__name__}: {exc}")


def text_document(guid: str, uid: int, fields: Mapping[str, str], data: Mapping[str, Any],
                  analyzer: Analyzer) -> Document:
    """The document of a message given as field texts (index field -> text: the Solr bridge's documents)."""
    return build_document(guid, uid, {name: analyzer.terms(text) for name, text in fields.items() if text}, data)
