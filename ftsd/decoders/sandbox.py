"""Run one heavy decoder on one part in a child process with resource limits.

In: a decoder name (or "external"), the part's bytes and content type, DecoderSettings. Out: Decoded, with
`skipped` set to the reason when the child failed: "timeout after 20s", "decoder crashed (signal 11)",
"memory limit", "cpu time limit", or the DecodeError message ("encrypted document", "zip bomb: ...").

A fork server, `python -m ftsd.decoders.sandbox`, owned by a DecoderSandbox object (the Runtime's: one per ftsd
process tree that owns a runtime; a child that drops root makes its own). It imports each decoder's library once,
when the first part that needs it comes (before forking that part's child, so that later children inherit it; a
library no part needs costs no memory in the server nor its children: pypdfium2 alone is ~5 MB), listens on a
Unix socket in a private 0700 directory (never an abstract socket: any local user could connect), and per
connection (one part) forks a child in a process group of its own, with RLIMIT_AS (memory_mb), RLIMIT_CPU and
no core dumps; one select loop serves many parts at once. The server kills the whole group (the child and whatever
the external command spawned) at timeout_s, and caps what it reads back. The socket's path travels down as the
setting decoders.sandbox (DecoderSandbox.bind() fills it in): a client -- an indexer worker, a request thread --
connects, sends, reads, closes, and keeps no state. The socket is bound at once; the server starts with the first
part (as the user the process then is: after privileges were dropped) and again after a death, while the parts
sent meanwhile wait in the listen backlog. The server runs no decoder, so nothing a document does can take it down.
It exits when its owner is gone (EOF on a pipe only the owner holds) and stops its children first. Measured
(bench/bench_decoders.py): ~4-5 ms per part over decoding in-process, where a fresh interpreter importing the
decoder libraries per part would cost ~100 ms (a bare `python -c pass`, ~22 ms). A caller without a bound socket
(tests, scripts) forks the same limited child itself, which imports its decoder's library there.

Wire format, both ways: one JSON line, then a body whose length the line gives.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import replace
from pathlib import Path
from typing import Any

import lxml

import ftsd
from ftsd.decoders import BY_NAME, Decoded, Decoder
from ftsd.decoders.external import run_command
from ftsd.digits import ascii_int
from ftsd.errors import DecodeError
from ftsd.settings import DecoderSettings, Settings

log = logging.getLogger(__name__)

_SERVER_GRACE_S = 10.0                    # the server enforces timeout_s; the client gives it this much more
_READ_REQUEST_S = 5.0                     # a client sends its part at once: the loop waits no longer for it
_SOCKET = "decoders.sock"
_DIR_PREFIX = "ftsd-decoders-"            # + owner pid + "-" + random: the server socket's private directory
_STOP_S = 2.0                             # how long a server may take to stop its parts before it is killed
_QUICK_DEATH_S = 1.0                      # a server that exits with an error this soon is broken...
_RETRY_S = 10.0                           # ...and is not started again for this long (parts are skipped)


# --- the owner: a socket at once, the server when the first part comes (and again if it dies) -----------------

class _Server:
    """The listening socket of one owner and the server behind it, kept apart from the owner so that its finalizer
    can stop them. Socket activation: the socket is bound at once (cheap: no process, nothing to say when nothing is
    ever decoded); a thread starts the server when a client waits on it, hands it the socket, and after the server's
    death waits for the next client (clients meanwhile wait in the listen backlog, none is refused)."""

    def __init__(self) -> None:
        self.owner_pid = os.getpid()
        _sweep_stale(tempfile.gettempdir())
        # mode 0700, ours: no other user may connect; the pid in the name lets a later owner remove it after a kill
        self.directory = tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{self.owner_pid}-")
        self.path = os.path.join(self.directory, _SOCKET)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.listener.bind(self.path)
            self.listener.listen(128)
        except OSError:
            self.listener.close()
            shutil.rmtree(self.directory, ignore_errors=True)
            raise
        self.lock = threading.RLock()  # RLock: a finalizer may call stop() on this thread, inside _spawn
        self.proc: subprocess.Popen[bytes] | None = None
        self.alive: int | None = None  # write end of the liveness pipe: the server exits at its EOF, even if we die
        self.refused: str | None = None  # why the server cannot start: each part is answered so
        self.stopping = False
        self.failed = ""  # why the last server died at once: parts are answered so until failing_until
        self.failing_until = 0.0
        self.wake_r, self.wake_w = os.pipe()
        self.thread = threading.Thread(target=self._run, name="ftsd-decoder-sandbox", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            ready = select.select([self.listener.fileno(), self.wake_r], [], [])[0]
            with self.lock:
                if self.stopping or self.wake_r in ready:
                    break
                failing = time.monotonic() < self.failing_until
                if self.refused is None and not failing:
                    self._spawn()
                proc = None if failing else self.proc
            if proc is None:
                _refuse(self.listener, self.refused or self.failed or "decoder sandbox not running")
                continue
            started = time.monotonic()
            status = proc.wait()  # until it dies (or stop() ends it); then a new one for the next client
            if status > 0 and time.monotonic() - started < _QUICK_DEATH_S and not self.stopping:
                # it failed by itself at once (an import error?): broken, not killed; no respawn loop
                self.proc = None
                self.failed = f"the decoder sandbox exits at start (status {status}); tried again in {_RETRY_S:g}s"
                self.failing_until = time.monotonic() + _RETRY_S
                log.warning("attachments are not decoded: %s", self.failed)
        self._cleanup()

    def _spawn(self) -> None:
        problem = interpreter_problem()
        if problem is not None:
            self.refused = f"the decoder sandbox cannot start: {problem}"
            log.warning("attachments are not decoded: %s", self.refused)
            return
        root = str(Path(ftsd.__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        if self.alive is not None:
            os.close(self.alive)
        alive_r, self.alive = os.pipe()
        fd = self.listener.fileno()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ftsd.decoders.sandbox", str(fd), str(alive_r)], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, env=env, pass_fds=(fd, alive_r),
                start_new_session=True,  # a group of its own: killed as a whole
            )
        except PermissionError:  # started as root, now the mail user: the interpreter is where it may not go
            self.refused = (f"the decoder sandbox cannot start: {sys.executable} cannot be run by uid {os.geteuid()};"
                            " install ftsd where the mail user can run it (scripts/install: /opt/ftsd)")
            log.warning("attachments are not decoded: %s", self.refused)
        finally:
            os.close(alive_r)

    def stop(self) -> None:
        """End the server (its parts first) and the thread; the thread cleans up. Safe from any thread, even from
        a finalizer that the garbage collector runs on the thread itself."""
        if os.getpid() != self.owner_pid:  # a forked child's copy: the server is its parent's
            return
        with self.lock:
            if self.stopping:
                return
            self.stopping = True
            os.write(self.wake_w, b"x")
            if self.alive is not None:  # EOF: the server kills the parts it runs (their groups) and exits
                os.close(self.alive)
                self.alive = None
        if threading.current_thread() is not self.thread:
            self.thread.join(_STOP_S)
            proc = self.proc
            if self.thread.is_alive() and proc is not None:  # a server that does not stop on its own
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
            self.thread.join()

    def _cleanup(self) -> None:
        with self.lock:
            if self.alive is not None:
                os.close(self.alive)
                self.alive = None
            proc = self.proc
        if proc is not None:
            try:
                proc.wait(_STOP_S)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.wait()
        self.listener.close()
        os.close(self.wake_r)
        os.close(self.wake_w)
        shutil.rmtree(self.directory, ignore_errors=True)


def interpreter_problem() -> str | None:
    """Why this process's user cannot start a new interpreter of this installation (the decoder sandbox, the
    service's indexer workers), naming the fix; None when it can. After root was dropped, an interpreter under
    /root (pyenv) or a checkout the mail user may not read fails there with an ImportError that names neither."""
    needs = [(sys.executable, os.X_OK, "run"), (os.path.dirname(os.__file__), os.R_OK | os.X_OK, "read"),
             (os.path.dirname(ftsd.__file__), os.R_OK | os.X_OK, "read"),
             (os.path.dirname(os.path.dirname(lxml.__file__)), os.R_OK | os.X_OK, "read")]  # the dependencies
    for path, mode, verb in needs:
        if not os.access(path, mode):
            return (f"uid {os.geteuid()} cannot {verb} {path}: install ftsd where the mail user can run it "
                    "(scripts/install: /opt/ftsd)")
    return None


def _sweep_stale(parent: str) -> None:
    """Remove the socket directories that owners of this uid left when they were killed (SIGKILL, the OOM killer:
    no finalizer ran). A directory whose owner still lives, or whose pid was reused, is left alone."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    uid = os.geteuid()
    for name in names:
        pid_text, dash, _ = name.removeprefix(_DIR_PREFIX).partition("-")
        pid = ascii_int(pid_text, 9)
        if not name.startswith(_DIR_PREFIX) or not dash or not pid:
            continue
        path = os.path.join(parent, name)
        try:
            if os.lstat(path).st_uid != uid:
                continue
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:  # gone meanwhile, or a live process of another user
            continue


