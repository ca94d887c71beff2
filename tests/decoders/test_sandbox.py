"""The sandbox: limits hold for built-in decoders too, and a dead fork server is replaced."""

from __future__ import annotations

import faulthandler
import os
import signal
import time
from pathlib import Path

import pytest

from ftsd.decoders import decode_attachment, sandbox
from ftsd.settings import DecoderSettings, FtsSettings
from tests.decoders import makedocs as mk

TEXT_CHARS = FtsSettings().max_text_chars  # fts.max_text_chars: what message.py passes


def _hog(data: bytes, max_chars: int) -> str:
    chunks = []
    while True:
        chunks.append(bytearray(10_000_000))


def _crash(data: bytes, max_chars: int) -> str:
    faulthandler.disable()  # pytest's would print a traceback of the child
    os.kill(os.getpid(), signal.SIGSEGV)
    return ""


def _spin(data: bytes, max_chars: int) -> str:
    while True:
        pass


_HOSTILE = {"test-hog": _hog, "test-crash": _crash, "test-spin": _spin}


@pytest.fixture
def hostile_decoders():
    return _HOSTILE


def fork_and_decode(name: str, timeout: float = 5, memory_mb: int = 512) -> tuple[bytes, str | None]:
    """Run the server's fork step right here, with a hostile decoder function of this module."""
    request = {"name": name, "type": "application/x-test", "timeout": timeout, "memory_mb": memory_mb, "command": "",
               "max_chars": TEXT_CHARS}
    return sandbox._fork_and_decode(request, b"data", _HOSTILE[name])


def test_memory_limit(hostile_decoders) -> None:
    assert fork_and_decode("test-hog", memory_mb=300) == (b"", "memory limit")


def test_crash_is_reported_with_its_signal(hostile_decoders) -> None:
    assert fork_and_decode("test-crash") == (b"", f"decoder crashed (signal {signal.SIGSEGV})")


def test_wall_clock_timeout(hostile_decoders) -> None:
    started = time.monotonic()
    assert fork_and_decode("test-spin", timeout=1) == (b"", "timeout after 1s")
    assert time.monotonic() - started < 3


def test_a_killed_fork_server_is_restarted() -> None:
    data = mk.make_docx(["restartword"])
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert "restartword" in decode_attachment(data, docx, None, DecoderSettings(), TEXT_CHARS).text
    proc = sandbox._client.proc
    assert proc is not None
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert "restartword" in decode_attachment(data, docx, None, DecoderSettings(), TEXT_CHARS).text
    assert sandbox._client.proc is not proc


def test_fork_server_preloads_decoder_libraries() -> None:
    """Each part is decoded in a child forked from the server, so the libraries must already be loaded there
    (importing pypdfium2 per part would cost ~100 ms; bench/bench_decoders.py measures the overhead)."""
    data = mk.make_docx(["tiny"])
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert decode_attachment(data, docx, None, DecoderSettings(), TEXT_CHARS).text.strip() == "tiny"
    proc = sandbox._client.proc
    assert proc is not None
    maps = Path(f"/proc/{proc.pid}/maps").read_text()
    assert "pdfium" in maps  # the PDF library is mapped in the server, though only a docx was decoded

def test_text_is_cut_at_max_text_chars_in_the_sandbox_and_here() -> None:
    """One limit, fts.max_text_chars, passed down: a sandboxed decoder (docx) and an in-process one (csv)."""
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    words = [f"paragraph{n} with some words" for n in range(200)]
    full = decode_attachment(mk.make_docx(words), docx, None, DecoderSettings(), TEXT_CHARS).text
    cut = decode_attachment(mk.make_docx(words), docx, None, DecoderSettings(), 100)
    assert len(full) > 1000 and cut.skipped is None and cut.text == full[:100]
    rows = "\n".join(f"{n},value{n}" for n in range(500)).encode()
    assert len(decode_attachment(rows, "text/csv", None, DecoderSettings(), 100).text) <= 100
