"""`102 Processing` while a Solr update runs (api/protocol.py), seen by a raw socket client on a real uvicorn.

The update is slow by its real work: a batch of documents with a lot of text each, against an interim interval of
tens of milliseconds (limits.solr_interim_s), so the server has several intervals to fill before it answers.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from pathlib import Path

from ftsd.maildir import read_uidlist
from tests.api.conftest import ALICE, Server, start_server
from tests.maildirs import MailDir

INTERVAL = 0.02
PROCESSING = b"HTTP/1.1 102 Processing\r\n\r\n"


def _body(guid: str, docs: int = 60) -> bytes:
    rng = random.Random(16)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 11))) for _ in range(4000)]
    parts = []
    for uid in range(1, docs + 1):
        text = " ".join(rng.choice(words) for _ in range(150))
        parts.append(f'<doc><field name="uid">{uid}</field><field name="box">{guid}</field>'
                     f'<field name="user">{ALICE}</field><field name="id">{uid}/{guid}/{ALICE}</field>'
                     f'<field name="subject">batch {uid}</field><field name="body">{text}</field></doc>')
    return ("<add>" + "".join(parts) + "</add>").encode()


def _update(server: Server, body: bytes, version: str = "1.1", expect: bool = False) -> tuple[bytes, bytes, float]:
    """POST the update over a raw TCP socket; returns (what came before the body was sent, everything after it
    up to the end of the final response, seconds). With `expect`, the body waits for `100 Continue`."""
    head = (f"POST /solr/dovecot/update HTTP/{version}\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
            f"Authorization: Bearer {server.token}\r\nContent-Length: {len(body)}\r\n"
            + ("Expect: 100-continue\r\n" if expect else "") + "\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        started = time.monotonic()
        sock.sendall(head)
        before = b""
        if expect:
            while b"\r\n\r\n" not in before:
                before += sock.recv(4096)
            time.sleep(5 * INTERVAL)  # whatever comes while the body is held back: only 102s after the 100
            sock.setblocking(False)
            try:
                before += sock.recv(4096)
            except BlockingIOError:
                pass
            sock.settimeout(60)
        sock.sendall(body)
        after = b""
        while not _complete(after):
            chunk = sock.recv(65536)
            if not chunk:
                break
            after += chunk
        took = time.monotonic() - started
        sock.settimeout(10 * INTERVAL)  # the final response is complete: nothing more may come on this connection
        try:
            late = sock.recv(4096)
        except TimeoutError:
            late = b""
        assert late == b"", late
    return before, after, took


def _complete(data: bytes) -> bool:
    """True once `data` holds the whole final response (after any 102s): its head and Content-Length bytes."""
    _, final = _final(data)
    head, sep, body = final.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return len(body) >= length


def _final(after: bytes) -> tuple[int, bytes]:
    """(number of 102 responses before the final response, the final response)."""
    count = 0
    while after.startswith(PROCESSING):
        count, after = count + 1, after[len(PROCESSING):]
    return count, after


def test_interim_102_while_an_update_runs(config: Callable[..., Path], maildir: MailDir,
                                          mail: dict[str, int]) -> None:
    running = start_server(config(fts={"writer": "dovecot"}, limits={"solr_interim_s": INTERVAL}))
    try:
        guid = read_uidlist(maildir.root / "dovecot-uidlist").guid  # type: ignore[union-attr]
        before, after, took = _update(running, _body(guid), expect=True)
        assert before.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")  # nothing before the body was asked for
        assert _final(before[25:]) == (len(before[25:]) // len(PROCESSING), b"")  # then only 102s
        count, final = _final(after)
        assert final.startswith(b"HTTP/1.1 200 "), after[:300]
        assert PROCESSING not in final  # none once the final response has started
        assert took > 4 * INTERVAL and count >= 2, (took, count)  # the batch spans several intervals
        assert count <= took / INTERVAL + 1

        _, after10, _ = _update(running, _body(guid), version="1.0")  # no 1xx to an HTTP/1.0 client
        assert after10.startswith(b"HTTP/1.1 200 ") and PROCESSING not in after10, after10[:300]
    finally:
        running.stop()


def test_interim_off(config: Callable[..., Path], maildir: MailDir, mail: dict[str, int]) -> None:
    running = start_server(config(fts={"writer": "dovecot"}, limits={"solr_interim_s": 0}))
    try:
        guid = read_uidlist(maildir.root / "dovecot-uidlist").guid  # type: ignore[union-attr]
        _, after, took = _update(running, _body(guid))
        assert took > 4 * INTERVAL and after.startswith(b"HTTP/1.1 200 ") and PROCESSING not in after
    finally:
        running.stop()
