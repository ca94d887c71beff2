"""uvicorn's h11 protocol with the two bounds it lacks: a request-head timeout and a connection cap.

uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but a connection that never sends a
complete request head (opened and left idle, half-open, or one byte at a time) is kept for ever, and every
connection holds an open file until the process runs out of them (then the accept loop fails and logs in a loop).
Here a connection must bring a complete request head within `server.timeout_header_s` of being opened or of its
previous response; and at most `server.max_connections` connections are kept: one more evicts the longest idle
connection (no request in flight), or, when all are busy, is answered 503 and closed at once. Warnings about the
cap are logged at most once a minute.

A request on the Solr routes that runs long (a Dovecot batch of 1,000 documents takes 30-40 s on a loaded machine)
gets an interim `102 Processing` every `limits.solr_interim_s` until its final response starts: Dovecot's HTTP client
gives up after 60 s without input, resets that timer on any input and ignores 1xx responses it did not ask for.
Only HTTP/1.1 clients get it (RFC 9110 15.2: no 1xx to an HTTP/1.0 client), never while the client waits for
`100 Continue` (the body is not read yet, so no work runs), never once the final response has started.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

log = logging.getLogger(__name__)

WARN_EVERY_S = 60.0


@dataclass(slots=True)
class ConnectionLimits:
    """The bounds and the counters of one server (shared by its connections)."""

    max_connections: int
    header_timeout_s: float
    interim_every_s: float = 0.0  # 102 Processing on the Solr routes every this long; 0 = never
    evicted: int = 0
    refused: int = 0
    timed_out: int = 0
    interims: int = 0
    _warned: float = -WARN_EVERY_S

    def warn(self, what: str) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY_S:
            self._warned = now
            log.warning("%s (server.max_connections = %d; so far %d idle connections closed, %d refused, %d "
                        "without a request head in %g s)", what, self.max_connections, self.evicted, self.refused,
                        self.timed_out, self.header_timeout_s)


INTERIM_PREFIX = "/solr/"

_BUSY = json.dumps({"error": {"code": "unavailable", "message": "too many connections; retry"}}).encode()
_BUSY_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
                  b"retry-after: 1\r\ncontent-length: " + str(len(_BUSY)).encode() + b"\r\n\r\n" + _BUSY)


def bounded_protocol(limits: ConnectionLimits) -> type[H11Protocol]:
    """An H11Protocol class bound to these limits (uvicorn's `http=` takes a protocol class)."""

    class BoundedH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_timer: asyncio.TimerHandle | None = None
            self._waiting_since = 0.0  # when the connection started waiting for a request head
            self._interim_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections and not self._make_room():
                limits.refused += 1
                limits.warn("connection limit reached, every connection busy: new connections get 503")
                transport.write(_BUSY_RESPONSE)
                transport.close()
                self.connections.discard(self)
                return
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            self._stop_interims()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            self._stop_interims()
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request head must come in time too

        def handle_events(self) -> None:
            cycle = self.cycle
            super().handle_events()
            if self.cycle is not cycle:  # a request head was read: it is being answered
                self._disarm()
                self._start_interims()

        def _idle(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            self._disarm()
            self._waiting_since = time.monotonic()
            self._head_timer = self.loop.call_later(limits.header_timeout_s, self._head_timeout)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if self._idle() and not self.transport.is_closing():
                limits.timed_out += 1
                self.transport.close()

        def _start_interims(self) -> None:
            self._stop_interims()
            cycle = self.cycle
            if (cycle is not None and limits.interim_every_s > 0 and cycle.scope["http_version"] == "1.1"
                    and cycle.scope["path"].startswith(INTERIM_PREFIX)):
                self._interim_timer = self.loop.call_later(limits.interim_every_s, self._interim, cycle)

        def _stop_interims(self) -> None:
            if self._interim_timer is not None:
                self._interim_timer.cancel()
                self._interim_timer = None

        def _interim(self, cycle: RequestResponseCycle) -> None:
            """Send `102 Processing` if this request still has no final response; then again later."""
            self._interim_timer = None
            if (self.cycle is not cycle or cycle.response_started or cycle.disconnected
                    or self.transport.is_closing() or self.conn.our_state is not h11.SEND_RESPONSE):
                return
            if not cycle.waiting_for_100_continue:  # the client has not been asked for the body: no work runs yet
                processing = h11.InformationalResponse(status_code=102, reason=b"Processing", headers=[])
                self.transport.write(self.conn.send(processing) or b"")
                limits.interims += 1
            self._interim_timer = self.loop.call_later(limits.interim_every_s, self._interim, cycle)

        def _make_room(self) -> bool:
            """Close the connection that has waited longest for a request head; False if none is idle."""
            idle = [c for c in self.connections
                    if isinstance(c, BoundedH11Protocol) and c is not self and c._idle()
                    and not c.transport.is_closing()]
            if not idle:
                return False
            oldest = min(idle, key=lambda c: c._waiting_since)
            oldest._disarm()
            oldest.transport.close()
            self.connections.discard(oldest)
            limits.evicted += 1
            limits.warn("connection limit reached: closing the longest idle connections")
            return True

    return BoundedH11Protocol
