"""Three `ftsd serve` nodes on one PostgreSQL and one index directory, killed with SIGKILL at random moments
(seeded) and restarted while `index -A -q` of 300 users runs; PostgreSQL itself restarted once in the middle.

At the end: every job done, every user's index equal to a single-node index of the same mail (same documents
with the same terms, same UIDs per mailbox, no duplicates), no two lease holders of one user at any time in the
lease log (a holder killed without a release line holds until the SIGKILL), and every search sent
to a random node during the run answered exactly (tests/reference.py)."""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
import xapian

from ftsd import service
from ftsd.cli import main
from ftsd.query import parse_argv
from ftsd.settings import Settings, load_settings
from ftsd.store import schema
from ftsd.store.index import index_path
from tests.cluster.nodes import DOMAIN, REPO, WORDS, Node, deliver_random, make_users, wait_idle
from tests.maildirs import MailDir
from tests.reference import ReferenceIndex

pytestmark = pytest.mark.slow

SEED = 20261127
USERS = 300
MIN_KILLS = 20


@pytest.fixture
def shm_path(tmp_path):
    """A temp dir in memory where there is one: fsync (3 per new user index) then costs nothing."""
    if not Path("/dev/shm").is_dir():
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="ftsd-kill-", dir="/dev/shm"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_nodes_killed_during_index_all(shm_path, postgres, dsn):
    tmp_path = shm_path
    rng = random.Random(SEED)
    vmail = tmp_path / "vmail"
    t0 = time.monotonic()
    users = make_users(vmail, USERS, seed=SEED, per_user=3)
    print(f"mail made in {time.monotonic() - t0:.1f}s")
    nodes = [Node.make(tmp_path, f"n{i}", dsn) for i in (1, 2, 3)]
    for n in nodes:
        n.start()
    single = _single_node_index(tmp_path, nodes[0].config)  # the reference run, beside the cluster's
    for n in nodes:
        n.ready()
    print(f"nodes ready at {time.monotonic() - t0:.1f}s")
    searches = _Searches(nodes, vmail, users, random.Random(SEED + 1))
    searches.start()
    kills, restarted_pg, waves = 0, False, 0
    started = time.monotonic()
    try:
        assert main(["index", "-A", "-q", "-c", str(nodes[0].config)]) == 0
        while kills < MIN_KILLS or not restarted_pg or _busy(dsn):
            assert time.monotonic() - started < 180, f"run too long: {kills} kills, {waves} waves"
            time.sleep(rng.uniform(0.3, 1.2))
            if kills == MIN_KILLS // 2 and not restarted_pg:
                postgres.restart()  # every session (and lease) ends; nodes reconnect
                restarted_pg = True
            if kills < MIN_KILLS:
                victim = rng.choice(nodes)
                victim.kill()
                kills += 1
                victim.start()
            if kills < MIN_KILLS and not _busy(dsn):  # keep work in flight while nodes die: new mail arrives
                waves += 1
                for user in rng.sample(users, 30):
                    deliver_random(MailDir(vmail / DOMAIN / user.split("@")[0]), rng, mailbox="Archive")
                assert main(["index", "-A", "-q", "-c", str(nodes[0].config)]) == 0
        for n in nodes:
            if not n.alive():
                n.start()
        for n in nodes:
            n.ready()
        wait_idle(nodes[0].url(), 90)
    finally:
        searches.stop()
        for n in nodes:
            n.stop()
    print(f"{kills} kills, {waves} waves, {searches.answered} searches in {time.monotonic() - started:.1f}s")
    print(f"stopped at {time.monotonic() - started:.1f}s")
    assert kills >= MIN_KILLS and restarted_pg
    assert not searches.wrong, searches.wrong[:3]
    assert not searches.errors, searches.errors[:3]
    assert searches.answered >= 30, searches.answered
    _check_jobs(dsn)
    _check_leases(tmp_path / "leases.log", nodes)
    print(f"leases checked at {time.monotonic() - started:.1f}s")
    assert single.wait(timeout=120) == 0
    print(f"single-node index ready at {time.monotonic() - started:.1f}s")
    _check_indexes(tmp_path, nodes[0].config, users)
    print(f"indexes checked at {time.monotonic() - started:.1f}s")


def _busy(dsn: str) -> bool:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=5) as conn:
        row = conn.execute("SELECT count(*) FROM ftsd_jobs WHERE state IN ('queued', 'running')").fetchone()
        return bool(row and row[0])


def _check_jobs(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn) as conn:
        states: dict[str, int] = dict(conn.execute("SELECT state, count(*) FROM ftsd_jobs GROUP BY state").fetchall())
        failed = conn.execute("SELECT kind, username, error FROM ftsd_jobs WHERE state <> 'done' LIMIT 3").fetchall()
    assert set(states) == {"done"}, (states, failed)


