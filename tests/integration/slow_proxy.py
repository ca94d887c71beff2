"""A loopback TCP proxy in front of ftsd that holds back the answers to Solr `update` requests, as a slow ftsd
would, and can send interim `HTTP/1.1 102 Processing` responses while it holds one.

It shows what Dovecot's HTTP client does when an update takes longer than its request timeout: it gives up,
unless the server shows activity (Dovecot resets the timeout on any input and ignores 1xx responses it did not
ask for). One thread per direction per connection; Dovecot sends one request at a time on a connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

INTERIM = b"HTTP/1.1 102 Processing\r\n\r\n"


class _Connection:
    """One client connection: its upstream, and the update request in flight (when it started, or None)."""

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self.lock = threading.Lock()  # one writer to the client at a time
        self.update_started: float | None = None
        self.closed = threading.Event()


class SlowProxy:
    """Answers to updates reach the client `delay_s` after the request at the earliest; with `interim_every_s`,
    a `102 Processing` goes to the client at that interval from the request until the answer."""

    def __init__(self, upstream_port: int, delay_s: float, interim_every_s: float = 0.0) -> None:
        self.upstream_port, self.delay_s, self.interim_every_s = upstream_port, delay_s, interim_every_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.interims_sent = 0
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            conn = _Connection(client, socket.create_connection(("127.0.0.1", self.upstream_port)))
            for work in (self._requests, self._responses, self._interims):
                threading.Thread(target=work, args=(conn,), daemon=True).start()

    @staticmethod
    def _requests(conn: _Connection) -> None:
        with contextlib.suppress(OSError):
            while data := conn.client.recv(65536):
                if data.startswith(b"POST ") and b"/update" in data.split(b"\r\n", 1)[0]:
                    conn.update_started = time.monotonic()
                conn.upstream.sendall(data)
        with contextlib.suppress(OSError):
            conn.upstream.shutdown(socket.SHUT_WR)

    def _responses(self, conn: _Connection) -> None:
        with contextlib.suppress(OSError):
            while data := conn.upstream.recv(65536):
                started = conn.update_started
                if started is not None and data.startswith(b"HTTP/1.1 "):
                    time.sleep(max(0.0, started + self.delay_s - time.monotonic()))
                with conn.lock:
                    conn.update_started = None
                    conn.client.sendall(data)
        conn.closed.set()
        with contextlib.suppress(OSError):
            conn.client.close()
            conn.upstream.close()

    def _interims(self, conn: _Connection) -> None:
        while self.interim_every_s and not conn.closed.wait(self.interim_every_s):
            with conn.lock, contextlib.suppress(OSError):
                if conn.update_started is not None:
                    conn.client.sendall(INTERIM)
                    self.interims_sent += 1
