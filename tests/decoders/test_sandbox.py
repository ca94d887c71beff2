"""The sandbox: limits hold for built-in decoders too, a dead fork server is replaced by its owner, parts are
decoded at once, and the server lives in a private directory and no longer than its owner."""

from __future__ import annotations

import faulthandler
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ftsd.decoders import decode_attachment, sandbox
from ftsd.settings import DecoderSettings, FtsSettings, Settings
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


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture
def owner() -> Iterator[sandbox.DecoderSandbox]:
    with sandbox.DecoderSandbox() as own:
        yield own


def _bound(owner: sandbox.DecoderSandbox, **limits: Any) -> DecoderSettings:
    return owner.bind(Settings(decoders=DecoderSettings(**limits))).decoders


def _server(owner: sandbox.DecoderSandbox) -> subprocess.Popen[bytes]:
    proc = owner.running()
    assert proc is not None
    return proc


def test_a_killed_fork_server_is_restarted_by_its_owner(owner: sandbox.DecoderSandbox) -> None:
    data = mk.make_docx(["restartword"])
    limits = _bound(owner)
    assert owner.running() is None  # nothing decoded yet: no server
    assert "restartword" in decode_attachment(data, DOCX, None, limits, TEXT_CHARS).text
    proc = _server(owner)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # the next part waits on the same socket until the owner has started another server
    assert "restartword" in decode_attachment(data, DOCX, None, limits, TEXT_CHARS).text
    assert _server(owner) is not proc


def test_the_socket_is_in_a_private_directory_and_gone_after_close(owner: sandbox.DecoderSandbox) -> None:
    path = Path(_bound(owner).sandbox)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700 and path.is_socket()
    assert decode_attachment(mk.make_docx(["x"]), DOCX, None, _bound(owner), TEXT_CHARS).skipped is None
    proc = _server(owner)
    owner.close()
    assert proc.returncode is not None and not path.parent.exists()


def test_the_server_exits_when_its_owner_is_killed(tmp_path: Path) -> None:
    script = ("import sys, time\nfrom ftsd.decoders.sandbox import DecoderSandbox\nown = DecoderSandbox()\n"
              "from tests.decoders.makedocs import make_docx\nfrom ftsd.settings import DecoderSettings\n"
              "from ftsd.decoders import decode_attachment\nfrom dataclasses import replace\n"
              f"decode_attachment(make_docx(['x']), {DOCX!r}, None, DecoderSettings(sandbox=own.address()), 99)\n"
              "print(own.running().pid, own.address(), flush=True)\ntime.sleep(60)\n")
    root = Path(__file__).parents[2]
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=root) as owner:
        assert owner.stdout is not None
        pid, path = owner.stdout.readline().split()
        server = int(pid)
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{server}").exists() and b"ftsd.decoders.sandbox" in Path(f"/proc/{server}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "the decoder server outlived its owner"
        time.sleep(0.05)
    assert not Path(path.decode()).parent.exists()  # and took its private directory along


def test_a_directory_left_by_a_killed_owner_is_removed_by_the_next(tmp_path: Path) -> None:
    # killed before any part came: no server ran to remove the directory (SIGKILL runs no finalizer)
    script = ("from ftsd.decoders.sandbox import DecoderSandbox\nown = DecoderSandbox()\n"
              "print(own.address(), flush=True)\ninput()\n")
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    root = Path(__file__).parents[2]
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stdin=subprocess.PIPE, cwd=root,
                          env=env) as owner:
        assert owner.stdout is not None
        left = Path(owner.stdout.readline().decode().strip()).parent
        owner.kill()
    assert left.is_dir() and left.parent == tmp_path
    alive = tmp_path / f"ftsd-decoders-{os.getpid()}-live"  # an owner still running: kept
    other = tmp_path / "ftsd-decoders-notapid"  # not a name this code makes: kept
    alive.mkdir()
    other.mkdir()
    sandbox._sweep_stale(str(tmp_path))
    assert not left.exists() and alive.is_dir() and other.is_dir()


