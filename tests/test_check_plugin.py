"""`ftsd check` read the way Nagios/Icinga read a plugin (exit code, first line, perfdata syntax), run as a
monitoring user that may only read (group vmail, index_file_mode 0640), with a healthy, a lagging and a corrupt
user; it writes nothing."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import to_toml
from tests.maildirs import MailDir
from tests.mailusers import MAIL_USER, MONITOR_USER, ensure_user, ftsd, give, needs_root, private_base

pytestmark = needs_root
# monitoring-plugins guidelines: 'label'=value[UOM];[warn];[crit];[min];[max]
PERFDATA = re.compile(r"^'?[^'=]+'?=-?\d+(\.\d+)?(s|B|%|c)?(;(-?\d+(\.\d+)?)?){0,4}$")


@pytest.fixture(scope="module")
def site() -> Iterator[Path]:
    ensure_user(MAIL_USER)
    ensure_user(MONITOR_USER, groups=[MAIL_USER])
    for base in private_base("ftsd-check-"):
        for name in ("healthy", "lagging", "corrupt"):
            md = MailDir(base / "vmail" / "example.org" / name)
            md.deliver(subject="one", body="indexed mail")
            md.deliver("Trash", subject="trash", body="never counts")
        give(base / "vmail", MAIL_USER, 0o750, 0o640)
        (base / "index").mkdir()
        give(base / "index", MAIL_USER, 0o750, 0o640)
        cfg = base / "ftsd.toml"
        cfg.write_text(to_toml({
            "mail_location": f"maildir:{base}/vmail/%d/%n:INDEX={base}/index/%d/%n",
            "mail_uid": MAIL_USER, "index_file_mode": "0640",
            "fts": {"workers": 1},
            "server": {"socket": str(base / "ftsd.sock"), "state_dir": str(base / "state")},
        }))
        cfg.chmod(0o644)
        assert ftsd("-c", str(cfg), "index", "-A").returncode == 0
        # lagging: a message delivered just over two hours ago (not 7199 s: "119m"), not indexed (Dovecot names files
        # by delivery time)
        MailDir(base / "vmail" / "example.org" / "lagging", start_time=int(time.time()) - 7300).deliver(
            subject="late", body="waiting")
        give(base / "vmail", MAIL_USER, 0o750, 0o640)
        postlist = base / "index" / "example.org" / "corrupt" / "xapian-indexes" / "ftsd.db" / "postlist.glass"
        data = bytearray(postlist.read_bytes())
        for block in range(0, len(data), 8192):  # bytes flipped inside every block of the table
            data[block + 11: block + 523] = bytes(range(256)) * 2  # every block's item directory: always read
        postlist.write_bytes(bytes(data))
        yield base


def _plugin(site: Path, *args: str) -> tuple[int, str, list[str], list[str]]:
    """Run as the read-only monitoring user; returns (exit, status text, perfdata items, long-output lines)."""
    before = _snapshot(site)
    result = ftsd("--config", str(site / "ftsd.toml"), "check", *args, user=MONITOR_USER)
    assert _snapshot(site) == before  # read-only: nothing created, nothing touched
    assert "Traceback" not in result.stderr
    first, *rest = result.stdout.splitlines()
    text, _, perf = first.partition(" | ")
    items = perf.split()
    for item in items:
        assert PERFDATA.match(item), item
    return result.returncode, text, items, rest


def _snapshot(top: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, _, files in os.walk(top):
        for name in [dirpath, *(os.path.join(dirpath, f) for f in files)]:
            st = os.lstat(name)
            out[name] = (st.st_mtime_ns, st.st_size)
    return out


def test_healthy_user_is_ok(site: Path) -> None:
    code, text, perf, rest = _plugin(site, "-u", "healthy@example.org")
    assert code == 0 and text.startswith("FTSD OK - "), text
    assert "users=1;;" in perf and "unindexed=0" in perf and "lag_s=0s;3600;86400" in perf
    assert any(p.startswith("index_bytes=") and p.endswith("B") for p in perf)
    assert rest == []


def test_lagging_user_warns_by_its_oldest_unindexed_message(site: Path) -> None:
    code, text, perf, rest = _plugin(site, "-u", "healthy@example.org", "-u", "lagging@example.org")
    assert code == 1 and text.startswith("FTSD WARNING - 1 lagging (oldest unindexed 2h"), text
    lag = next(int(p.split("=")[1].split("s")[0]) for p in perf if p.startswith("lag_s="))
    assert 7100 < lag < 7400 and "unindexed=1" in perf
    assert rest and rest[0].startswith("lagging@example.org: 1 of 2 messages unindexed")
    code, text, _, _ = _plugin(site, "-u", "lagging@example.org", "-w", "600", "-c", "3600")
    assert code == 2 and text.startswith("FTSD CRITICAL")


def test_corrupt_user_is_critical_and_named(site: Path) -> None:
    code, text, perf, rest = _plugin(site, "-w", "3600", "-c", "86400", "--deep")  # every user (-A implied)
    assert code == 2 and text.startswith("FTSD CRITICAL - 1 damaged, 1 lagging"), (text, rest)
    assert "users=3;;" in perf
    damaged = [line for line in rest if line.startswith("corrupt@example.org: damaged index")]
    assert len(damaged) == 1 and "ftsd rescan -u corrupt@example.org" in damaged[0]
    # cheap mode reads only the metadata: this damage shows as mail that is not indexed, still CRITICAL
    code, text, _, _ = _plugin(site, "-u", "corrupt@example.org")
    assert code == 2 and text.startswith("FTSD CRITICAL")


def test_unknown_for_what_it_cannot_check(site: Path, tmp_path: Path) -> None:
    result = ftsd("--config", str(site / "missing.toml"), "check", user=MONITOR_USER)
    assert result.returncode == 3 and result.stdout.startswith("FTSD UNKNOWN - ")
    assert len(result.stdout.splitlines()) == 1
    result = ftsd("--config", str(site / "ftsd.toml"), "check", "-w", "x", user=MONITOR_USER)
    assert result.returncode == 3


def test_planted_links_and_fifos_are_not_lag(tmp_path: Path) -> None:
    """What the indexer never reads (a symlink, a FIFO in cur/) is not counted as unindexed mail."""
    from ftsd.monitor import _mailbox_files

    box = tmp_path / "box"
    for sub in ("cur", "new", "tmp"):
        (box / sub).mkdir(parents=True)
    (box / "cur" / "1.host:2,S").write_bytes(b"Subject: x\n\nbody\n")
    (box / "cur" / "2.host:2,S").symlink_to("/etc/hostname")
    os.mkfifo(box / "new" / "3.host")
    assert list(_mailbox_files(box)) == ["1.host"]
