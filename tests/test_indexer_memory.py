"""What the indexer's processes hold: forked workers share (and each count in its RSS) the pages their parent had
at the fork, so they start before the parent scans the mailboxes; a scan keeps each message's file as a str."""

from __future__ import annotations

import multiprocessing
import tracemalloc
from pathlib import Path

import pytest

from ftsd import runner
from ftsd.maildir import scan_mailbox
from ftsd.settings import load_settings
from tests.maildirs import MailDir


def test_workers_start_before_the_mailboxes_are_scanned(tmp_path: Path, make_config,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    md = MailDir(tmp_path / "vmail" / "example.org" / "alice")
    for i in range(3):
        md.deliver(subject=f"m{i}", body="text")
    settings = load_settings(make_config(fts={"workers": 2}))
    seen = tmp_path / "children-at-scan"
    counted = runner.pending_messages

    def pending(*args: object) -> int:  # the real count; notes how many worker processes exist by then
        seen.write_text(str(len(multiprocessing.active_children())))
        return counted(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "pending_messages", pending)
    report = runner.index(settings, ["alice@example.org"], [], prune=False, on_event=lambda _: None)
    assert report.indexed == 3
    assert int(seen.read_text()) >= 2  # both workers were forked before the scan (their parent was small)


def test_a_scan_holds_little_per_message(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True)
    names = [f"{1700000000 + n}.M{n}P1000.host,S=100,W=102:2,S" for n in range(3000)]
    for name in names:
        (root / "cur" / name).touch()
    tracemalloc.start()
    try:
        box = scan_mailbox(root, "INBOX", tmp_path / "state")  # ftsd's own UIDs: no dovecot-uidlist here
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(box.messages) == 3000 and all(isinstance(p, str) for p in box.messages.values())
    assert Path(box.messages[1]).read_bytes() == b""
    # the path string and its dict slot (~230 bytes here); a pathlib.Path each was ~600 (36 MB per 100k messages)
    assert held / len(names) < 400, held / len(names)
