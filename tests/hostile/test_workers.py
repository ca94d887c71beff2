"""Indexer workers: they exit when their parent dies (kill -9 of `ftsd index`, or of a service using the fork
server), and a message that needs more memory than fts.worker_memory_mb costs only itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ftsd import service
from ftsd.query import parse_query
from ftsd.settings import load_settings
from tests.maildirs import MailDir

REPO = Path(__file__).resolve().parents[2]
ALICE = "alice@example.org"
SLOW = "import sys, time\nsys.stdin.buffer.read()\ntime.sleep(60)\n"


def children(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry))
    return out


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(check, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return bool(check())


@pytest.fixture
def slow_config(maildir: MailDir, make_config, tmp_path: Path):
    """Two workers, each stuck in a decoder for a minute: the run lasts long enough to be killed."""
    script = tmp_path / "slow.py"
    script.write_text(SLOW)
    for i in range(8):  # two chunks: both workers busy (the fork server starts them on demand)
        maildir.deliver(subject=f"slow {i}", attachments=[("s.bin", "application/x-slow", b"x")])
    return make_config(fts={"workers": 2}, decoders={"command": f"{sys.executable} {script}",
                                                     "command_types": ["application/x-slow"], "timeout_s": 60})


def _kill_and_watch(main: subprocess.Popen[bytes], expected_workers: int, pick) -> None:
    try:
        assert wait_for(lambda: len(pick()) >= expected_workers, 30), "workers did not start"
        workers = pick()
        main.send_signal(signal.SIGKILL)
        main.wait(10)
        assert wait_for(lambda: not any(alive(w) for w in workers), 5), "workers outlived their parent"
    finally:
        if main.poll() is None:
            main.kill()


@pytest.mark.slow
def test_kill_9_of_ftsd_index_takes_its_workers(slow_config: Path):
    main = subprocess.Popen([sys.executable, "-m", "ftsd", "index", "-c", str(slow_config), "-A"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_and_watch(main, 2, lambda: children(main.pid))


@pytest.mark.slow
def test_kill_9_of_a_forkserver_parent_takes_its_workers(slow_config: Path):
    code = textwrap.dedent(f"""
        from ftsd import service
        from ftsd.indexer.pool import WorkerOptions
        from ftsd.runtime import Runtime
        from ftsd.settings import load_settings
        settings = load_settings({str(slow_config)!r})
        rt = Runtime(settings, WorkerOptions(start_method="forkserver"))
        service.index_users(settings, all_users=True, runtime=rt)
    """)
    main = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def workers() -> set[int]:  # the fork server's children
        return {w for server in children(main.pid) for w in children(server)}

    _kill_and_watch(main, 2, workers)


def test_a_message_over_the_worker_memory_limit_costs_only_itself(maildir: MailDir, make_config):
    settings = load_settings(make_config(fts={"workers": 2, "worker_memory_mb": 150}))
    normal = [maildir.deliver(subject=f"normal {i}", body=f"fine{i}") for i in range(5)]
    # 60 MB of text (under fts.max_message_bytes): parsing it needs several times the 150 MB allowed
    big = maildir.deliver(raw=b"Subject: bigtoken\nContent-Type: text/plain\n\n" + b"memoryhog " * 6_000_000)
    report = service.index_users(settings, [ALICE])
    assert report.failed == [] and report.indexed == len(normal) + 1 and report.partial == 1
    found = service.search(settings, ALICE, ["INBOX"], parse_query("SUBJECT bigtoken"))[0].uids
    assert found == [big]
    assert service.search(settings, ALICE, ["INBOX"], parse_query("BODY fine"))[0].uids == normal