def _refuse(listener: socket.socket, why: str) -> None:
    """Answer one waiting client with `why` (its part is skipped with that reason)."""
    try:
        conn, _ = listener.accept()
    except OSError:
        return
    with conn:
        try:
            conn.settimeout(_READ_REQUEST_S)
            with conn.makefile("rb") as inp:
                inp.read(int(json.loads(inp.readline(1 << 16))["size"]))
            conn.sendall(json.dumps({"skipped": why, "size": 0}).encode() + b"\n")
        except (OSError, ValueError, KeyError, TypeError):
            pass


class DecoderSandbox:
    """The decoder fork server of one process tree: `bind(settings)` gives settings whose decoders.sandbox is its
    socket. The server starts when the first part is sent (as the user this process is then) and again after it
    died; close() stops it (the object stays usable: a new socket on the next bind)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._finalizer: weakref.finalize[[], DecoderSandbox] | None = None
        self._said = False  # the socket could not be made (said once)

    def bind(self, settings: Settings) -> Settings:
        """`settings` with decoders.sandbox set to this server's socket (unchanged when it names a server run
        apart, or attachments are off)."""
        limits = settings.decoders
        if limits.sandbox or not limits.attachments:
            return settings
        try:
            address = self.address()
        except OSError as exc:  # no socket (TMPDIR full, or its path too long): each process forks the children
            if not self._said:
                self._said = True
                log.warning("decoder sandbox: cannot create its socket (%s): attachments are decoded without the "
                            "fork server (slower)", exc)
            return settings
        return replace(settings, decoders=replace(limits, sandbox=address))

    def address(self) -> str:
        """The socket's path (bound here on first use; the server behind it starts with the first client)."""
        with self._lock:
            if self._server is None or self._server.owner_pid != os.getpid():  # none yet, or the parent's copy
                self._server = _Server()
                self._finalizer = weakref.finalize(self, self._server.stop)
            return self._server.path

    def running(self) -> subprocess.Popen[bytes] | None:
        """The server process, while one runs."""
        server = self._server
        proc = server.proc if server is not None else None
        return proc if proc is not None and proc.poll() is None else None

    def close(self) -> None:
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()  # stops the server, removes the socket and its directory
            self._server = self._finalizer = None

    def __enter__(self) -> DecoderSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- the client side: one connection per part --------------------------------------------------------------

