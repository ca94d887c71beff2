"""Two `ftsd serve` nodes (separate processes) on one PostgreSQL and one index directory: `index -A -q` queues
cluster-wide, both nodes run jobs, any node answers exactly (tests/reference.py), `ftsd cluster status`."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import httpx
import pytest

from ftsd.cli import main
from ftsd.cluster.lease import Leases
from ftsd.query import parse_argv
from tests.cluster.nodes import WORDS, Node, make_users, wait_idle
from tests.reference import ReferenceIndex

pytestmark = pytest.mark.slow


def test_two_nodes_share_the_queue_and_answer_exactly(tmp_path, dsn, capsys):
    users = make_users(tmp_path / "vmail", 12, seed=5)
    nodes = [Node.make(tmp_path, f"n{i}", dsn) for i in (1, 2)]
    for n in nodes:
        n.start()
    try:
        for n in nodes:
            n.ready()
        assert main(["index", "-A", "-q", "-v", "-c", str(nodes[0].config)]) == 0
        assert "12 index job(s) queued cluster-wide" in capsys.readouterr().out
        wait_idle(nodes[1].url(), 60)

        assert main(["cluster", "status", "--json", "-c", str(nodes[0].config)]) == 0
        status = json.loads(capsys.readouterr().out)
        assert sorted(n["node"].rsplit("-", 1)[0] for n in status["nodes"] if n["alive"]) == ["n1", "n2"]
        assert status["jobs"]["done"] == 12 and status["jobs"]["queued"] == 0 and status["lag_s"] == 0
        grants = [line.split() for line in (tmp_path / "leases.log").read_text().splitlines()]
        assert {g[3] for g in grants if g[2] == "grant"} >= set(users)

        rng = random.Random(7)
        for user in users:
            ref = ReferenceIndex(tmp_path / "vmail" / "example.org" / user.split("@")[0])
            word = rng.choice(WORDS)[1:4]
            for box in ("INBOX", "Sent"):
                if box not in ref.mailboxes:
                    continue
                node = rng.choice(nodes)
                answer = httpx.post(f"{node.url()}/v1/users/{user}/search",
                                    json={"mailbox": box, "query": f"TEXT {word}"}, timeout=30).json()
                assert answer["uids"] == ref.search(box, parse_argv(["TEXT", word])), (user, box, word)

        _solr_update_waits_for_the_lease(nodes[0], dsn, users[0], tmp_path / "leases.log")

        metrics = httpx.get(nodes[1].url() + "/metrics", timeout=10).text
        assert "ftsd_cluster_leases " in metrics and "ftsd_job_queue_depth 0.0" in metrics
    finally:
        for n in nodes:
            n.stop()
    assert main(["cluster", "status", "-c", str(nodes[0].config)]) == 0
    assert "0 queued" in capsys.readouterr().out  # nodes that left are gone from the list


def _solr_update_waits_for_the_lease(node: Node, dsn: str, user: str, lease_log: Path) -> None:
    """An fts_solr update for a user whose lease another node holds is written once that node lets go."""
    holder = Leases(dsn, "holder", grace_s=0, log_path=lease_log)
    assert holder.try_acquire(user)
    doc = (f'<add><doc><field name="uid">1</field><field name="box">{"ab" * 16}</field><field name="user">{user}'
           f'</field><field name="id">1/{"ab" * 16}/{user}</field><field name="body">pushed</field></doc></add>')
    replies: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: replies.append(httpx.post(
        node.url() + "/solr/dovecot/update", content=doc, headers={"Content-Type": "text/xml"}, timeout=30)))
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive()  # waiting for the lease, not writing beside its holder
    holder.release(user)
    thread.join(30)
    holder.leave()
    assert replies and replies[0].status_code == 200, replies
    events = [line.split()[1:3] for line in lease_log.read_text().splitlines() if line.endswith(f" {user}")]
    assert [e[1] for e in events[-4:]] == ["grant", "release", "grant", "release"]
    assert events[-4][0] == events[-3][0] == holder.node and events[-2][0].startswith(f"{node.name}-")
