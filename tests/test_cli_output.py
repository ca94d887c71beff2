"""What an admin sees: silence in cron, one progress bar for the whole run, log lines with timestamps (none
under journald, which stamps them itself)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from ftsd import runner
from ftsd.cli import _Bar, main
from ftsd.settings import load_settings
from tests.maildirs import MailDir

REPO = Path(__file__).resolve().parents[1]


def _mail(tmp_path: Path) -> None:
    for name, count in (("alice", 3), ("bob", 2)):
        md = MailDir(tmp_path / "vmail" / "example.org" / name)
        for i in range(count):
            md.deliver("INBOX" if i % 2 == 0 else "Work", subject=f"m{i}", body="text")


def _ftsd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ftsd", *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), **(env or {})}, check=False)


def test_cron_runs_are_silent_on_success(tmp_path: Path, make_config) -> None:
    _mail(tmp_path)
    cfg = str(make_config())
    for args in (["index", "-A"], ["optimize", "-A"]):
        result = _ftsd("-c", cfg, *args)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), args
    MailDir(tmp_path / "vmail" / "example.org" / "alice").deliver(raw=b"\xff" * 10, subject="x")
    result = _ftsd("-c", cfg, "index", "-u", "nobody@example.org", "-u", "alice@example.org")
    assert result.returncode == 1 and result.stdout == ""  # failures always printed, on stderr
    assert "nobody@example.org" in result.stderr and "2 users (1 failed)" in result.stderr


def test_log_lines_carry_time_user_counts_unless_journald(tmp_path: Path, make_config) -> None:
    _mail(tmp_path)
    cfg = str(make_config())
    result = _ftsd("-c", cfg, "-v", "index", "-A")
    lines = [line for line in result.stderr.splitlines() if "alice@example.org:" in line]
    stamped = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ftsd\[\d+\]: INFO: alice@example.org: "
    assert len(lines) == 3, result.stderr  # per mailbox (INBOX, Work), then the user's total
    assert re.match(stamped + r"INBOX: 2 indexed, 0 removed, 0 failed in \d+\.\ds$", lines[0]), lines
    assert re.match(stamped + r"3 indexed, 0 removed, 0 failed in \d+\.\ds$", lines[2]), lines
    assert "users" in result.stdout  # -v: the summary too
    _mail(tmp_path / "more")
    result = _ftsd("-c", cfg, "-v", "rescan", "-A", env={"JOURNAL_STREAM": "8:1234"})
    lines = [line for line in result.stderr.splitlines() if "alice@example.org:" in line]
    assert lines == ["INFO: alice@example.org: 0 indexed, 0 removed, 0 failed in 0.0s"] or \
        lines[0].startswith("INFO: alice@example.org: 0 indexed"), result.stderr


def test_one_bar_with_the_total_known_before_the_first_message(tmp_path: Path, make_config) -> None:
    _mail(tmp_path)
    settings = load_settings(make_config())
    events: list[tuple[Any, ...]] = []
    report = runner.index(settings, ["alice@example.org", "bob@example.org"], [], prune=False,
                          on_event=events.append)
    assert report.indexed == 5
    assert events[0] == ("total", 5)  # counted up front, over every user
    assert [e[1] for e in events if e[0] == "user"] == ["alice@example.org", "bob@example.org"]
    assert sum(e[1] for e in events if e[0] == "done") == 5
    bar = _Bar(True, users=2)
    for event in events[:2]:
        bar(event)
    assert bar.bar.total == 5 and bar.bar.desc == "alice@example.org (user 1/2)"
    for event in events[2:]:
        bar(event)
    assert bar.bar.n == 5 and bar.bar.desc == "bob@example.org (user 2/2)"
    bar.close()


def test_check_says_when_the_configured_service_does_not_answer(tmp_path: Path, make_config, capsys) -> None:
    _mail(tmp_path)
    cfg = str(make_config())
    assert main(["-c", cfg, "index", "-A"]) == 0
    assert main(["-c", cfg, "check"]) == 0
    assert capsys.readouterr().out.startswith("FTSD OK - 2 users, 5 messages indexed")
    (tmp_path / "ftsd.sock").touch()  # the service's socket is there, nobody answers on it
    assert main(["-c", cfg, "check"]) == 1
    assert capsys.readouterr().out.startswith("FTSD WARNING - service not answering on ")
    assert main(["-c", cfg, "check", "--no-service"]) == 0


def test_index_files_private_whatever_the_umask_and_the_callers_umask_kept(tmp_path: Path, make_config) -> None:
    _mail(tmp_path)
    cfg = str(make_config(index_file_mode="0640"))
    old = os.umask(0o002)
    try:
        assert main(["-c", cfg, "index", "-A"]) == 0
        assert main(["-c", cfg, "optimize", "-A"]) == 0
        assert os.umask(0o002) == 0o002  # main() put the caller's umask back
    finally:
        os.umask(old)
    for path in (tmp_path / "index").rglob("*"):
        assert path.stat().st_mode & 0o777 == (0o750 if path.is_dir() else 0o640), path