def max_output(max_chars: int) -> int:
    """Bytes a child may send back: `max_chars` characters as UTF-8 (at most 4 bytes each), plus the status byte."""
    return 4 * max_chars + 4096


def run(name: str, data: bytes, content_type: str, limits: DecoderSettings, max_chars: int) -> Decoded:
    """Decode `data` with decoder `name` in a limited child of the server at limits.sandbox (forked from this
    process when empty: a caller without a runtime), keeping at most `max_chars` characters (fts.max_text_chars).
    Raises: DecodeError when no server answers."""
    header = {"name": name, "type": content_type, "timeout": limits.timeout_s, "memory_mb": limits.memory_mb,
              "command": limits.command, "max_chars": max_chars, "size": len(data),
              "nice": os.nice(0)}  # decoded at the sender's niceness: an indexer worker's (fts.worker_nice) stays low
    if not limits.sandbox:  # no server (tests, scripts): the same limited child, forked from here, with
        # memory_mb on top of this process's address space, which the child inherits (the server's is small)
        text, reason = _fork_and_decode({**header, "memory_mb": limits.memory_mb + _address_space_mb()}, data)
        return Decoded(text.decode("utf-8", "replace"), decoder=name, skipped=reason)
    timeout = limits.timeout_s + _SERVER_GRACE_S
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        try:
            conn.connect(limits.sandbox)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
                raise DecodeError("decoder sandbox not running") from None
            raise
        conn.sendall(json.dumps(header).encode() + b"\n" + data)
        reply, body = _receive(conn.fileno(), time.monotonic() + timeout, max_output(max_chars) + 4096)
    skipped = reply.get("skipped")
    return Decoded(body.decode("utf-8", "replace"), decoder=name, skipped=str(skipped) if skipped else None)


