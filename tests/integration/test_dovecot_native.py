"""ftsd against Dovecot's own search: a private Dovecot 2.3 WITHOUT any FTS plugin (it scans every message for
`UID SEARCH`) over a Maildir of real mail from both corpora, with the UIDs Dovecot assigned (its
dovecot-uidlist), and ftsd indexing that same Maildir. A seeded set of keys of every kind (tests/querygen.py)
goes through both; every message on which they disagree must fall into a documented category
(tests/integration/dovecot_view.py, docs/search-differences.md "Dovecot's own search").

Needs `dovecot-imapd` (missing: the test FAILS) and the two corpora in ../shared/corpus.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftsd import service
from ftsd.query import Key, Node, format_query
from ftsd.settings import Settings, load_settings
from tests.conftest import REPO, to_toml
from tests.integration.dovecot import Dovecot
from tests.integration.dovecot_view import CATEGORIES, DovecotView, dovecot_view, explain
from tests.integration.imap import ImapSearch
from tests.querygen import generate_queries, iter_keys
from tests.reference import ReferenceIndex, assign_uids

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

OPENBMC = REPO.parent / "shared" / "corpus" / "openbmc-2024" / "openbmc-2024.maildir.tar.zst"
SPAMASSASSIN_FOLDERS = ("", ".easy_ham_2", ".hard_ham", ".hard_ham_2", ".spam", ".spam_2")
PER_FOLDER = 15  # x 6 SpamAssassin folders
OPENBMC_MESSAGES = 60
QUERIES = 80
SEED = 1


def _sample(folder: Path, n: int) -> list[Path]:
    return random.Random(SEED).sample(sorted((folder / "cur").iterdir()), n)


@pytest.fixture(scope="module")
def openbmc_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The openbmc corpus Maildir; $FTSD_CORPUS_OPENBMC may name the archive or an extracted directory."""
    source = Path(os.environ.get("FTSD_CORPUS_OPENBMC", OPENBMC))
    if source.is_dir():
        return source / "corpus-openbmc" if (source / "corpus-openbmc").is_dir() else source
    if not source.is_file():
        pytest.fail(f"corpus archive not found: {source} (or set FTSD_CORPUS_OPENBMC)")
    dest = tmp_path_factory.mktemp("openbmc")
    subprocess.run(["tar", "-I", "zstd", "-xf", str(source), "-C", str(dest)], check=True)
    return dest / "corpus-openbmc"


class Pair:
    """Dovecot (no FTS) and ftsd over one Maildir, user `mixed`."""

    def __init__(self, root: Path, messages: list[Path]) -> None:
        self.dovecot = Dovecot(root / "dovecot", {}, mail_plugins="")
        self.dovecot.add_user("mixed", messages)
        self.dovecot.start()
        self.imap = ImapSearch(self.dovecot.imap("mixed"))  # the first SELECT writes dovecot-uidlist
        cfg = root / "ftsd.toml"
        cfg.write_text(to_toml({
            "mail_location": f"maildir:{root}/dovecot/mail/%u:INDEX={root}/ftsd-index/%u",
            "userdb": {"driver": "static"},
            "fts": {"autoindex_exclude": []},
            "server": {"socket": "", "state_dir": str(root / "ftsd-state")},
        }))
        self.settings: Settings = load_settings(cfg)
        report = service.index_users(self.settings, ["mixed"])
        assert report.failed == [], report.failed[:3]
        self._views: dict[int, DovecotView] = {}
        self._paths = dict(assign_uids(self.dovecot.maildir("mixed")))  # by dovecot-uidlist
        self._dovecot: dict[Node, list[int]] = {}

    def dovecot_uids(self, node: Node) -> list[int]:
        if node not in self._dovecot:
            self._dovecot[node] = self.imap.uids(node)
        return self._dovecot[node]

    def ftsd_uids(self, node: Node) -> list[int]:
        return service.search(self.settings, "mixed", ["INBOX"], node, autoindex=False)[0].uids

    def view(self, uid: int) -> DovecotView:
        if uid not in self._views:
            self._views[uid] = dovecot_view(self._paths[uid].read_bytes())
        return self._views[uid]

    def close(self) -> None:
        self.imap.close()
        self.dovecot.stop()


@pytest.fixture(scope="module")
def pair(corpus_dir: Path, openbmc_dir: Path) -> Iterator[Pair]:
    root = Path(tempfile.mkdtemp(prefix="ftsd-native-"))
    root.chmod(0o755)  # Dovecot's mail uid (nobody under root) must reach the Maildir
    messages = [p for f in SPAMASSASSIN_FOLDERS for p in _sample(corpus_dir / f if f else corpus_dir, PER_FOLDER)]
    messages += _sample(openbmc_dir, OPENBMC_MESSAGES)
    p = None
    try:
        p = Pair(root, messages)
        yield p
    finally:
        if p is not None:
            p.close()
        shutil.rmtree(root, ignore_errors=True)


def test_uids_are_dovecots(pair: Pair) -> None:
    everything = pair.dovecot_uids(Key("text", ""))
    assert len(everything) == len(SPAMASSASSIN_FOLDERS) * PER_FOLDER + OPENBMC_MESSAGES
    assert pair.ftsd_uids(Key("text", "")) == everything


def test_every_difference_is_documented(pair: Pair) -> None:
    queries = generate_queries(ReferenceIndex(pair.dovecot.maildir("mixed")), seed=SEED, n=QUERIES)
    seen: Counter[str] = Counter()
    unexplained = []
    for category, node in queries:
        dovecot, ftsd = set(pair.dovecot_uids(node)), set(pair.ftsd_uids(node))
        if dovecot == ftsd:
            continue
        leaves = [k for k in dict.fromkeys(iter_keys(node))]
        for uid in sorted(dovecot ^ ftsd):
            reasons = []
            for key in leaves:
                d = uid in pair.dovecot_uids(key) if key != node else uid in dovecot
                f = uid in pair.ftsd_uids(key) if key != node else uid in ftsd
                if d != f:
                    reasons.append(explain(key, pair.view(uid), d))
            if not reasons or None in reasons:
                unexplained.append(f"{category}: {format_query(node)}: UID {uid} "
                                   f"{'Dovecot' if uid in dovecot else 'ftsd'} only ({reasons})")
            seen.update(r for r in reasons if r)
    print(f"{len(queries)} queries; differences by category: {dict(seen)}")
    assert set(seen) <= set(CATEGORIES)
    assert not unexplained, "\n".join(unexplained)
