"""Run one heavy decoder on one part in a child process with resource limits.

In: a decoder name (or "external"), the part's bytes and content type, DecoderSettings. Out: Decoded, with
`skipped` set to the reason when the child failed: "timeout after 20s", "decoder crashed (signal 11)",
"memory limit", "cpu time limit", or the DecodeError message ("encrypted document", "zip bomb: ...").

A fork server: each indexer process lazily starts one `python -m ftsd.decoders.sandbox`, which imports the
decoder libraries once and then, per part, forks a child in a process group of its own, with RLIMIT_AS
(memory_mb), RLIMIT_CPU and no core dumps. The server kills the whole group (the child and whatever the
external command spawned) at timeout_s, and caps what it reads back. Measured (bench/bench_decoders.py):
~4-5 ms per part over decoding in-process, where a fresh interpreter importing the decoder libraries per
part would cost ~100 ms (a bare `python -c pass`, ~22 ms). The server itself runs no decoder, so nothing a
document does can take it down, and if it dies anyway the next part starts a new one.

Wire format, both ways: one JSON line, then a body whose length the line gives.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import ftsd
from ftsd.decoders import BY_NAME, REGISTRY, Decoded, Decoder
from ftsd.decoders.external import run_command
from ftsd.errors import DecodeError
from ftsd.settings import DecoderSettings

log = logging.getLogger(__name__)

_SERVER_GRACE_S = 10.0                    # the server enforces timeout_s; the client gives it this much more


# --- the client side, in the indexer -------------------------------------------------------------------

class _Client:
    """One fork server per process, started on first use and restarted if it dies; one part at a time."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.proc: subprocess.Popen[bytes] | None = None
        self.refused = False  # the interpreter could not be run (said once per process)

    def start(self) -> subprocess.Popen[bytes]:
        root = str(Path(ftsd.__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        try:
            return subprocess.Popen(
                [sys.executable, "-m", "ftsd.decoders.sandbox"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                env=env, start_new_session=True,  # a group of its own: killed as a whole if it stops answering
            )
        except PermissionError:  # started as root, now the mail user: the interpreter is where it may not go
            why = (f"the decoder sandbox cannot start: {sys.executable} cannot be run by uid {os.geteuid()}; "
                   "install ftsd where the mail user can run it (scripts/install: /opt/ftsd)")
            if not self.refused:
                self.refused = True
                log.warning("attachments are not decoded: %s", why)
            raise DecodeError(why) from None

    def stop(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()
            for pipe in (self.proc.stdin, self.proc.stdout):
                if pipe is not None:
                    pipe.close()
            self.proc = None

    def call(self, header: dict[str, Any], data: bytes, timeout: float, cap: int) -> tuple[dict[str, Any], bytes]:
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                self.stop()
                self.proc = self.start()
            assert self.proc.stdin is not None and self.proc.stdout is not None
            try:
                _send(self.proc.stdin, header, data)
                return _receive(self.proc.stdout.fileno(), time.monotonic() + timeout, cap)
            except (OSError, ValueError, DecodeError):
                self.stop()
                raise


_client = _Client()
atexit.register(_client.stop)
# A forked indexer worker must not talk over its parent's pipes: it starts a server of its own.
os.register_at_fork(after_in_child=lambda: setattr(_client, "proc", None))


def max_output(max_chars: int) -> int:
    """Bytes a child may send back: `max_chars` characters as UTF-8 (at most 4 bytes each), plus the status byte."""
    return 4 * max_chars + 4096


def run(name: str, data: bytes, content_type: str, limits: DecoderSettings, max_chars: int) -> Decoded:
    """Decode `data` with decoder `name` in a limited child process, keeping at most `max_chars` characters
    (fts.max_text_chars). Raises only on a broken fork server."""
    header = {"name": name, "type": content_type, "timeout": limits.timeout_s, "memory_mb": limits.memory_mb,
              "command": limits.command, "max_chars": max_chars}
    reply, body = _client.call(header, data, limits.timeout_s + _SERVER_GRACE_S, max_output(max_chars) + 4096)
    skipped = reply.get("skipped")
    return Decoded(body.decode("utf-8", "replace"), decoder=name, skipped=str(skipped) if skipped else None)


def _send(pipe: IO[bytes], header: dict[str, Any], body: bytes) -> None:
    pipe.write(json.dumps({**header, "size": len(body)}).encode() + b"\n")
    pipe.write(body)
    pipe.flush()


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

def serve(inp: IO[bytes], out: IO[bytes]) -> None:
    """Answer requests until the client goes away."""
    while line := inp.readline(1 << 16):
        request = json.loads(line)
        data = inp.read(request["size"])
        if len(data) != request["size"]:
            return
        text, skipped = _fork_and_decode(request, data)
        body = text if skipped is None else b""
        out.write(json.dumps({"skipped": skipped, "size": len(body)}).encode() + b"\n" + body)
        out.flush()


def _fork_and_decode(request: dict[str, Any], data: bytes, decoder: Decoder | None = None) -> tuple[bytes, str | None]:
    """Decode in a forked child (with `decoder`, else the one the request names): its UTF-8 text, or b"" and the
    reason it failed."""
    timeout = float(request["timeout"])
    cap = max_output(int(request["max_chars"]))
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
    output, overflow = bytearray(), False
    deadline = time.monotonic() + timeout
    timed_out = False
    with os.fdopen(rfd, "rb", buffering=0) as result:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([result], [], [], left)[0]:
                timed_out = True
                break
            chunk = result.read(1 << 16)
            if not chunk:
                break
            output += chunk
            if len(output) > cap:
                overflow = True
                break
    try:
        os.killpg(pid, signal.SIGKILL)  # the external command's leftovers too, if the child is done
    except OSError:
        pass
    _, status = os.waitpid(pid, 0)
    if timed_out:
        return b"", f"timeout after {timeout:g}s"
    if overflow:
        return b"", f"decoder output larger than {cap} bytes"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        return b"", "cpu time limit" if sig == signal.SIGXCPU else f"decoder crashed (signal {sig})"
    if not output or os.WEXITSTATUS(status) != 0:
        return b"", f"decoder crashed (exit status {os.WEXITSTATUS(status)})"
    if output[:1] == b"T":
        return bytes(output[1:]), None
    return b"", output[1:].decode("utf-8", "replace")


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


def _preload() -> None:
    """Import every sandboxed decoder's library once, here, so that each forked child starts with it loaded."""
    for spec in REGISTRY:
        if spec.sandboxed:
            try:
                spec.load()
            except ImportError:  # not installed: each such part is skipped with this ImportError as its reason
                continue


def main() -> None:
    _preload()
    # Private copies of the pipes; fds 0 and 1 become /dev/null so that nothing printed corrupts the protocol.
    try:
        with os.fdopen(os.dup(0), "rb") as inp, os.fdopen(os.dup(1), "wb") as out:
            devnull = os.open(os.devnull, os.O_RDWR)
            os.dup2(devnull, 0)
            os.dup2(devnull, 1)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the indexer, which closes our stdin
            serve(inp, out)
    except BrokenPipeError:  # the indexer went away mid-answer
        pass


if __name__ == "__main__":
    main()