def _address_space_mb() -> int:
    """This process's address space (VmSize, what RLIMIT_AS counts) in MiB; 0 where /proc does not tell."""
    try:
        with open("/proc/self/status") as f:
            return next((int(line.split()[1]) >> 10 for line in f if line.startswith("VmSize:")), 0)
    except OSError:
        return 0


def _receive(fd: int, deadline: float, cap: int) -> tuple[dict[str, Any], bytes]:
    """Read one JSON line and its body from `fd` by `deadline`. Raises: DecodeError."""
    buf = bytearray()
    header: dict[str, Any] | None = None
    while header is None or len(buf) < header["size"]:
        if header is None and b"\n" in buf:
            line, _, rest = bytes(buf).partition(b"\n")
            header, buf = json.loads(line), bytearray(rest)
            continue
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise DecodeError("sandbox did not answer in time")
        chunk = os.read(fd, 1 << 16)
        if not chunk or len(buf) > cap:
            raise DecodeError("sandbox closed the connection" if not chunk else "sandbox reply too large")
        buf += chunk
    return header, bytes(buf)


# --- the server side: `python -m ftsd.decoders.sandbox` ---------------------------------------------------

class _Part:
    """One part being decoded: its child, the pipe its text comes back on, its deadline and its client."""

    def __init__(self, request: dict[str, Any], data: bytes, decoder: Decoder | None = None,
                 conn: socket.socket | None = None) -> None:
        self.timeout = float(request["timeout"])
        self.cap = max_output(int(request["max_chars"]))
        self.deadline = time.monotonic() + self.timeout
        self.output = bytearray()
        self.conn = conn
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(rfd)
            status = 70
            try:
                os.setpgid(0, 0)
                _child(request, data, wfd, decoder)
                status = 0
            finally:
                os._exit(status)
        os.close(wfd)
        try:
            os.setpgid(pid, pid)  # also here, so that killpg works even if the child has not run yet
        except OSError:
            pass
        self.pid, self.fd = pid, rfd

    def read(self) -> str | None:
        """Take what the child wrote (the pipe is readable). "" when the child is done, a reason when the part
        failed, None to wait for more."""
        chunk = os.read(self.fd, 1 << 16)
        self.output += chunk
        if len(self.output) > self.cap:
            return f"decoder output larger than {self.cap} bytes"
        return None if chunk else ""

    def finish(self, reason: str) -> tuple[bytes, str | None]:
        """Kill the child's group, reap it: its UTF-8 text, or b"" and why it failed. `reason`: "" or read()'s."""
        os.close(self.fd)
        try:
            os.killpg(self.pid, signal.SIGKILL)  # the external command's leftovers too, if the child is done
        except OSError:
            pass
        _, status = os.waitpid(self.pid, 0)
        output = self.output
        if reason:
            return b"", reason
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            return b"", "cpu time limit" if sig == signal.SIGXCPU else f"decoder crashed (signal {sig})"
        if not output or os.WEXITSTATUS(status) != 0:
            return b"", f"decoder crashed (exit status {os.WEXITSTATUS(status)})"
        if output[:1] == b"T":
            return bytes(output[1:]), None
        return b"", output[1:].decode("utf-8", "replace")

    def timed_out(self) -> str:
        return f"timeout after {self.timeout:g}s"


def _fork_and_decode(request: dict[str, Any], data: bytes, decoder: Decoder | None = None) -> tuple[bytes, str | None]:
    """Decode one part in a forked child, here and now (with `decoder`, else the one the request names): its UTF-8
    text, or b"" and the reason it failed. The server does the same for many parts at once."""
    part = _Part(request, data, decoder)
    while True:
        left = part.deadline - time.monotonic()
        if left <= 0 or not select.select([part.fd], [], [], left)[0]:
            return part.finish(part.timed_out())
        reason = part.read()
        if reason is not None:
            return part.finish(reason)


