"""uvicorn's h11 protocol with the two bounds it lacks: a request-head timeout and a connection cap.

uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but a connection that never sends a
complete request head (opened and left idle, half-open, or one byte at a time) is kept for ever, and every
connection holds an open file until the process runs out of them (then the accept loop fails and logs in a loop).
Here a connection must bring a complete request head within `server.timeout_header_s` of being opened or of its
previous response; and at most `server.max_connections` connections are kept: one more evicts the longest idle
connection (no request in flight), or, when all are busy, is answered 503 and closed at once. Warnings about the
cap are logged at most once a minute.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

WARN_EVERY_S = 60.0


@dataclass(slots=True)
class ConnectionLimits:
    """The bounds and the counters of one server (shared by its connections)."""

    max_connections: int
    header_timeout_s: float
    evicted: int = 0
    refused: int = 0
    timed_out: int = 0
    _warned: float = -WARN_EVERY_S

    def warn(self, what: str) -> None:
        now = time.monotonic()
        if now - self._warned >= WARN_EVERY_S:
            self._warned = now
            log.warning("%s (server.max_connections = %d; so far %d idle connections closed, %d refused, %d "
                        "without a request head in %g s)", what, self.max_connections, self.evicted, self.refused,
                        self.timed_out, self.header_timeout_s)


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
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request head must come in time too

        def handle_events(self) -> None:
            cycle = self.cycle
            super().handle_events()
            if self.cycle is not cycle:  # a request head was read: it is being answered
                self._disarm()

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
