"""`ftsd serve`: one uvicorn server answering on the TCP `listen` address and the Unix socket at the same time.

The listening sockets are made here: TCP is bound as configured (loopback by default; any other address needs
`server.auth` on, and is logged as a warning); a stale Unix socket is removed (a live one means another ftsd: refused),
the new one is bound with a umask that keeps it private until it gets `socket_mode` and `socket_user`/`socket_group`.
Connections are bounded (api/protocol.py: request-head timeout, idle keep-alive timeout, server.max_connections,
largest request head, listen backlog). SIGTERM (systemd stop) and SIGINT stop accepting, finish the requests in
flight, then the job workers stop at their next mailbox (at most 30 s; their jobs stay queued for the next start)
and the socket file is removed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import resource
import shutil
import signal
import socket
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ftsd.api.app import create_app
from ftsd.api.protocol import ConnectionLimits, bounded_protocol
from ftsd.daemon.jobs import JobQueue
from ftsd.errors import ConfigError
from ftsd.settings import Settings

log = logging.getLogger(__name__)

MAX_UNIX_PATH = 107  # sun_path is 108 bytes including the NUL
GRACEFUL_S = 30


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port). Raises: ConfigError."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"server.listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:8984")
    return host.removeprefix("[").removesuffix("]"), int(port)


def _addresses(host: str, port: int) -> list[tuple[socket.AddressFamily, tuple[str, int]]]:
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"server.listen {host}:{port}: {exc.strerror}") from exc
    return [(family, (str(addr[0]), int(addr[1]))) for family, _, _, _, addr in infos]


def is_loopback(host: str, port: int = 0) -> bool:
    """True if every address the host resolves to is a loopback address (an empty host means all interfaces)."""
    return bool(host) and all(ipaddress.ip_address(addr[0].split("%")[0]).is_loopback
                              for _, addr in _addresses(host, port))


def tcp_socket(settings: Settings) -> socket.socket | None:
    """The bound TCP socket of `server.listen`, or None when it is empty. Raises: ConfigError."""
    if not settings.server.listen:
        return None
    host, port = parse_listen(settings.server.listen)
    if not is_loopback(host, port):
        if not settings.server.auth:
            raise ConfigError(f"server.listen {settings.server.listen!r} is not a loopback address: "
                              "server.auth = false is only allowed on loopback (127.0.0.1)")
        log.warning("listening on %s, which is not loopback: every TCP request needs the token",
                    settings.server.listen)
    family, address = _addresses(host, port)[0]
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets of that proto. Without it, a
    # keep-alive client (Dovecot's fts_solr, httpx) waited ~40 ms per response: uvicorn writes the headers and the
    # body separately, and Nagle held the body until the client's delayed ACK of the headers.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted sockets on Linux too
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"server.listen {settings.server.listen}: cannot bind: {exc.strerror}") from exc
    return sock


def _remove_stale(path: Path) -> None:
    if not (path.exists() or path.is_symlink()):
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise ConfigError(f"server.socket {path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink(missing_ok=True)  # left by a service that died
            return
    raise ConfigError(f"server.socket {path}: another ftsd is already listening there")


def unix_socket(settings: Settings) -> socket.socket | None:
    """The bound Unix socket of `server.socket` with its mode and owner, or None when empty. Raises: ConfigError."""
    if not settings.server.socket:
        return None
    path = settings.resolve(settings.server.socket)
    if len(os.fsencode(path)) > MAX_UNIX_PATH:
        raise ConfigError(f"server.socket {path}: longer than {MAX_UNIX_PATH} bytes (AF_UNIX limit)")
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # nobody else can connect between bind() and chmod()
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"server.socket {path}: cannot bind: {exc.strerror}") from exc
    finally:
        os.umask(old)
    try:
        os.chmod(path, int(settings.server.socket_mode, 8))
        owner, group = settings.server.socket_user, settings.server.socket_group
        if owner and group:
            shutil.chown(path, user=owner, group=group)
        elif owner:
            shutil.chown(path, user=owner)
        elif group:
            shutil.chown(path, group=group)
    except (LookupError, OSError) as exc:
        sock.close()
        path.unlink(missing_ok=True)
        raise ConfigError(f"server.socket {path}: cannot set mode/owner: {exc}") from exc
    return sock


@contextlib.contextmanager
def _quiet_signals() -> Iterator[None]:
    """uvicorn handles SIGTERM/SIGINT during serve() and re-raises them afterwards: make that re-raise a no-op,
    so serve() returns normally and cleans up (the exit is then 0, as systemd expects after a stop)."""
    def ignore(signum: int, frame: FrameType | None) -> None:
        log.info("stopped by signal %d", signum)

    saved = {s: signal.signal(s, ignore) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def make_server(settings: Settings) -> tuple[uvicorn.Server, list[socket.socket]]:
    """The uvicorn server and its bound listening sockets (TCP, Unix). Raises: ConfigError."""
    state = settings.resolve(settings.server.state_dir)
    try:  # fail here with a clear message rather than in the app's startup
        if settings.cluster.dsn:
            from ftsd.cluster.admin import check_coordinator

            check_coordinator(settings)  # cluster mode: the queue is in PostgreSQL
        else:
            JobQueue(state / "jobs.sqlite").close()
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(f"server.state_dir {state}: cannot keep the job queue there: {exc}") from exc
    tcp = tcp_socket(settings)
    try:
        unix = unix_socket(settings)
    except ConfigError:
        if tcp:
            tcp.close()
        raise
    sockets = [s for s in (tcp, unix) if s is not None]
    if not sockets:
        raise ConfigError("server.listen and server.socket are both empty: nothing to serve on")
    srv = settings.server
    config = uvicorn.Config(create_app(settings), log_config=None, access_log=settings.log_level == "debug",
                            timeout_graceful_shutdown=GRACEFUL_S, server_header=False, lifespan="on",
                            http=protocol(settings), timeout_keep_alive=max(1, round(srv.timeout_keep_alive_s)),
                            h11_max_incomplete_event_size=srv.max_header_bytes, backlog=srv.backlog)
    return uvicorn.Server(config), sockets


def protocol(settings: Settings) -> type[H11Protocol]:
    """uvicorn's HTTP protocol class with ftsd's connection bounds and interim responses (api/protocol.py)."""
    srv = settings.server
    return bounded_protocol(ConnectionLimits(_connection_cap(srv.max_connections, srv.backlog), srv.timeout_header_s,
                                             interim_every_s=settings.limits.solr_interim_s))


FILES_RESERVED = 256  # open files kept for indexes, the job queue, workers' pipes, logs


def _connection_cap(wanted: int, backlog: int) -> int:
    """server.max_connections, lowered if the open-file limit could not hold it: asyncio accepts up to `backlog`
    connections at once before the cap closes any, and running out of files makes its accept loop log in a loop.
    The soft limit is first raised to the hard one (systemd's default soft limit is 1,024)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    room = soft - 2 * backlog - FILES_RESERVED
    if wanted > room:
        log.warning("server.max_connections %d lowered to %d: the open-file limit is %d (raise LimitNOFILE)",
                    wanted, max(room, 1), soft)
    return max(1, min(wanted, room))


def serve(settings: Settings) -> None:
    """Run the API until SIGTERM/SIGINT. Raises: ConfigError (bad address, socket in use, ...)."""
    server, sockets = make_server(settings)
    log.info("listening on %s", " and ".join(_where(s) for s in sockets))
    unix_paths = [Path(s.getsockname()) for s in sockets if s.family == socket.AF_UNIX]
    try:
        with _quiet_signals():
            server.run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()
        for path in unix_paths:
            path.unlink(missing_ok=True)


def _where(sock: socket.socket) -> str:
    if sock.family == socket.AF_UNIX:
        return f"unix:{sock.getsockname()}"
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
