"""The SpamAssassin corpus (6,262 real messages, 6 folders): indexed once per session (the corpus_index fixture),
then a copy of mail + index is re-run and 10 messages are expunged."""

import random
import shutil
from pathlib import Path

from ftsd import service
from ftsd.settings import load_settings
from tests.conftest import to_toml


def test_corpus_index_rerun_and_expunge(corpus_index, corpus_dir: Path, corpus_work: Path, tmp_path: Path):
    _, user = corpus_index
    mail = tmp_path / "mail" / user
    shutil.copytree(corpus_dir, mail)
    shutil.copytree(corpus_work / "index" / user, tmp_path / "index" / user)
    cfg = tmp_path / "ftsd.toml"
    cfg.write_text(to_toml({"mail_location": f"maildir:{tmp_path}/mail/%u:INDEX={tmp_path}/index/%u",
                            "fts": {"autoindex_exclude": []}}))
    settings = load_settings(cfg)
    rows = service.status(settings, user)["mailboxes"]
    assert (len(rows), sum(r["indexed"] for r in rows)) == (6, 6262)  # the session's first run: everything
    second = service.index_users(settings, all_users=True)
    assert (second.indexed, second.removed, second.failed) == (0, 0, [])
    files = sorted(p for p in mail.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))
    doomed = random.Random(7).sample(files, 10)
    for path in doomed:
        path.unlink()
    third = service.index_users(settings, all_users=True)
    assert (third.indexed, third.removed, third.failed) == (0, 10, [])
    rows = service.status(settings, user)["mailboxes"]
    assert sum(r["indexed"] for r in rows) == 6252 == sum(r["messages"] for r in rows)
