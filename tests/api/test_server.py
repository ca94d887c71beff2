"""`ftsd serve` as a real process (signals, socket file), `ftsd index -q` against it, and the listening rules."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from ftsd.api.server import is_loopback, make_server, parse_listen, tcp_socket, unix_socket
from ftsd.cli import main
from ftsd.errors import ConfigError
from ftsd.settings import load_settings
from tests.api.conftest import ALICE, unix_accepts, wait_for, wait_job


def test_serve_process_queue_from_cli_and_sigterm(config: Callable[..., Path], mail: dict[str, int],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = config()
    sock = load_settings(path).resolve(load_settings(path).server.socket)
    proc = subprocess.Popen([sys.executable, "-m", "ftsd", "serve", "--allow-root", "-c", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: unix_accepts(sock) or proc.poll() is not None, timeout=20)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://ftsd") as client:
            def healthy() -> bool:
                try:
                    return client.get("/healthz").status_code == 200
                except httpx.TransportError:  # bound, not listening yet: the app is starting
                    return proc.poll() is not None

            wait_for(healthy, timeout=20)
            assert main(["index", "-q", "-A", "-v", "-c", str(path)]) == 0
            out = capsys.readouterr().out
            assert f"{ALICE}: index job 1 queued" in out and "bob@example.org: index job 2 queued" in out
            assert wait_job(client, 1)["result"]["indexed"] == 3
            assert main(["optimize", "-q", "-u", ALICE, "-c", str(path)]) == 0
            assert capsys.readouterr().out == ""  # cron: queued quietly
            assert main(["index", "-q", "-u", "nobody@example.org", "-c", str(path)]) == 1
            assert "nobody@example.org: index refused: 404 unknown_user" in capsys.readouterr().err
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, output
        assert "Traceback" not in output
        assert not sock.exists()  # removed on the way out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_queue_without_a_service(config: Callable[..., Path], capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    path = config(server={"listen": f"127.0.0.1:{port}"})
    assert main(["index", "-q", "-u", ALICE, "-c", str(path)]) == 1
    assert "service is not running" in capsys.readouterr().err


def test_listen_rules(config: Callable[..., Path], sockdir: Path) -> None:
    assert parse_listen("127.0.0.1:8984") == ("127.0.0.1", 8984)
    assert parse_listen("[::1]:8984") == ("::1", 8984)
    with pytest.raises(ConfigError):
        parse_listen("localhost")
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("")

    with pytest.raises(ConfigError, match="not a loopback address"):  # no token check there: refused
        tcp_socket(load_settings(config(server={"listen": "0.0.0.0:0", "auth": False})))
    open_sock = tcp_socket(load_settings(config(server={"listen": "0.0.0.0:0"})))  # auth is on by default
    assert open_sock is not None
    open_sock.close()


def test_tcp_connections_send_without_nagle(config: Callable[..., Path], sockdir: Path) -> None:
    """Each accepted connection has TCP_NODELAY, as the event loop serving it sees it: with Nagle on, a keep-alive
    client got every response ~40 ms late (headers and body are written separately)."""
    sock = tcp_socket(load_settings(config(server={"listen": "127.0.0.1:0"})))
    assert sock is not None
    seen: list[int] = []

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            seen.append(transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    async def one_connection() -> None:
        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        for _ in range(200):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(one_connection())
    assert seen and seen[0] != 0


def test_unix_socket_stale_live_and_too_long(config: Callable[..., Path], sockdir: Path) -> None:
    settings = load_settings(config())
    path = sockdir / "s.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on, as a killed service leaves it
    live = unix_socket(settings)
    assert live is not None
    live.listen()
    with pytest.raises(ConfigError, match="already listening"):
        unix_socket(settings)
    live.close()
    path.unlink()
    path.write_text("not a socket")
    with pytest.raises(ConfigError, match="not a socket"):
        unix_socket(settings)
    with pytest.raises(ConfigError, match="AF_UNIX"):
        unix_socket(load_settings(config(server={"socket": "/tmp/" + "x" * 120})))
    (sockdir / "file").write_text("")
    with pytest.raises(ConfigError, match="state_dir"):
        make_server(load_settings(config(server={"state_dir": str(sockdir / "file" / "state")})))
    with pytest.raises(ConfigError, match="both empty"):
        make_server(load_settings(config(server={"listen": "", "socket": ""})))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_socket_owner(config: Callable[..., Path]) -> None:
    settings = load_settings(config(server={"socket_user": "nobody", "socket_group": "nogroup"}))
    sock = unix_socket(settings)
    assert sock is not None
    try:
        st = settings.resolve(settings.server.socket).stat()
        import grp
        import pwd

        assert pwd.getpwuid(st.st_uid).pw_name == "nobody" and grp.getgrgid(st.st_gid).gr_name == "nogroup"
    finally:
        sock.close()
    with pytest.raises(ConfigError, match="mode/owner"):
        unix_socket(load_settings(config(server={"socket_user": "no-such-user-here"})))