def test_parts_are_decoded_at_once_while_one_hangs(owner: sandbox.DecoderSandbox) -> None:
    """One connection per part: a part stuck until its timeout does not hold up the others."""
    limits = _bound(owner, command="sh -c 'sleep 30'", command_types=["application/x-slow"], timeout_s=3)
    data = mk.make_docx(["concurrentword"])
    with ThreadPoolExecutor(1) as slow:
        stuck = slow.submit(decode_attachment, b"x", "application/x-slow", None, limits, TEXT_CHARS)
        time.sleep(0.2)
        assert "concurrentword" in decode_attachment(data, DOCX, None, limits, TEXT_CHARS).text
        assert not stuck.done()
        assert stuck.result().skipped == "timeout after 3s"


def test_fork_server_loads_a_library_once_when_a_part_first_needs_it(owner: sandbox.DecoderSandbox) -> None:
    """Each part is decoded in a child forked from the server, so a library must be loaded there before the child
    is forked (importing pypdfium2 per part would cost ~100 ms; bench/bench_decoders.py measures the overhead) --
    but only once a part needs it: a library no part needs costs the server and its children no memory."""
    data = mk.make_docx(["tiny"])
    assert decode_attachment(data, DOCX, None, _bound(owner), TEXT_CHARS).text.strip() == "tiny"
    maps = Path(f"/proc/{_server(owner).pid}/maps")
    assert "pdfium" not in maps.read_text()  # only a docx was decoded
    pdf = mk.make_pdf(["pdfword"])
    assert "pdfword" in decode_attachment(pdf, "application/pdf", None, _bound(owner), TEXT_CHARS).text
    assert "pdfium" in maps.read_text()  # loaded in the server: the next PDF's child inherits it


def test_text_is_cut_at_max_text_chars_in_the_sandbox_and_here() -> None:
    """One limit, fts.max_text_chars, passed down: a sandboxed decoder (docx) and an in-process one (csv)."""
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    words = [f"paragraph{n} with some words" for n in range(200)]
    full = decode_attachment(mk.make_docx(words), docx, None, DecoderSettings(), TEXT_CHARS).text
    cut = decode_attachment(mk.make_docx(words), docx, None, DecoderSettings(), 100)
    assert len(full) > 1000 and cut.skipped is None and cut.text == full[:100]
    rows = "\n".join(f"{n},value{n}" for n in range(500)).encode()
    assert len(decode_attachment(rows, "text/csv", None, DecoderSettings(), 100).text) <= 100


def test_a_sandbox_run_apart_is_used_as_configured(tmp_path: Path) -> None:
    """decoders.sandbox names a server started apart (`--listen PATH`): bind() keeps it, parts go there."""
    path = tmp_path / "decoders.sock"
    root = Path(__file__).parents[2]
    with subprocess.Popen([sys.executable, "-m", "ftsd.decoders.sandbox", "--listen", str(path)], cwd=root) as apart:
        try:
            deadline = time.monotonic() + 30
            while not path.exists():
                assert time.monotonic() < deadline and apart.poll() is None
                time.sleep(0.05)
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0  # this user's only
            with sandbox.DecoderSandbox() as owner:
                settings = Settings(decoders=DecoderSettings(sandbox=str(path)))
                assert owner.bind(settings) is settings and owner.running() is None
            text = decode_attachment(mk.make_docx(["apartword"]), DOCX, None, settings.decoders, TEXT_CHARS).text
            assert "apartword" in text
        finally:
            apart.kill()


def test_no_socket_no_failure(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A socket path the kernel refuses (too long) costs speed, not the run: parts are forked from the caller."""
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    monkeypatch.setenv("TMPDIR", str(deep))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches TMPDIR
    settings = Settings()
    with sandbox.DecoderSandbox() as owner:
        assert owner.bind(settings) is settings
    assert "tinyword" in decode_attachment(mk.make_docx(["tinyword"]), DOCX, None, settings.decoders, TEXT_CHARS).text
    assert list(deep.iterdir()) == []  # nothing left behind


def test_a_server_that_cannot_start_is_not_respawned_in_a_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken install (the server exits at once): parts are skipped with the reason, quickly, and no loop."""
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the interpreter the server is started with
    with sandbox.DecoderSandbox() as owner:
        limits = _bound(owner)
        started = time.monotonic()
        first = decode_attachment(mk.make_docx(["x"]), DOCX, None, limits, TEXT_CHARS)
        second = decode_attachment(mk.make_docx(["x"]), DOCX, None, limits, TEXT_CHARS)
        assert time.monotonic() - started < 10
    assert first.skipped is not None and second.skipped is not None
    assert "exits at start (status 1)" in second.skipped
