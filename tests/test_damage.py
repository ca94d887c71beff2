"""A damaged index is repaired on every path, and searches stay exact meanwhile: the corrupt-index table
(truncated, half-truncated and overwritten table files, a lock file that is not a file) and a full disk (a small
tmpfs the test mounts), each checked against the brute-force reference (tests/reference.py)."""

from __future__ import annotations

import os
import random
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ftsd import monitor, service
from ftsd.query import parse_query
from ftsd.runtime import Runtime
from ftsd.settings import Settings, load_settings
from ftsd.store.index import UserIndex
from tests.maildirs import MailDir
from tests.reference import ReferenceIndex

USER = "alice@example.org"
WORDS = ("pangolin quarterly widget harbour saffron lantern orbit velvet cobalt meadow tundra glacier "
         "ferret walnut").split()
QUERIES = ["BODY pangolin", "TEXT arbou", 'BODY "widget harbour"', "OR SUBJECT saffron BODY orbit",
           "NOT BODY velvet", "SUBJECT cobalt BODY meadow", "FROM sender2", "TEXT glacier"]


def _sound(settings: Settings) -> bool:
    """`ftsd check --deep` finds nothing wrong: no damage, no rebuild under way, nothing unindexed."""
    health = monitor.user_health(settings, service.get_user(settings, USER), deep=True)
    return (health.damaged, health.rebuilding, health.error, health.unindexed) == ("", "", "", 0)


def _fill(md: MailDir, count: int, seed: int = 3) -> None:
    rnd = random.Random(seed)
    for n in range(count):
        # every other message with an HTML alternative: a document keeps data (docdata.glass) only for
        # messages that are not plain text alone, and the docdata cases damage that table
        md.deliver("INBOX" if n % 3 else "Archive", subject=" ".join(rnd.sample(WORDS, 3)),
                   body=" ".join(rnd.choices(WORDS, k=40)) + f" {rnd.getrandbits(64):x}",
                   sender=f"sender{rnd.randint(0, 4)}@example.net",
                   html=f"<p>{' '.join(rnd.choices(WORDS, k=5))}</p>" if n % 2 else None)


def _exact(settings: Settings, reference: ReferenceIndex, *, autoindex: bool = False,
           runtime: Runtime | None = None) -> None:
    for text in QUERIES:
        node = parse_query(text)
        for result in service.search(settings, USER, ["*"], node, autoindex=autoindex, runtime=runtime):
            assert result.uids == reference.search(result.mailbox, node), (text, result.mailbox)


def _index(settings: Settings) -> UserIndex:
    rt = Runtime(settings)
    return service.user_index(settings, service.get_user(settings, USER), rt)


def _truncate(path: Path, half: bool) -> None:
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size // 2 if half else 0)


