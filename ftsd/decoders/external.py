"""The external decoder, in the spirit of Dovecot's fts_decoder script.

In: `decoders.command` (a shell-like command line, split with shlex, never run through a shell), the part's
content type, its bytes. The command gets the content type as its last argument and the bytes on stdin, and
prints UTF-8 text on stdout. Out: that text, or DecodeError("exit status 3: <stderr line>").

It runs inside the sandbox child (see sandbox.py), which owns the limits: the command inherits RLIMIT_AS and
RLIMIT_CPU, and lives in the child's process group, which is killed at the timeout. decode_attachment sends a
part here when its MIME type or `*.ext` is listed in `decoders.command_types`.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile

from ftsd.errors import DecodeError


def run_command(command: str, content_type: str, data: bytes, max_bytes: int) -> str:
    """stdout of `command content_type < data`, at most `max_bytes` of it. Raises: DecodeError."""
    argv = shlex.split(command) + [content_type]
    # Files, not pipes, for stdin and stderr: no feeding thread, and no deadlock on a chatty stderr.
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stderr:
        stdin.write(data)
        stdin.seek(0)
        try:
            proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=stderr)
        except OSError as exc:
            raise DecodeError(f"cannot run {argv[0]}: {exc.strerror}") from None
        assert proc.stdout is not None
        with proc.stdout:
            out = proc.stdout.read(max_bytes)
            if len(out) == max_bytes and proc.stdout.read(1):
                proc.kill()  # more than we keep: the text is cut, not skipped
                proc.wait()
                return out.decode("utf-8", "replace")
        returncode = proc.wait()
        if returncode != 0:
            stderr.seek(0)
            raise DecodeError(_failure(returncode, stderr.read(64 * 1024)))
    return out.decode("utf-8", "replace")


def _failure(returncode: int, stderr: bytes) -> str:
    """"exit status N: first line of stderr" (the last line for a Python traceback, which says more)."""
    what = f"exit status {returncode}" if returncode > 0 else f"killed by signal {-returncode}"
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    if not lines:
        return what
    line = lines[-1] if lines[0].startswith("Traceback (most recent call last)") else lines[0]
    return f"{what}: {line[:200]}"
