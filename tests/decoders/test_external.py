"""The external decoder command (fts_decoder-like): routing, output, and every way it can misbehave."""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path

from ftsd.decoders import decode_attachment
from ftsd.settings import DecoderSettings, FtsSettings

TEXT_CHARS = FtsSettings().max_text_chars  # fts.max_text_chars: what message.py passes

PY = shlex.quote(sys.executable)


def settings(script: str, types: list[str], **kw: object) -> DecoderSettings:
    return DecoderSettings(command=f"{PY} -c {shlex.quote(script)}", command_types=types, **kw)  # type: ignore[arg-type]


UPPER = "import sys; print(sys.argv[-1]); print(sys.stdin.buffer.read().decode().upper())"


def test_command_gets_bytes_on_stdin_and_the_type_as_last_argument() -> None:
    result = decode_attachment(b"extwords here", "application/x-foo", None, settings(UPPER, ["application/x-foo"]),
                               TEXT_CHARS)
    assert result.decoder == "external" and result.skipped is None
    assert result.text.split("\n")[:2] == ["application/x-foo", "EXTWORDS HERE"]


def test_extension_patterns_and_precedence_over_builtin_decoders() -> None:
    limits = settings(UPPER, ["*.pdf"])
    result = decode_attachment(b"not a pdf", "application/octet-stream", "x.PDF", limits, TEXT_CHARS)
    assert "NOT A PDF" in result.text
    assert decode_attachment(b"a,b", "text/csv", None, limits, TEXT_CHARS).decoder == "csv"


def test_non_zero_exit_reports_status_and_stderr() -> None:
    script = "import sys; sys.stderr.write('cannot parse this\\nsecond line\\n'); sys.exit(3)"
    result = decode_attachment(b"x", "application/x-foo", None, settings(script, ["application/x-foo"]), TEXT_CHARS)
    assert result.skipped == "exit status 3: cannot parse this" and result.text == ""


def test_missing_program() -> None:
    limits = DecoderSettings(command="/nonexistent/decoder --flag", command_types=["application/x-foo"])
    result = decode_attachment(b"x", "application/x-foo", None, limits, TEXT_CHARS)
    assert (result.skipped or "").startswith("cannot run /nonexistent/decoder")


def test_sleeping_forever_is_killed_with_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    limits = DecoderSettings(command=f"sh -c 'sleep 1000 & echo $! > {pidfile}; wait'",
                             command_types=["application/x-foo"], timeout_s=2)
    started = time.monotonic()
    result = decode_attachment(b"x", "application/x-foo", None, limits, TEXT_CHARS)
    assert result.skipped == "timeout after 2s"
    assert time.monotonic() - started < 4
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 2
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)  # the grandchild died with the process group


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_unbounded_allocation_hits_the_memory_limit() -> None:
    script = "a = []\nwhile True: a.append(bytearray(10**7))"
    limits = settings(script, ["application/x-foo"], memory_mb=256)
    started = time.monotonic()
    result = decode_attachment(b"x", "application/x-foo", None, limits, TEXT_CHARS)
    assert result.skipped == "exit status 1: MemoryError" and time.monotonic() - started < 10


def test_endless_output_is_cut() -> None:
    script = "import sys\nwhile True: sys.stdout.write('y' * 65536)"
    result = decode_attachment(b"x", "application/x-foo", None, settings(script, ["application/x-foo"]), TEXT_CHARS)
    assert result.skipped is None and len(result.text) == 2_000_000  # cut, not skipped