def serve(listener: socket.socket, alive: int) -> None:
    """Answer parts, many at once, until the owner is gone (EOF on `alive`; never when -1)."""
    parts: dict[int, _Part] = {}  # by the fd of its result pipe
    while True:
        now = time.monotonic()
        wait = min([part.deadline - now for part in parts.values()], default=None)
        watched: list[Any] = [listener, *parts] + ([alive] if alive >= 0 else [])
        ready = select.select(watched, [], [], None if wait is None else max(wait, 0))[0]
        if alive in ready:
            for part in parts.values():
                part.finish("")
            return
        if listener in ready:
            _accept(listener, parts)
        now = time.monotonic()
        for fd, part in list(parts.items()):
            reason = part.read() if fd in ready else part.timed_out() if now >= part.deadline else None
            if reason is not None:
                del parts[fd]
                _reply(part, *part.finish(reason))


def _accept(listener: socket.socket, parts: dict[int, _Part]) -> None:
    """Read one client's part and start its child (a broken request closes that connection only)."""
    try:
        conn, _ = listener.accept()
    except OSError:
        return
    try:
        conn.settimeout(_READ_REQUEST_S)  # our own clients send at once; a stuck one costs the loop this at most
        with conn.makefile("rb") as inp:
            request = json.loads(inp.readline(1 << 16))
            data = inp.read(int(request["size"]))
        if len(data) != request["size"]:
            raise ValueError("short request")
        _load(str(request["name"]))
        part = _Part(request, data, conn=conn)
    except (OSError, ValueError, KeyError, TypeError):
        conn.close()
        return
    parts[part.fd] = part


def _reply(part: _Part, text: bytes, skipped: str | None) -> None:
    assert part.conn is not None
    with part.conn as conn:
        body = text if skipped is None else b""
        try:
            conn.sendall(json.dumps({"skipped": skipped, "size": len(body)}).encode() + b"\n" + body)
        except OSError:  # the client went away (its timeout, or it was killed)
            pass


def _child(request: dict[str, Any], data: bytes, fd: int, decoder: Decoder | None) -> None:
    """Set the limits, decode, write b"T" + text or b"S" + reason to `fd`."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):  # library chatter must not reach the server's pipes (or the indexer's log)
        os.dup2(devnull, std)
    # Nor may a stuck child keep the server's pipes open after the server is gone: keep only our result pipe.
    os.closerange(3, fd)
    open_max = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    os.closerange(fd + 1, open_max if open_max > 0 else 1 << 20)
    limit = int(request["memory_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    cpu = math.ceil(float(request["timeout"])) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    lower = int(request.get("nice", 0)) - os.nice(0)
    if lower > 0:
        os.nice(lower)
    max_chars = int(request["max_chars"])
    try:
        if request["name"] == "external":
            text = run_command(str(request["command"]), str(request["type"]), data, max_output(max_chars))
        else:
            text = (decoder or BY_NAME[request["name"]].load())(data, max_chars)
        reply = b"T" + text[:max_chars].encode("utf-8", "replace")
    except MemoryError:
        reply = b"Smemory limit"
    except DecodeError as exc:
        reply = b"S" + str(exc).encode("utf-8", "replace")
    except Exception as exc:
        reply = b"S" + f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")
    view = memoryview(reply)
    while view:
        view = view[os.write(fd, view):]


def _load(name: str) -> None:
    """Import the library of decoder `name` here, in the server, so that this part's child and every later one
    start with it loaded (an import per child would cost ~100 ms for pypdfium2). Imported on first use rather than
    at start: a library no part needs takes no memory in the server nor in its children. A library that fails to
    import is left to the child, which reports the error as the part's reason."""
    spec = BY_NAME.get(name)
    if spec is None or not spec.sandboxed:  # "external": nothing to import
        return
    try:
        spec.load()  # imported once: later calls find the module in sys.modules
    except Exception:  # noqa: BLE001 -- not installed, or broken: the child says why
        return


def main(argv: list[str]) -> None:
    """`LISTEN_FD ALIVE_FD` (started by DecoderSandbox), or `--listen PATH` (run apart: decoders.sandbox)."""
    if argv[:1] == ["--listen"]:
        os.umask(0o077)  # the socket: this user's only
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(argv[1])
        listener.listen(128)
        alive = -1
    else:
        listener, alive = socket.socket(fileno=int(argv[0])), int(argv[1])
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1):  # nothing a library prints goes anywhere
        os.dup2(devnull, std)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the indexer; we go when it is gone
    with listener:
        path = listener.getsockname()
        serve(listener, alive)
    if alive >= 0 and isinstance(path, str) and Path(path).parent.name.startswith("ftsd-decoders-"):
        # the owner is gone (or stopping): its private directory goes too, even if the owner could not see to it
        shutil.rmtree(Path(path).parent, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