def _check_leases(path: Path, nodes: list[Node]) -> None:
    """Intervals [grant, release|lost|SIGKILL of the holder] of one user never overlap."""
    died = {f"{n.name}-{pid}": end for n in nodes for pid, _, end in n.lives}
    opened: dict[tuple[str, str], float] = {}
    spans: dict[str, list[tuple[float, float, str]]] = defaultdict(list)  # (start, end, "holder ended-by")
    lines = path.read_text().splitlines()
    for line in lines:
        stamp, holder, event, user = line.split(" ", 3)
        if event == "grant":
            assert (holder, user) not in opened, line
            opened[holder, user] = float(stamp)
        else:
            spans[user].append((opened.pop((holder, user)), float(stamp), f"{holder} ({event})"))
    for (holder, user), at in opened.items():  # killed while holding
        spans[user].append((at, died[holder], f"{holder} (killed)"))
    for user, intervals in spans.items():
        intervals.sort()
        end, holder = intervals[0][1], intervals[0][2]
        for start, stop, who in intervals[1:]:
            assert start >= end, f"{user}: {who} granted at {start:.3f} while {holder} held it until {end:.3f}"
            if stop > end:
                end, holder = stop, who
    assert sum(1 for line in lines if " grant " in line) >= USERS


def _single_node_settings(config: Path) -> Settings:
    cluster = load_settings(config)
    return dataclasses.replace(cluster, mail_location=cluster.mail_location.replace("/index/", "/single/"),
                               cluster=dataclasses.replace(cluster.cluster, dsn=""))


def _single_node_index(tmp_path: Path, config: Path) -> subprocess.Popen[bytes]:
    """`ftsd index -A` of the initial mail into <tmp>/single, in its own process (the second core)."""
    single = tmp_path / "single.toml"
    text = config.read_text().replace("/index/", "/single/")
    single.write_text(text[:text.index("[cluster]")])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(tmp_path / "single.log", "wb") as log:
        return subprocess.Popen([sys.executable, "-m", "ftsd", "index", "-A", "-c", str(single)], env=env,
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)


def _check_indexes(tmp_path: Path, config: Path, users: list[str]) -> None:
    cluster = load_settings(config)
    single = _single_node_settings(config)
    report = service.index_users(single, all_users=True)  # the mail delivered during the run
    assert not report.failed and report.users == len(users)
    for user in users:
        got = _documents(index_path(service.get_user(cluster, user)))
        want = _documents(index_path(service.get_user(single, user)))
        assert got == want, user


def _documents(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, ...]]]:
    """(mailbox metadata, id term -> terms) of an index; an id term on two documents is a duplicate."""
    db = xapian.Database(str(path))
    docs: dict[str, tuple[str, ...]] = {}
    for item in db.allterms(schema.ID_PREFIX):
        term = item.term.decode()
        assert db.get_termfreq(term) == 1, f"{path}: {term} on {db.get_termfreq(term)} documents"
        doc = db.get_document(next(iter(db.postlist(term))).docid)
        docs[term] = tuple(t.term.decode() for t in doc.termlist())
    assert db.get_doccount() == len(docs)
    meta = {guid: {k: v for k, v in m.items()} for guid, m in schema.mailbox_metadata(db).items()}
    db.close()
    return meta, docs


class _Searches(threading.Thread):
    """Searches of INBOX/Sent (never changed during the run) sent to random nodes, checked against the reference."""

    def __init__(self, nodes: list[Node], vmail: Path, users: list[str], rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.nodes, self.vmail, self.users, self.rng = nodes, vmail, users, rng
        self.answered = 0
        self.wrong: list[tuple[str, str, str, list[int], list[int]]] = []
        self.errors: list[str] = []
        self._done = threading.Event()
        self._refs: dict[str, ReferenceIndex] = {}

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=30)

    def run(self) -> None:
        with httpx.Client(timeout=20) as client:
            while not self._done.wait(0.05):
                user = self.rng.choice(self.users)
                box = self.rng.choice(("INBOX", "Sent"))
                word = self.rng.choice(WORDS)
                text = word[self.rng.randrange(len(word) - 2):][:4]
                node = self.rng.choice(self.nodes)
                try:
                    response = client.post(f"{node.url()}/v1/users/{user}/search",
                                           json={"mailbox": box, "query": f"TEXT {text}"})
                except httpx.TransportError:
                    continue  # the node is down: a client tries another
                if response.status_code == 404 and box == "Sent":
                    continue  # this user got no mail in Sent
                if response.status_code != 200:
                    if response.status_code != 503:  # 503: the node is starting or stopping
                        self.errors.append(f"{node.name} {user} {box}: {response.status_code} {response.text}")
                    continue
                ref = self._refs.get(user) or self._refs.setdefault(
                    user, ReferenceIndex(self.vmail / DOMAIN / user.split("@")[0]))
                want = ref.search(box, parse_argv(["TEXT", text])) if box in ref.mailboxes else []
                got = response.json()["uids"]
                self.answered += 1
                if got != want:
                    self.wrong.append((user, box, text, got, want))
