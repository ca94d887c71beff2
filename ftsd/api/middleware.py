"""The ASGI guard in front of every route: bearer token on TCP, request body size limit, request counting.

The token (api/token.py; on by default) is required on TCP connections only: the Unix socket is protected by its
file mode. `/healthz` is open (liveness probes), `/metrics` too when `server.metrics_auth` is false; `/docs` and
`/openapi.json` are behind the token like every route.
It may come as `Authorization: Bearer TOKEN` or as the password of HTTP Basic auth (so a URL such as
`http://ftsd:TOKEN@127.0.0.1:8984/solr/...` works for clients that only speak Basic). Bodies are refused with 413
when Content-Length announces more than `max_body_bytes`, or as soon as the bytes actually streamed exceed it (the
body is streamed through, never buffered here; the route reading it gets an HTTPException(413), answered as JSON).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz"})  # liveness probes need no token


_SOLR_UPDATE = re.compile(r"^/solr/[^/]+/update/?$")


def is_tcp(scope: Scope) -> bool:
    """True unless the connection came in over a Unix socket (uvicorn reports its server as (path, None))."""
    server = scope.get("server")
    return not (isinstance(server, tuple | list) and len(server) == 2 and server[1] is None)


def _token_of(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() != b"authorization":
            continue
        scheme, _, credentials = value.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer":
            return credentials.strip()
        if scheme.lower() == "basic":
            try:
                return base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None


async def _send_error(send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Pure ASGI middleware; `on_response(method, status)` is called once per answered request."""

    def __init__(self, app: ASGIApp, *, token: str, max_body_bytes: int, max_update_bytes: int | None = None,
                 open_paths: frozenset[str] = OPEN_PATHS,
                 on_response: Callable[[str, int], None] | None = None) -> None:
        self.app = app
        self.token = token
        self.open_paths = open_paths
        self.max_body_bytes = max_body_bytes
        self.max_update_bytes = max_body_bytes if max_update_bytes is None else max_update_bytes
        self.on_response = on_response

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        status = 500

        async def counted_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, counted_send)
        finally:
            if self.on_response:
                self.on_response(method, status)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if self.token and is_tcp(scope) and scope["path"] not in self.open_paths:
            given = _token_of(headers)
            if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                await _send_error(send, 401, "unauthorized", "a valid bearer token is required",
                                  {"WWW-Authenticate": 'Bearer realm="ftsd"'})
                return
        length = next((v for k, v in headers if k.lower() == b"content-length"), None)
        if _SOLR_UPDATE.match(scope["path"]):
            # Dovecot's update batches are streamed into the index, bounded there per document and per request
            # (limits.update_*: what came before the limit is committed); only an announced excess is refused here.
            if length is not None and length.isdigit() and int(length) > self.max_update_bytes:
                await _send_error(send, 413, "body_too_large", "Solr update body larger than limits.update_bytes "
                                  f"= {self.max_update_bytes} bytes", {"Connection": "close"})
                return
            await self.app(scope, receive, send)
            return
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await _send_error(send, 413, "body_too_large", self._too_large, {"Connection": "close"})
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:  # streamed past the limit (no or a false Content-Length)
                    raise HTTPException(413, self._too_large, {"Connection": "close"})
            return message

        await self.app(scope, counted_receive, send)

    @property
    def _too_large(self) -> str:
        return f"request body larger than server.max_body_bytes = {self.max_body_bytes} bytes"
