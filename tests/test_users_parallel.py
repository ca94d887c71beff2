"""-A over many users at once (fts.users_parallel): the same indexes and answers as one user after the other,
a failing user costs only itself."""

from __future__ import annotations

from pathlib import Path

from ftsd import service
from ftsd.query import parse_query
from ftsd.settings import settings_from_dict
from tests.maildirs import MailDir

USERS = [f"u{i:02d}" for i in range(12)]


def _make(root: Path) -> None:
    for i, name in enumerate(USERS):
        md = MailDir(root / "vmail" / name)
        for j in range(i % 4 + 1):
            md.deliver("INBOX", subject=f"report {name} {j}", body=f"quarterly numbers {j} for {name}")
        if i % 3 == 0:
            md.deliver("Sent", subject="reply", body=f"sent by {name}")


def _settings(root: Path, parallel: int):
    return settings_from_dict({"mail_location": f"maildir:{root}/vmail/%u:INDEX={root}/idx/%u",
                               "fts": {"workers": 2, "users_parallel": parallel}})


def _answers(settings) -> dict[str, list[list[int]]]:
    query = parse_query("OR BODY quarterly BODY sent")
    return {name: [r.uids for r in service.search(settings, name, ["*"], query, autoindex=False)] for name in USERS}


def test_parallel_users_index_like_one_by_one(tmp_path: Path):
    one, many = tmp_path / "one", tmp_path / "many"
    _make(one)
    _make(many)
    (many / "vmail" / "broken").mkdir(parents=True)  # listed by the static userdb, but no Maildir++ inside
    serial = service.index_users(_settings(one, 1), USERS)
    parallel = service.index_users(_settings(many, 4), all_users=True)
    assert (parallel.indexed, parallel.mailboxes) == (serial.indexed, serial.mailboxes) == (34, 16)
    assert parallel.users == serial.users == len(USERS)
    assert [f.split(":")[0] for f in parallel.failed] == ["broken"] and not serial.failed
    assert _answers(_settings(many, 4)) == _answers(_settings(one, 1))
    assert all(hits for boxes in _answers(_settings(many, 4)).values() for hits in boxes[:1])
    again = service.index_users(_settings(many, 4), all_users=True)  # a no-op run, in parallel
    assert again.indexed == 0 and again.users == len(USERS)


def test_parallel_optimize_keeps_the_order_of_users(tmp_path: Path):
    _make(tmp_path)
    settings = _settings(tmp_path, 4)
    service.index_users(settings, all_users=True)
    results = service.optimize_users(settings, all_users=True)
    assert [r.user for r in results] == USERS and all(r.error is None and r.bytes_after > 0 for r in results)
