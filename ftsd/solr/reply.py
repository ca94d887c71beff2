"""The `select` request and the replies Dovecot parses: query-string parameters (q, fq, q.op, rows, start,
sort, fl, wt) -> hits -> an XML (or JSON) Solr response; plus the error and `update` reply bodies.

The only module that formats Solr responses, so the wire format lives in one place.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from ftsd import service
from ftsd.errors import QueryError
from ftsd.query import Node, check_cost, conjoin
from ftsd.runtime import Runtime
from ftsd.settings import Settings
from ftsd.solr.lucene import Scope, parse_lucene

MAX_ROWS = 1_000_000


# == select =====================================================================================================

@dataclass(frozen=True, slots=True)
class Hit:
    box: str
    uid: int
    user: str


def search(settings: Settings, node: Node, runtime: Runtime | None = None) -> list[Hit]:
    """Every document of the query's user (and mailboxes) matching node, unsorted.
    Raises: QueryError, UnknownUserError, StoreError."""
    scope = Scope.of(node)
    found = service.search_index(settings, scope.user, node, scope.mailboxes, scope.uids, runtime=runtime)
    return [Hit(guid, uid, scope.user) for guid, uids in found.items() for uid in uids]


@dataclass(frozen=True, slots=True)
class SolrReply:
    """What a route sends back: status, body, content type."""

    status: int
    body: bytes
    media_type: str = "application/xml; charset=UTF-8"


def _param(params: Sequence[tuple[str, str]], name: str, default: str) -> str:
    values = [v for k, v in params if k == name]
    return values[-1] if values else default


def _sort_key(spec: str) -> list[tuple[str, bool]]:
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, direction = item.partition(" ")
        direction = direction.strip().lower() or "asc"
        if name not in ("uid", "box", "user", "id", "score") or direction not in ("asc", "desc"):
            raise QueryError(f"cannot sort on {item!r} (uid, box, user, id, score; asc or desc)")
        out.append((name, direction == "desc"))
    return out


def _sorted(hits: list[Hit], spec: str) -> list[Hit]:
    keys: dict[str, Callable[[Hit], Any]] = {
        "uid": lambda h: h.uid, "box": lambda h: h.box, "user": lambda h: h.user,
        "id": lambda h: f"{h.uid}/{h.box}/{h.user}", "score": lambda h: 0,
    }
    for name, desc in reversed(_sort_key(spec) or [("box", False), ("uid", False)]):
        hits.sort(key=keys[name], reverse=desc)
    return hits


def _doc_fields(hit: Hit, fl: Sequence[str]) -> list[tuple[str, str, str]]:
    """(xml type, name, text) of the requested stored fields of one hit."""
    out = []
    for name in fl:
        if name == "uid":
            out.append(("long", "uid", str(hit.uid)))
        elif name == "box":
            out.append(("str", "box", hit.box))
        elif name == "user":
            out.append(("str", "user", hit.user))
        elif name == "id":
            out.append(("str", "id", f"{hit.uid}/{hit.box}/{hit.user}"))
        elif name == "score":
            out.append(("float", "score", "1.0"))
    return out


def _fl(spec: str) -> list[str]:
    names = [n for n in re.split(r"[\s,]+", spec) if n]
    return ["id", "uid", "box", "user"] if not names or "*" in names else names


def select(settings: Settings, params: Sequence[tuple[str, str]], runtime: Runtime | None = None) -> SolrReply:
    """Answer one `select` request (decoded query-string or form parameters). Raises: QueryError, StoreError."""
    started = time.monotonic()
    default_op = _param(params, "q.op", "OR").upper()
    q = parse_lucene(_param(params, "q", "*:*"), default_op)
    filters = [parse_lucene(v) for k, v in params if k == "fq" and v.strip()]
    node = check_cost(conjoin([q, *filters]), settings.limits)
    try:
        rows = min(int(_param(params, "rows", "10")), MAX_ROWS)
        start = int(_param(params, "start", "0"))
    except ValueError as exc:
        raise QueryError(f"rows and start must be integers: {exc}") from None
    hits = _sorted(search(settings, node, runtime), _param(params, "sort", "uid asc"))
    page = hits[max(start, 0) : max(start, 0) + max(rows, 0)]
    fl = _fl(_param(params, "fl", "*"))
    qtime = int((time.monotonic() - started) * 1000)
    if _param(params, "wt", "xml") == "json":
        docs = [{name: int(text) if kind == "long" else float(text) if kind == "float" else text
                 for kind, name, text in _doc_fields(h, fl)} for h in page]
        body = {"responseHeader": {"status": 0, "QTime": qtime},
                "response": {"numFound": len(hits), "start": start, "docs": docs}}
        return SolrReply(200, json.dumps(body).encode(), "application/json; charset=UTF-8")
    lines = [f'<result name="response" numFound="{len(hits)}" start="{start}">']
    for hit in page:
        inner = "".join(f'<{t} name="{n}">{escape(v)}</{t}>' for t, n, v in _doc_fields(hit, fl))
        lines.append(f"<doc>{inner}</doc>")
    lines.append("</result>")
    return SolrReply(200, _response_xml(qtime, "\n".join(lines)))


def _response_xml(qtime: int, inner: str = "") -> bytes:
    head = f'<lst name="responseHeader"><int name="status">0</int><int name="QTime">{qtime}</int></lst>'
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<response>\n{head}\n{inner}\n</response>\n'.encode()


def error_reply(status: int, message: str) -> SolrReply:
    """A Solr-style error body (Dovecot only looks at the status; a human reads the message)."""
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<response>\n<lst name="error">'
            f'<str name="msg">{escape(message)}</str><int name="code">{status}</int></lst>\n</response>\n')
    return SolrReply(status, body.encode())


def update_reply(started: float) -> SolrReply:
    return SolrReply(200, _response_xml(int((time.monotonic() - started) * 1000)))