def _scribble(path: Path) -> None:
    with path.open("r+b") as f:
        f.seek(path.stat().st_size // 2)
        f.write(random.Random(7).randbytes(8192))


def _lock_dir(db: Path) -> None:
    (db / "flintlock").unlink()
    (db / "flintlock").mkdir()


def _table(how: Callable[[Path], None], table: str) -> Callable[[Path], None]:
    return lambda db: how(db / f"{table}.glass")


DAMAGE: dict[str, Callable[[Path], None]] = {"flintlock is a directory": _lock_dir}
for _name in ("postlist", "termlist", "docdata"):
    DAMAGE[f"{_name} truncated"] = _table(lambda f: _truncate(f, half=False), _name)
    DAMAGE[f"{_name} half-truncated"] = _table(lambda f: _truncate(f, half=True), _name)
    DAMAGE[f"{_name} scribbled"] = _table(_scribble, _name)


FAST = "postlist half-truncated"  # one row in the fast subset; the table runs whole in CI (slow)


@pytest.mark.parametrize("damage", [
    pytest.param(name, marks=() if name == FAST else pytest.mark.slow) for name in sorted(DAMAGE)])
def test_damaged_index_is_rebuilt_and_searches_stay_exact(
    damage: str, maildir: MailDir, make_config: Callable[..., Path],
) -> None:
    settings = load_settings(make_config(fts={"workers": 1, "autoindex_exclude": []}))
    _fill(maildir, 40)
    reference = ReferenceIndex(maildir.root)
    assert not service.index_users(settings, [USER]).failed
    index = _index(settings)
    DAMAGE[damage](index.path)

    _exact(settings, reference)  # searches and status find the damage, or never touch it: exact either way
    service.status(settings, USER)
    report = service.index_users(settings, [USER])
    assert not report.failed, report.failed
    assert _sound(settings)
    assert index.state() == "ok"
    rows = service.status(settings, USER)["mailboxes"]
    assert [row["indexed"] for row in rows] == [row["messages"] for row in rows]
    _exact(settings, reference)
    if damage != "flintlock is a directory":
        assert len(index.broken_copies()) == 1  # the damaged copy is kept for a post-mortem, only one


def test_damage_found_by_a_search_is_moved_aside_and_shown_by_status(
    maildir: MailDir, make_config: Callable[..., Path],
) -> None:
    settings = load_settings(make_config(fts={"workers": 1}))
    _fill(maildir, 40)
    service.index_users(settings, [USER])
    index = _index(settings)
    _truncate(index.path / "postlist.glass", half=True)
    _exact(settings, ReferenceIndex(maildir.root))  # a search reads the cut posting lists: the mail answers
    assert index.state() == "rebuilding"
    assert service.status(settings, USER)["index_state"] == "rebuilding"
    health = monitor.user_health(settings, service.get_user(settings, USER))  # `ftsd check` sees the same
    assert health.rebuilding and not health.damaged and health.unindexed == 40
    # the mail was delivered in 2024 but indexed until the damage: it lags since then, so check warns (rebuilding)
    assert health.oldest_s < 600, health
    assert monitor.evaluate([health], [], 3600, 86400, "", None).state == 1
    service.index_users(settings, [USER])
    assert index.state() == "ok" and service.status(settings, USER)["index_state"] == "ok"
    health = monitor.user_health(settings, service.get_user(settings, USER))
    assert not health.rebuilding and not health.damaged and health.unindexed == 0


def test_old_broken_copies_are_cleaned(tmp_path: Path, make_config: Callable[..., Path], maildir: MailDir) -> None:
    settings = load_settings(make_config())
    index = _index(settings)
    index.path.parent.mkdir(parents=True)
    for stamp in (1, 2, 3):
        (index.path.parent / f"ftsd.db.broken-{stamp}").mkdir()
    index.clean_broken()
    assert [p.name for p in index.broken_copies()] == ["ftsd.db.broken-3"]
    index.clean_broken(now=os.stat(index.path.parent / "ftsd.db.broken-3").st_mtime + 4 * 86400)
    assert index.broken_copies() == []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (needs root): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_disk_full_ends_in_one_clear_error_and_a_clean_retry(
    small_disk: Path, tmp_path: Path, make_config: Callable[..., Path],
) -> None:
    md = MailDir(tmp_path / "vmail" / "example.org" / "alice")
    _fill(md, 200)
    reference = ReferenceIndex(md.root)
    settings = load_settings(make_config(
        mail_location=f"maildir:{tmp_path}/vmail/%d/%n:INDEX={small_disk}/%d/%n",
        fts={"workers": 1, "commit_limit": 20, "autoindex_exclude": []}))
    report = service.index_users(settings, [USER])
    assert len(report.failed) == 1 and "disk full" in report.failed[0], report.failed
    assert "Traceback" not in report.failed[0] and str(small_disk) not in report.failed[0]
    _exact(settings, reference, autoindex=True)  # autoindex fails too: searches read the mail and stay exact

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    report = service.index_users(settings, [USER])
    assert not report.failed, report.failed
    rows = service.status(settings, USER)["mailboxes"]
    assert sum(row["indexed"] for row in rows) == 200  # nothing lost, nothing twice
    assert _sound(settings)
    _exact(settings, reference)
