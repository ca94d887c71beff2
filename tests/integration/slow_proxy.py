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


class SlowProxy:
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
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            update = threading.Event()  # set while the client's current request is an update
            threading.Thread(target=self._requests, args=(client, upstream, update), daemon=True).start()
            threading.Thread(target=self._responses, args=(upstream, client, update), daemon=True).start()

    @staticmethod
    def _requests(client: socket.socket, upstream: socket.socket, update: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if data.startswith(b"POST ") and b"/update" in data.split(b"\r\n", 1)[0]:
                    update.set()
                upstream.sendall(data)
        with contextlib.suppress(OSError):
            upstream.shutdown(socket.SHUT_WR)

    def _responses(self, upstream: socket.socket, client: socket.socket, update: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := upstream.recv(65536):
                if update.is_set() and data.startswith(b"HTTP/1.1 "):
                    update.clear()
                    deadline = time.monotonic() + self.delay_s
                    while (left := deadline - time.monotonic()) > 0:
                        step = min(left, self.interim_every_s or left)
                        time.sleep(step)
                        if self.interim_every_s and time.monotonic() < deadline:
                            client.sendall(INTERIM)
                            self.interims_sent += 1
                client.sendall(data)
        with contextlib.suppress(OSError):
            client.close()
            upstream.close()
