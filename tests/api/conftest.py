"""API fixtures: the real app under uvicorn, in a thread, on 127.0.0.1 (a free port) and on a Unix socket in a
short /tmp directory (AF_UNIX paths are limited to ~107 bytes), over real Maildirs and real Xapian indexes."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from ftsd.api.server import make_server
from ftsd.api.token import client_token
from ftsd.settings import Settings, load_settings
from tests.maildirs import MailDir

ALICE = "alice@example.org"
BOB = "bob@example.org"


@dataclass
class Server:
    settings: Settings
    config: Path
    port: int
    socket: Path
    uvicorn: uvicorn.Server
    thread: threading.Thread

    @property
    def token(self) -> str:
        """The service's token (made by the server at its start)."""
        return client_token(self.settings)

    def tcp(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        """A TCP client sending `token` (default: the service's; "" sends none)."""
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=f"http://127.0.0.1:{self.port}", headers=headers, timeout=30, **kwargs)

    def uds(self, **kwargs: Any) -> httpx.Client:
        transport = httpx.HTTPTransport(uds=str(self.socket))
        return httpx.Client(transport=transport, base_url="http://ftsd", timeout=30, **kwargs)

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "server did not stop"


def start_server(config: Path) -> Server:
    """Start `ftsd serve`'s server (same sockets, same app) in a thread; returns once it accepts requests."""
    settings = load_settings(config)
    server, sockets = make_server(settings)
    port = next(s.getsockname()[1] for s in sockets if s.family != socket.AF_UNIX)
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.02)
    state = getattr(server.config.app, "state", None)  # the watcher starts in the background: wait for it
    watcher = getattr(getattr(state, "ftsd", None), "watcher", None)
    if watcher is not None and not watcher.ready.wait(15):
        raise RuntimeError("the watcher did not get ready")
    return Server(settings, config, port, settings.resolve(settings.server.socket), server, thread)


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, step: float = 0.05) -> Any:
    """Poll until predicate() is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(step)


def unix_accepts(path: Path) -> bool:
    """A server listens on the Unix socket `path` (a probe that closes its socket: httpx's transport leaves the
    socket of a refused connection to the garbage collector, a ResourceWarning)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def wait_job(client: httpx.Client, job: int, timeout: float = 20.0) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        info: dict[str, Any] = client.get(f"/v1/jobs/{job}").json()
        return info if info["state"] in ("done", "failed") else None

    result: dict[str, Any] = wait_for(finished, timeout)
    return result


@pytest.fixture
def sockdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(dir="/tmp", prefix="ftsd"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def bob(tmp_path: Path) -> MailDir:
    """bob@example.org's Maildir, next to alice's."""
    return MailDir(tmp_path / "vmail" / "example.org" / "bob")


@pytest.fixture
def mail(maildir: MailDir, bob: MailDir) -> dict[str, int]:
    """A few messages for alice (INBOX, Archive, Trash) and one for bob; returns name -> UID."""
    return {
        "invoice": maildir.deliver(subject="Invoice 17", body="hello world, please pay", sender="carol@example.net"),
        "lunch": maildir.deliver(subject="Lunch", body="hello there, lunch at noon?", sender=BOB),
        "report": maildir.deliver("Archive", subject="Quarterly report", body="the numbers of the quarter"),
        "trash": maildir.deliver("Trash", subject="Old news", body="a discarded hello from the past"),
        "bob": bob.deliver(subject="Bob only", body="secretword for bob"),
    }


@pytest.fixture
def config(make_config: Callable[..., Path], sockdir: Path) -> Callable[..., Path]:
    """make_config with the server on 127.0.0.1 (free port) and the socket in a short dir; fts.workers=1."""

    def make(**overrides: Any) -> Path:
        server = {"listen": "127.0.0.1:0", "socket": str(sockdir / "s.sock"), "max_body_bytes": 100_000,
                  **overrides.pop("server", {})}
        return make_config(server=server, fts={"workers": 1, **overrides.pop("fts", {})}, **overrides)

    return make


@pytest.fixture
def server(config: Callable[..., Path], mail: dict[str, int]) -> Iterator[Server]:
    running = start_server(config())
    yield running
    running.stop()
